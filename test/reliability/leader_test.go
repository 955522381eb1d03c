//go:build reliability

package reliability

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/utils/ptr"
)

// Two replicas with leader election: only the Lease holder writes; when it is killed with
// SIGKILL (so it cannot release the Lease), the other takes over once the Lease expires and
// carries on, including the change made while there was no leader.
func TestLeaderElection(t *testing.T) {
	e := newEnv(t)
	const leaseNS = "le-system"
	targets := names("le-t", 10, 2)
	e.createNamespaces(append([]string{leaseNS, "le-src"}, targets...)...)
	leaderElection := []string{"--leader-elect", "--leader-election-namespace=" + leaseNS}

	a := e.startOperator("a", leaderElection...)
	holderA := e.waitLeader(leaseNS)
	b := e.startStandby("b", leaderElection...)

	source := types.NamespacedName{Namespace: "le-src", Name: "shared"}
	e.createSource(source.Namespace, source.Name, "le-t-*", map[string][]byte{"token": []byte("v1")})
	want := sets.New(targets...)
	took := e.waitMirrors(source, want, time.Minute)
	settle()
	t.Logf("leader a mirrored the source into %d namespaces in %s", len(targets), took)
	if got := e.secretWrites(a.user, time.Time{}, time.Time{}); got != (writeCounts{create: len(targets)}) {
		t.Errorf("leader a: %s; want %d creates and nothing else", got, len(targets))
	}
	if standby := e.audit.events(t, and(by(b.user, time.Time{}, time.Time{}), writes)); len(standby) > 0 {
		t.Fatalf("standby b wrote while a held the Lease:\n%s", describe(standby))
	}

	// kill -9: a cannot release the Lease, b must wait for it to expire.
	killed := time.Now()
	a.kill()
	e.updateSource(source, func(s *corev1.Secret) { s.Data["token"] = []byte("v2") })
	e.waitNewHolder(leaseNS, holderA)
	acquired := e.checkTakeover(leaseNS, a, b, killed, false)
	if before := e.audit.events(t, and(by(b.user, time.Time{}, acquired), writes)); len(before) > 0 {
		t.Errorf("b wrote before it held the Lease:\n%s", describe(before))
	}
	e.waitMirrors(source, want, time.Minute)
	t.Logf("b applied the change made during the takeover %s after the kill", since(killed))

	// b keeps syncing: a new namespace, and a mirror deleted by hand.
	changed := time.Now()
	e.createNamespaces("le-t-10")
	e.deleteSecret("le-t-00", source.Name)
	want.Insert("le-t-10")
	took = e.waitMirrors(source, want, time.Minute)
	settle()
	t.Logf("new leader b created the new namespace's mirror and restored the deleted one in %s", took)
	b.requireRunning()
	if got, wantWrites := e.secretWrites(b.user, time.Time{}, time.Time{}), (writeCounts{create: 2, update: len(targets)}); got != wantWrites {
		t.Errorf("new leader b: %s; want %s", got, wantWrites)
	}
	if late := e.audit.events(t, and(by(a.user, killed, time.Time{}))); len(late) > 0 {
		t.Errorf("requests from a after it was killed:\n%s", describe(late))
	}
	t.Logf("writes: leader a %s; standby b before takeover 0; b after takeover %s (%s after the last change)",
		e.secretWrites(a.user, time.Time{}, time.Time{}), e.secretWrites(b.user, time.Time{}, time.Time{}), since(changed))
}

// Leader election, as whisperer configures it: controller-runtime's defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// How long client-go's leader election takes, with these settings, to hand the Lease over.
const (
	// maxRetryWait is the longest a candidate waits, after a try to take the Lease, before the
	// next: retryPeriod, plus a jitter of up to client-go's JitterFactor (1.2) times it.
	maxRetryWait = retryPeriod + retryPeriod*12/10
	// leaseRequestTimeout is the longest one Lease request takes, answered or not: controller-runtime
	// gives the leader election client half the renew deadline as its timeout.
	leaseRequestTimeout = renewDeadline / 2
	// takeoverBound is the longest a standby takes to write the Lease after its holder last wrote
	// it (its last renewal, or its release), when each Lease request is answered within its
	// timeout. The standby's read in flight at that write may miss it; its next try, up to a wait
	// later, reads it, and the standby counts the lease duration from that read's answer. When the
	// lease duration has passed, the read then in flight still sees the Lease held; the next try,
	// up to a wait later, reads the Lease and writes it. Four requests, two waits, and the lease
	// duration: the time a request takes, however loaded the machine, is in the bound.
	takeoverBound = 4*leaseRequestTimeout + 2*maxRetryWait + leaseDuration
)

