//go:build reliability

package reliability

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// Level 3's failover and scaling, for mirrors (docs/capabilities.md): two replicas with leader
// election; the leader is killed with SIGKILL while it writes the mirrors of a source into
// 5,000 namespaces, and the standby takes over once the Lease expires and converges: every
// mirror once, no orphan, the 30 Secrets of the source's name that are not its mirrors untouched,
// and, in the API server's audit log, no write by the standby before it held the Lease nor by the
// old leader after. Then the new leader scales the mirrors down to 2,000 namespaces, and fails
// back to a replacement of the first replica when it is stopped as a rolling update stops a pod.
func TestFailoverUnderLoad(t *testing.T) {
	e := newEnv(t)
	const targetCount = 5000
	targets := names("fo", targetCount, 4)
	others := []string{"fx-a", "fx-b"} // not targeted: a mirror there is an orphan
	const leaseNS = "le-fo"
	created := time.Now()
	e.createNamespaces(append(append([]string{leaseNS, "fo-src"}, others...), targets...)...)
	t.Logf("created %d namespaces in %s", targetCount+4, since(created))
	source := types.NamespacedName{Namespace: "fo-src", Name: "pull"}
	foreign := e.placeForeignSecrets(source, targets)
	want := sets.New(targets...).Delete(sortedKeys(foreign)...)

	leaderElection := []string{"--leader-elect", "--leader-election-namespace=" + leaseNS}
	a := e.startOperator("fo-a", leaderElection...)
	e.waitLeader(leaseNS)
	b := e.startStandby("fo-b", leaderElection...)

	e.createSource(source.Namespace, source.Name, "fo-*", map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`)})
	eventually(t, 3*time.Minute, "a has sent 1,500 creates", func(ctx context.Context) error {
		if !a.running() {
			// It happens on a machine loaded far beyond its cores: the Lease renewals time out.
			t.Fatalf("a exited before the kill, having lost its Lease: %s", a.logTail())
		}
		if posts := a.metric(ctx, "rest_client_requests_total", map[string]string{"method": "POST"}); posts < 1500 {
			return fmt.Errorf("%v POST requests", posts)
		}
		return nil
	})
	a.kill()
	killed := time.Now()
	// The creates in flight at the kill are carried out or not; b cannot write before a's Lease
	// expires, so what is there a second after the kill is what a made.
	settle()
	made, err := e.mirrorsOf(t.Context(), source)
	if err != nil {
		t.Fatal(err)
	}

	took := e.waitMirrors(source, want, 5*time.Minute)
	settle()
	b.requireRunning()
	acquired := e.checkTakeover(leaseNS, a, b, killed, false)
	writesA := e.secretWrites(a.user, time.Time{}, time.Time{})
	writesB := e.secretWrites(b.user, time.Time{}, time.Time{})
	t.Logf("failover under load: a killed after making %d of %d mirrors; b took the Lease %s after the kill and converged %s after the kill; writes carried out: a %s; b %s",
		len(made), want.Len(), acquired.Sub(killed).Round(10*time.Millisecond), took, writesA, writesB)
	if len(made) == 0 || len(made) >= want.Len() || len(made) < writesA.create {
		t.Errorf("%d of %d mirrors at the kill, after %d creates of a: not a failover under load", len(made), want.Len(), writesA.create)
	}
	if got, wantWrites := writesB, (writeCounts{create: want.Len() - len(made)}); got != wantWrites {
		t.Errorf("b: %s; want %s: the mirrors a had not made, each once", got, wantWrites)
	}
	checkOneWriterAtATime(t, e, a, b, killed, acquired)
	e.checkForeignSecrets(source, foreign)

	t.Log("step: scale down")
	{
		from := time.Now()
		e.updateSource(source, func(s *corev1.Secret) { s.Annotations[namespacesAnnotation] = "fo-0*, fo-1*" })
		kept := sets.New[string]()
		for _, ns := range targets[:2000] {
			kept.Insert(ns)
		}
		kept.Delete(sortedKeys(foreign)...)
		took := e.waitMirrors(source, kept, 5*time.Minute)
		settle()
		got := e.secretWrites(b.user, from, time.Time{})
		t.Logf("scale down: b deleted %d mirrors in %s; writes %s", want.Len()-kept.Len(), took, got)
		if wantWrites := (writeCounts{delete: want.Len() - kept.Len()}); got != wantWrites {
			t.Errorf("b: %s; want %s", got, wantWrites)
		}
		e.checkForeignSecrets(source, foreign)
		want = kept
	}

	t.Log("step: fail back")
	{
		a2 := e.startStandby("fo-a2", leaderElection...)
		stopped := time.Now()
		b.stop() // SIGTERM, as a rolling update or a drained node stops a pod
		e.updateSource(source, func(s *corev1.Secret) { s.Data[".dockerconfigjson"] = []byte(`{"auths":{"v":2}}`) })
		took := e.waitMirrors(source, want, 5*time.Minute)
		// b released the Lease as it stopped: a2 takes it without waiting for it to expire.
		acquired := e.checkTakeover(leaseNS, b, a2, stopped, true)
		writesA2 := e.secretWrites(a2.user, time.Time{}, time.Time{})
		t.Logf("fail back: a2 took the Lease %s after b was stopped and converged the change made meanwhile %s after the stop; writes: a2 %s",
			acquired.Sub(stopped).Round(10*time.Millisecond), took, writesA2)
		if wantWrites := (writeCounts{update: want.Len()}); writesA2 != wantWrites {
			t.Errorf("a2: %s; want %s", writesA2, wantWrites)
		}
		checkOneWriterAtATime(t, e, b, a2, stopped, acquired)
		e.checkForeignSecrets(source, foreign)
	}
}

// checkOneWriterAtATime fails the test when the audit log shows the writes of the old leader and
// the new one overlapping: every write request of old (carried out or not) reached the API
// server before next took the Lease (acquired), and none of next before. gone is when old was
// killed or stopped: requests it sent before may reach a loaded API server a little after.
func checkOneWriterAtATime(t *testing.T, e *env, old, next *operator, gone, acquired time.Time) {
	t.Helper()
	writesOf := func(op *operator) []auditEvent {
		return e.audit.events(t, and(by(op.user, time.Time{}, time.Time{}), writes, func(ev auditEvent) bool { return ev.Resource() != "leases" }))
	}
	byOld, byNext := writesOf(old), writesOf(next)
	if len(byOld) == 0 || len(byNext) == 0 {
		t.Fatalf("write requests by %s: %d, by %s: %d; want both to have written", old.user, len(byOld), next.user, len(byNext))
	}
	last, first := byOld[0], byNext[0]
	for _, ev := range byOld {
		if ev.Received.After(last.Received) {
			last = ev
		}
	}
	for _, ev := range byNext {
		if ev.Received.Before(first.Received) {
			first = ev
		}
	}
	t.Logf("one writer at a time: the last write request of %s reached the API server at %s from its end and %s before %s took the Lease; the first of %s %s after (%d and %d write requests)",
		old.user, last.Received.Sub(gone).Round(time.Millisecond), acquired.Sub(last.Received).Round(time.Millisecond), next.user,
		next.user, first.Received.Sub(acquired).Round(time.Millisecond), len(byOld), len(byNext))
	if !last.Received.Before(acquired) {
		t.Errorf("%s wrote after %s took the Lease: %s", old.user, next.user, last)
	}
	if first.Received.Before(acquired) {
		t.Errorf("%s wrote before it held the Lease: %s", next.user, first)
	}
}

// The limit of leader election: a leader frozen past its Lease (SIGSTOP here; a long pause or a
// partition in a cluster) has not stopped when the standby takes over. Once it runs again, it has
// not renewed its Lease within the renew deadline, so it writes nothing (internal/fencing) until
// it finds it lost the Lease and exits. The test freezes the leader a quarter through 2,000
// mirrors, changes the source, resumes the old leader as soon as the new one writes, and checks
// that the mirrors converge to the new data with no orphan and no foreign write, that the old
// leader exits within its renew deadline, and that it carried out no Secret write after the new
// leader's first.
func TestFrozenLeader(t *testing.T) {
	e := newEnv(t)
	targets := names("fz", 2000, 4)
	const leaseNS = "le-fz"
	e.createNamespaces(append([]string{leaseNS, "fz-src", "fx-a"}, targets...)...)
	source := types.NamespacedName{Namespace: "fz-src", Name: "pull"}
	foreign := e.placeForeignSecrets(source, targets)
	want := sets.New(targets...).Delete(sortedKeys(foreign)...)
	leaderElection := []string{"--leader-elect", "--leader-election-namespace=" + leaseNS}
	a := e.startOperator("fz-a", leaderElection...)
	holderA := e.waitLeader(leaseNS)
	b := e.startStandby("fz-b", leaderElection...)
	e.createSource(source.Namespace, source.Name, "fz-*", map[string][]byte{".dockerconfigjson": []byte(`{"v":1}`)})
	eventually(t, 2*time.Minute, "a has sent 500 creates", func(ctx context.Context) error {
		if posts := a.metric(ctx, "rest_client_requests_total", map[string]string{"method": "POST"}); posts < 500 {
			return fmt.Errorf("%v POST requests", posts)
		}
		return nil
	})
	a.pause()
	frozen := time.Now()
	e.updateSource(source, func(s *corev1.Secret) { s.Data[".dockerconfigjson"] = []byte(`{"v":2}`) })
	e.waitNewHolder(leaseNS, holderA)
	// b starts its controller once it holds the Lease; its caches are filled already.
	var takeover time.Time
	eventually(t, time.Minute, "b writes a Secret", func(context.Context) error {
		byB := e.audit.events(t, and(by(b.user, time.Time{}, time.Time{}), writes, on("secrets")))
		if len(byB) == 0 {
			return errors.New("not yet")
		}
		takeover = byB[0].Received
		return nil
	})
	a.resume()
	resumed := time.Now()
	eventually(t, renewDeadline+5*time.Second, "the old leader exits", func(context.Context) error {
		if a.running() {
			return errors.New("still running")
		}
		return nil
	})
	exited := since(resumed)
	took := e.waitMirrors(source, want, 2*time.Minute)
	settle()
	late := e.audit.events(t, and(by(a.user, takeover, time.Time{}), writes))
	codes := map[int]int{}
	for _, ev := range late {
		codes[ev.Code()]++
	}
	t.Logf("frozen leader: b wrote %s after a froze; a, resumed then, exited %s later, after %d write requests (by answer %v; Secret writes carried out: %s); b: %s; converged %s after the resume",
		takeover.Sub(frozen).Round(10*time.Millisecond), exited, len(late), codes, countSecretWrites(late), e.secretWrites(b.user, time.Time{}, time.Time{}), took)
	e.checkTakeover(leaseNS, a, b, frozen, false)
	e.checkForeignSecrets(source, foreign)
	// The resumed leader has not renewed its Lease within the renew deadline: it writes nothing.
	if got := countSecretWrites(late); got != (writeCounts{}) {
		t.Errorf("the frozen leader, resumed after another took over, carried out Secret writes: %s; want none", got)
	}
}
