//go:build reliability

package reliability

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/test/localcluster"
)

// with returns the labels every alert on whisperer's pods has, its namespace and job, and more.
func with(more map[string]string) map[string]string {
	labels := map[string]string{"namespace": "whisperer-system", "job": "whisperer"}
	maps.Copy(labels, more)
	return labels
}

// Each alert family, on the failure it names, caused for real on the local control plane and
// seen through whisperer's metrics endpoint (see prometheus, which stretches time): the alert
// fires after its `for:` and resolves once the failure is repaired, and no alert naming another
// failure becomes active. WhispererAbsent is left to the rule tests: its failure is Prometheus's
// service discovery finding no target, which the prometheus of this test plays itself.
// WhispererReconcileStuck is shown its series only: it needs a reconcile hung for 10 minutes
// of real time, which the stretched clock does not shorten.
func TestAlertsOnRealFailures(t *testing.T) {
	e := newEnvWith(t, localcluster.Options{Controllers: append(slices.Clone(localcluster.DefaultControllers), "resourcequota")})
	targets := []string{"al-t-0", "al-t-1", "al-t-2"}
	e.createNamespaces(append([]string{"al-src", "al-other", "al-x", "al-q", "al-le", "al-h"}, targets...)...)
	source := types.NamespacedName{Namespace: "al-src", Name: "creds"}
	e.createSource(source.Namespace, source.Name, "al-t-*", map[string][]byte{"password": []byte("v1")})
	want := sets.New(targets...)
	op := e.startOperator("al", "--source-namespaces=al-src", "--conflict-retry-interval=2s")
	prom := e.startPrometheus()
	prom.scrape(op)
	e.waitMirrors(source, want, time.Minute)

	t.Log("step: healthy")
	prom.quiet(5 * time.Minute)

	t.Log("step: a conflict, a full quota and a refused source")
	{
		// A Secret of the source's name in al-x, which the source then asks for; a quota that
		// allows no Secret in al-q, where another source wants a mirror; a labelled Secret
		// outside --source-namespaces. Two sources, as a source whose writes keep failing is
		// retried with a backoff that would also hold back its conflict's resolution.
		foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "al-x", Name: source.Name}, Data: map[string][]byte{"owner": []byte("someone else")}}
		if err := e.admin.Create(t.Context(), foreign); err != nil {
			t.Fatal(err)
		}
		quota := e.fullSecretQuota("al-q")
		mirrorsCaused := prom.now()
		e.updateSource(source, func(s *corev1.Secret) { s.Annotations[namespacesAnnotation] = "al-t-*, al-x" })
		blocked := e.createSource("al-src", "blocked", "al-q", map[string][]byte{"password": []byte("q")})
		refusedCaused := prom.now()
		refused := e.createSource("al-other", "pushed", "al-t-*", map[string][]byte{"password": []byte("x")})

		const mirrorAlerts = "WhispererMirrorConflicts WhispererMirrorWritesFailing WhispererReconcileErrors"
		fired := prom.waitFiring(35*time.Minute+10*scrapeInterval, append(strings.Fields(mirrorAlerts), "WhispererSourcesRefused")...)
		for _, name := range strings.Fields(mirrorAlerts) {
			prom.checkFired(fired[name], mirrorsCaused, with(map[string]string{"severity": "warning"}))
		}
		prom.checkFired(fired["WhispererSourcesRefused"], refusedCaused, with(map[string]string{"severity": "warning"}))
		for name, text := range map[string]string{
			"WhispererMirrorConflicts":     "In 1 target namespaces",
			"WhispererMirrorWritesFailing": "into 1 target namespaces",
			"WhispererSourcesRefused":      "1 sources, Secrets or ConfigMaps labelled",
		} {
			if !strings.Contains(fired[name].Annotations["description"], text) {
				t.Errorf("%s: description %q; want it to say %q", name, fired[name].Annotations["description"], text)
			}
		}
		if others := prom.others(append(strings.Fields(mirrorAlerts), "WhispererSourcesRefused")...); len(others) > 0 {
			t.Errorf("alerts naming other failures: %v", others)
		}

		// Each repair resolves its alert, and only it.
		e.deleteSecret(foreign.Namespace, foreign.Name)
		prom.waitResolved(5*scrapeInterval, "WhispererMirrorConflicts")
		e.deleteSecret(refused.Namespace, refused.Name)
		prom.waitResolved(5*scrapeInterval, "WhispererSourcesRefused")
		if err := e.admin.Delete(t.Context(), quota); err != nil {
			t.Fatal(err)
		}
		// As the runbook says: touch the source to retry at once, rather than wait out its backoff.
		e.updateSource(client.ObjectKeyFromObject(blocked), func(s *corev1.Secret) { s.Annotations["whisperer-retry"] = time.Now().Format(time.RFC3339Nano) })
		prom.waitResolved(10*scrapeInterval, "WhispererMirrorWritesFailing")
		e.waitMirrors(client.ObjectKeyFromObject(blocked), sets.New("al-q"), time.Minute)
		want.Insert("al-x")
		e.waitMirrors(source, want, time.Minute)
		if active := prom.active("WhispererReconcileErrors"); len(active) != 1 || active[0].State != "firing" {
			t.Errorf("WhispererReconcileErrors: %v; want it firing until its 20 minutes without errors have passed", active)
		}
	}

	t.Log("step: whisperer killed, and a new one that cannot take the Lease")
	{
		holder := e.holdLease("al-le", "someone-else")
		standby := e.startOperator("al-b", "--leader-elect", "--leader-election-namespace=al-le", "--source-namespaces=al-src")
		prom.scrape(standby)
		op.kill()
		caused := prom.now()
		fired := prom.waitFiring(10*time.Minute+5*scrapeInterval, "WhispererDown", "WhispererNotReconciling")
		prom.checkFired(fired["WhispererDown"], caused, with(map[string]string{
			"severity": "critical", "pod": podName(op), "service": "whisperer-controller-manager-metrics-service",
		}))
		prom.checkFired(fired["WhispererNotReconciling"], caused, with(map[string]string{"severity": "critical"}))
		if others := prom.others("WhispererDown", "WhispererNotReconciling", "WhispererReconcileErrors"); len(others) > 0 {
			t.Errorf("alerts naming other failures: %v", others)
		}

		// The dead pod is deleted; the other holder goes, and the new one takes the Lease.
		prom.drop(op)
		prom.waitResolved(scrapeInterval, "WhispererDown")
		// The standby takes the Lease within takeoverBound of its last renewal, and the next scrape
		// shows its controller.
		holder.release()
		prom.waitResolved(stretched(takeoverBound)+scrapeInterval, "WhispererNotReconciling")
		standby.stop()
		prom.drop(standby)
	}

	t.Log("step: a write that hangs")
	{
		proxy := e.startFaultProxy("al-c")
		proxy.setFaults(func(_ int, namespace, _ string) fault {
			if namespace == "al-h" {
				return hang
			}
			return pass
		})
		pprof := freePort(t)
		stuck := e.runOperator("al-c", proxy.user, proxy.kubeconfig(t), "--source-namespaces=al-src",
			"--max-concurrent-reconciles=1", "--pprof-bind-address=127.0.0.1:"+pprof)
		prom.scrape(stuck)
		prom.tick()
		caused, hungAt := prom.now(), time.Now()
		// One source's write hangs, holding the only worker; the other waits in the queue.
		for _, name := range []string{"hang-1", "hang-2"} {
			e.createSource("al-src", name, "al-h", map[string][]byte{"k": []byte(name)})
		}
		fired := prom.waitFiring(15*time.Minute+5*scrapeInterval, "WhispererWorkQueueNotDraining")
		prom.checkFired(fired["WhispererWorkQueueNotDraining"], caused, with(map[string]string{"severity": "warning"}))
		if others := prom.others("WhispererWorkQueueNotDraining", "WhispererReconcileErrors"); len(others) > 0 {
			t.Errorf("alerts naming other failures: %v", others)
		}
		running := stuck.metric(t.Context(), "workqueue_longest_running_processor_seconds", map[string]string{"name": "secretmirror"})
		hung := time.Since(hungAt)
		t.Logf("the hung reconcile has been running for %.1fs by whisperer's gauge, %s by the test's clock; WhispererReconcileStuck needs 600s", running, hung.Round(100*time.Millisecond))
		if running < (hung - 5*time.Second).Seconds() {
			t.Errorf("workqueue_longest_running_processor_seconds is %.1f after a write hung for %s", running, hung)
		}
		// The goroutine dump as the runbook reads it.
		dump := pprofPage(t, "http://127.0.0.1:"+pprof+"/debug/pprof/goroutine?debug=2")
		if !strings.Contains(dump, ").Reconcile(") || !strings.Contains(strings.ToLower(dump), "roundtrip") {
			t.Errorf("the goroutine dump the runbook asks for shows no reconcile waiting on a request:\n%s", dump)
		}
		proxy.releaseHung()
		prom.waitResolved(5*scrapeInterval, "WhispererWorkQueueNotDraining")
		for _, name := range []string{"hang-1", "hang-2"} {
			e.waitMirrors(types.NamespacedName{Namespace: "al-src", Name: name}, sets.New("al-h"), time.Minute)
		}
	}
}

