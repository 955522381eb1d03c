//go:build reliability

package reliability

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	uberzap "go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kube-apiserver goes away and comes back (same etcd, address and certificates) while the
// operator runs: the operator reconnects by itself and serves the changes made afterwards.
// Then the harder case: the operator misses changes while it is cut off, and etcd is compacted
// past everything it has seen, so that resuming its watches gets 410 Gone; it must relist.
func TestAPIServerRestart(t *testing.T) {
	e := newEnv(t)
	targets := names("ar-t", 5, 1)
	e.createNamespaces(append([]string{"ar-src"}, targets...)...)
	op := e.startOperator("ar")
	source := types.NamespacedName{Namespace: "ar-src", Name: "token"}
	e.createSource(source.Namespace, source.Name, "ar-t-*", map[string][]byte{"token": []byte("v1")})
	want := sets.New(targets...)
	e.waitMirrors(source, want, time.Minute)
	// A resourceVersion the operator has seen, to probe whether watching from it still works.
	list := &corev1.SecretList{}
	if err := e.admin.List(t.Context(), list, client.InNamespace(source.Namespace)); err != nil {
		t.Fatal(err)
	}
	seenRV := list.ResourceVersion

	t.Log("step: restart")
	{
		stopped := time.Now()
		if err := e.cluster.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		stopTook := since(stopped)
		time.Sleep(3 * time.Second)
		op.requireRunning()
		starting := time.Now()
		if err := e.cluster.StartAPIServer(); err != nil {
			t.Fatal(err)
		}
		up := time.Now()
		t.Logf("API server stopped in %s, down for %s, ready %s after its start", stopTook, up.Sub(stopped).Round(10*time.Millisecond), up.Sub(starting).Round(10*time.Millisecond))
		e.updateSource(source, func(s *corev1.Secret) { s.Data["token"] = []byte("v2") })
		took := e.waitMirrors(source, want, time.Minute)
		op.requireRunning()
		t.Logf("recovery: a source change made as the API server came back reached its mirrors in %s; the operator's watches since the stop: %s; a watch from a resourceVersion before the restart gets: %s",
			took, e.watchTimeline(op.user, stopped, up), e.probeWatch(seenRV))
		settle()
		// Reconnecting and relisting add no write to the five updates of the change.
		if got, wantWrites := e.secretWrites(op.user, stopped, time.Time{}), (writeCounts{update: 5}); got != wantWrites {
			t.Errorf("writes since the restart: %s; want %s", got, wantWrites)
		}
		changed := time.Now()
		e.createNamespaces("ar-t-5")
		e.deleteSecret("ar-t-0", source.Name)
		want.Insert("ar-t-5")
		e.waitMirrors(source, want, time.Minute)
		settle()
		op.requireRunning()
		if got, wantWrites := e.secretWrites(op.user, changed, time.Time{}), (writeCounts{create: 2}); got != wantWrites {
			t.Errorf("writes for a new namespace and a deleted mirror: %s; want %s", got, wantWrites)
		}
	}

	t.Log("step: watch expired")
	{
		// Frozen, the operator keeps no connection through the restart below and sees none of
		// the changes that follow.
		op.pause()
		paused := time.Now()
		if err := e.cluster.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		if err := e.cluster.StartAPIServer(); err != nil {
			t.Fatal(err)
		}
		e.updateSource(source, func(s *corev1.Secret) { s.Data["token"] = []byte("v3") })
		e.createNamespaces("ar-t-6")
		e.deleteSecret("ar-t-1", source.Name)
		want.Insert("ar-t-6")
		// Compact etcd past every revision the operator has seen, with the API server down so
		// that its watch cache starts afresh, then check that watching from before is Gone.
		if err := e.cluster.StopAPIServer(); err != nil {
			t.Fatal(err)
		}
		revision := e.compactEtcd()
		if err := e.cluster.StartAPIServer(); err != nil {
			t.Fatal(err)
		}
		if probe := e.probeWatch(seenRV); probe != "410 Gone" {
			t.Fatalf("watching from resourceVersion %s after compacting etcd to %d: %s; want 410 Gone", seenRV, revision, probe)
		}
		op.resume()
		resumed := time.Now()
		took := e.waitMirrors(source, want, 2*time.Minute)
		settle()
		op.requireRunning()
		relists := e.audit.events(t, and(by(op.user, resumed, time.Time{}), func(ev auditEvent) bool { return ev.IsRelist() }))
		t.Logf("410: etcd compacted to revision %d while the operator was frozen (%s); after it resumed it converged to the changes it missed in %s; its watches since: %s",
			revision, resumed.Sub(paused).Round(10*time.Millisecond), took, e.watchTimeline(op.user, resumed, resumed))
		relisted := sets.New[string]()
		for _, ev := range relists {
			relisted.Insert(cacheOf(ev))
		}
		if !relisted.HasAll("sources", "mirrors", "namespaces") {
			t.Errorf("relisted %v after its watches expired; want sources, mirrors and namespaces:\n%s", sets.List(relisted), describe(relists))
		}
		// Two mirrors to create, five to update. The caches relist one after the other: a mirror
		// written from a source cache that has not relisted yet is updated again once it has,
		// so up to two more updates.
		got := e.secretWrites(op.user, resumed, time.Time{})
		t.Logf("writes after the relist: %s", got)
		if got.create != 2 || got.update < 5 || got.update > 7 || got.patch+got.delete+got.other > 0 {
			t.Errorf("writes after the relist: %s; want 2 creates and 5 to 7 updates", got)
		}
	}
}

