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
	eventually(t, 2*leaseDuration+10*time.Second, "b takes the Lease over", func(ctx context.Context) error {
		holder, err := e.leaseHolder(ctx, leaseNS)
		if err == nil && (holder == holderA || holder == "") {
			err = fmt.Errorf("held by %q", holder)
		}
		return err
	})
	// The API server's own record of b's first Lease write, rather than our polling.
	settle()
	leaseWrites := e.audit.events(t, and(by(b.user, time.Time{}, time.Time{}), on("leases"), writes, succeeded))
	if len(leaseWrites) == 0 {
		t.Fatal("the Lease changed holder, but b never wrote it")
	}
	acquired := leaseWrites[0].Received
	takeover := acquired.Sub(killed).Round(10 * time.Millisecond)
	// The Lease expires leaseDuration after a's last renewal (at most one retryPeriod before the
	// kill); b notices at its next try, every retryPeriod with a jitter of up to 1.2 times it,
	// and may have seen a's last renewal that late too.
	bound := leaseDuration + 2*time.Duration(2.2*float64(retryPeriod)) + 5*time.Second
	t.Logf("takeover: b acquired the Lease %s after a was killed (lease duration %s, allowed %s)", takeover, leaseDuration, bound)
	if takeover > bound {
		t.Errorf("takeover took %s, more than %s", takeover, bound)
	}
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

// waitLeader waits until a replica holds the Lease in namespace, and returns its identity.
func (e *env) waitLeader(namespace string) string {
	e.t.Helper()
	var holder string
	eventually(e.t, 30*time.Second, "a replica acquires the Lease", func(ctx context.Context) (err error) {
		if holder, err = e.leaseHolder(ctx, namespace); err == nil && holder == "" {
			err = errors.New("no holder")
		}
		return err
	})
	return holder
}

// startStandby starts an operator with args, which include leader election, and returns once
// it stands by: it has read the Lease, which another holds.
func (e *env) startStandby(name string, args ...string) *operator {
	e.t.Helper()
	started := time.Now()
	op := e.startOperator(name, args...)
	eventually(e.t, 30*time.Second, op.user+" reads the Lease", func(context.Context) error {
		if len(e.audit.events(e.t, and(by(op.user, started, time.Time{}), on("leases")))) == 0 {
			return errors.New("no Lease request yet")
		}
		return nil
	})
	return op
}