// waitLeader waits until a replica holds the Lease in namespace, and returns its identity. The
// first replica takes a Lease that nobody holds at its first try, well within takeoverBound.
func (e *env) waitLeader(namespace string) string {
	e.t.Helper()
	var holder string
	eventually(e.t, takeoverBound, "a replica acquires the Lease", func(ctx context.Context) (err error) {
		if holder, err = e.leaseHolder(ctx, namespace); err == nil && holder == "" {
			err = errors.New("no holder")
		}
		return err
	})
	return holder
}

// startStandby starts an operator with args, which include leader election, and returns once
// it stands by: it has read the Lease, which another holds. It reads it at its first try, well
// within takeoverBound.
func (e *env) startStandby(name string, args ...string) *operator {
	e.t.Helper()
	started := time.Now()
	op := e.startOperator(name, args...)
	eventually(e.t, takeoverBound, op.user+" reads the Lease", func(context.Context) error {
		if len(e.audit.events(e.t, and(by(op.user, started, time.Time{}), on("leases")))) == 0 {
			return errors.New("no Lease request yet")
		}
		return nil
	})
	return op
}

// waitNewHolder waits until someone other than holder holds the Lease in namespace, for
// takeoverBound: holder has stopped renewing it before the call.
func (e *env) waitNewHolder(namespace, holder string) {
	e.t.Helper()
	eventually(e.t, takeoverBound, "another replica takes the Lease over from "+holder, func(ctx context.Context) error {
		current, err := e.leaseHolder(ctx, namespace)
		if err == nil && (current == holder || current == "") {
			err = fmt.Errorf("held by %q", current)
		}
		return err
	})
}

// checkTakeover checks, in the API server's audit log, how next took the Lease in namespace over
// from old, which stopped renewing it at gone (killed, frozen, or stopped, released is then true):
// within takeoverBound of old's last write of the Lease, and, unless old released it, not before
// it expired, leaseDuration after that write. It also checks that the Lease says leaseDuration.
// It returns when the API server received next's first write of the Lease.
func (e *env) checkTakeover(namespace string, old, next *operator, gone time.Time, released bool) time.Time {
	e.t.Helper()
	settle()
	leaseWrites := func(op *operator) []auditEvent {
		return e.audit.events(e.t, and(by(op.user, time.Time{}, time.Time{}), on("leases"), writes, succeeded))
	}
	byNext := leaseWrites(next)
	if len(byNext) == 0 {
		e.t.Fatalf("%s never wrote the Lease", next.user)
	}
	acquired := byNext[0].Received
	var last time.Time
	for _, ev := range leaseWrites(old) {
		if ev.Received.Before(acquired) {
			last = ev.Received
		}
	}
	if last.IsZero() {
		e.t.Fatalf("%s took the Lease before %s ever wrote it", next.user, old.user)
	}
	took := acquired.Sub(last)
	e.t.Logf("takeover: %s took the Lease %s after %s last wrote it, %s after it was stopped (allowed: %s; lease duration %s)",
		next.user, took.Round(10*time.Millisecond), old.user, acquired.Sub(gone).Round(10*time.Millisecond), takeoverBound, leaseDuration)
	if took > takeoverBound {
		e.t.Errorf("%s took the Lease %s after %s last wrote it, more than %s", next.user, took, old.user, takeoverBound)
	}
	if !released && took <= leaseDuration {
		e.t.Errorf("%s took the Lease %s after %s last renewed it, before it expired (%s)", next.user, took, old.user, leaseDuration)
	}
	lease, err := e.clientset.CoordinationV1().Leases(namespace).Get(e.t.Context(), leaseName, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	if d := lease.Spec.LeaseDurationSeconds; d == nil || time.Duration(*d)*time.Second != leaseDuration {
		e.t.Errorf("the Lease's duration: %v seconds; want %s", ptr.Deref(d, 0), leaseDuration)
	}
	return acquired
}