// watchTimeline lists the watches user started since from, each with the cache it feeds and
// its start relative to zero, for example "sources +1.2s relist".
func (e *env) watchTimeline(user string, from, zero time.Time) string {
	var out []string
	for _, ev := range e.audit.events(e.t, and(by(user, from, time.Time{}), func(ev auditEvent) bool { return ev.Verb == "watch" })) {
		entry := fmt.Sprintf("%s %+.1fs", cacheOf(ev), ev.Received.Sub(zero).Seconds())
		if ev.IsRelist() {
			entry += " relist"
		}
		out = append(out, entry)
	}
	return strings.Join(out, ", ")
}

// probeWatch watches Secrets from resourceVersion and says how the API server answers:
// "410 Gone" when that version is too old, else what it did.
func (e *env) probeWatch(resourceVersion string) string {
	ctx, cancel := context.WithTimeout(e.t.Context(), 5*time.Second)
	defer cancel()
	w, err := e.clientset.CoreV1().Secrets("").Watch(ctx, metav1.ListOptions{ResourceVersion: resourceVersion})
	if err != nil {
		return describeStatus(err)
	}
	defer w.Stop()
	select {
	case ev, ok := <-w.ResultChan():
		switch {
		case !ok:
			return "watch closed"
		case ev.Type == watch.Error:
			return describeStatus(apierrors.FromObject(ev.Object))
		}
		return "watch served events (" + string(ev.Type) + ")"
	case <-ctx.Done():
		return "watch open, no event"
	}
}

func describeStatus(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Code == 410 {
		return "410 Gone"
	}
	return err.Error()
}

// compactEtcd writes a key outside the API server's prefix, so that the revision moves past
// everything a client has seen, and compacts etcd's history to that revision.
func (e *env) compactEtcd() int64 {
	e.t.Helper()
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.cluster.EtcdURL().String()},
		DialTimeout: 10 * time.Second,
		Logger:      uberzap.NewNop(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	defer func() {
		if err := cli.Close(); err != nil {
			e.t.Errorf("closing the etcd client: %v", err)
		}
	}()
	ctx, cancel := context.WithTimeout(e.t.Context(), 30*time.Second)
	defer cancel()
	put, err := cli.Put(ctx, "/whisperer-reliability/compaction", time.Now().Format(time.RFC3339Nano))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, put.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		e.t.Fatal(err)
	}
	return put.Header.Revision
}