// fullSecretQuota creates a ResourceQuota that allows no Secret in namespace, and waits until the
// resourcequota controller has computed its status, without which admission refuses everything.
func (e *env) fullSecretQuota(namespace string) *corev1.ResourceQuota {
	e.t.Helper()
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "no-secrets"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/secrets": resource.MustParse("0")}},
	}
	if err := e.admin.Create(e.t.Context(), quota); err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, time.Minute, "the quota's status", func(ctx context.Context) error {
		if err := e.admin.Get(ctx, types.NamespacedName{Namespace: namespace, Name: quota.Name}, quota); err != nil {
			return err
		}
		if _, ok := quota.Status.Hard["count/secrets"]; !ok {
			return errors.New("not computed yet")
		}
		return nil
	})
	return quota
}

// leaseHolding keeps a leader election Lease held by someone else, renewing it as a leader does.
type leaseHolding struct {
	stop chan struct{}
	done sync.WaitGroup
}

// holdLease takes whisperer's Lease in namespace as identity and renews it every retry period
// until release.
func (e *env) holdLease(namespace, identity string) *leaseHolding {
	e.t.Helper()
	now := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: leaseName},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity: ptr.To(identity), LeaseDurationSeconds: ptr.To(int32(leaseDuration / time.Second)),
			AcquireTime: &now, RenewTime: &now,
		},
	}
	if err := e.admin.Create(e.t.Context(), lease); err != nil {
		e.t.Fatal(err)
	}
	h := &leaseHolding{stop: make(chan struct{})}
	h.done.Go(func() {
		for {
			select {
			case <-h.stop:
				return
			case <-time.After(retryPeriod):
			}
			current := &coordinationv1.Lease{}
			if err := e.admin.Get(e.t.Context(), types.NamespacedName{Namespace: namespace, Name: leaseName}, current); err != nil {
				continue
			}
			current.Spec.RenewTime = ptr.To(metav1.NewMicroTime(time.Now()))
			if err := e.admin.Update(e.t.Context(), current); err != nil && !apierrors.IsConflict(err) {
				e.t.Logf("renewing the Lease as %s: %v", identity, err)
			}
		}
	})
	e.t.Cleanup(h.release)
	return h
}

// release stops renewing: the Lease expires leaseDuration after the last renewal.
func (h *leaseHolding) release() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.done.Wait()
}
