//go:build reliability

package reliability

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// The operator reaches the API server through a proxy that answers a share of its Secret writes
// with 409 Conflict or 429 Too Many Requests (Retry-After: 1). It must converge anyway, honour
// Retry-After, back off when a write keeps failing, and settle: no hot loop.
func TestConflictsAndThrottling(t *testing.T) {
	e := newEnv(t)
	targets := names("ft", 30, 2)
	e.createNamespaces(append([]string{"ft-src", "ft-hot"}, targets...)...)
	proxy := e.startFaultProxy("faulty")
	// 3 writes in 10 get a conflict, 1 in 10 is throttled.
	proxy.setFaults(func(n int, _, _ string) fault {
		switch n % 10 {
		case 0, 3, 6:
			return conflict
		case 8:
			return throttle
		}
		return pass
	})
	op := e.runOperator("faulty", proxy.user, proxy.kubeconfig(t))

	source := types.NamespacedName{Namespace: "ft-src", Name: "creds"}
	started := time.Now()
	e.createSource(source.Namespace, source.Name, "ft-0*, ft-1*, ft-2*", map[string][]byte{"password": []byte("v1")})
	want := sets.New(targets...)
	e.waitMirrors(source, want, 2*time.Minute)
	e.updateSource(source, func(s *corev1.Secret) { s.Data["password"] = []byte("v2") })
	e.waitMirrors(source, want, 2*time.Minute)
	e.updateSource(source, func(s *corev1.Secret) { s.Annotations[namespacesAnnotation] = "ft-0*, ft-1*" })
	want.Delete(targets[20:]...)
	e.waitMirrors(source, want, 2*time.Minute)
	converged := since(started)
	settle()

	const needed = 30 + 30 + 10 // creates, updates, deletes
	seen := proxy.seen()
	faults := map[fault]int{}
	for _, w := range seen {
		faults[w.fault]++
	}
	reconciles := op.reconciles(t.Context())
	reconcileErrors := int(op.metric(t.Context(), "controller_runtime_reconcile_errors_total", map[string]string{"controller": "secretmirror"}))
	got := e.secretWrites(proxy.user, time.Time{}, time.Time{})
	t.Logf("409/429: %d needed writes took %d write requests (%d answered 409, %d answered 429, %d passed) and %d reconciles (%d failed); converged in %s",
		needed, len(seen), faults[conflict], faults[throttle], faults[pass], reconciles, reconcileErrors, converged)
	if wantWrites := (writeCounts{create: 30, update: 30, delete: 10}); got != wantWrites {
		t.Errorf("writes the API server carried out: %s; want %s", got, wantWrites)
	}
	if faults[conflict] < 10 || faults[throttle] < 3 {
		t.Fatalf("too few faults injected to test anything: %v", faults)
	}
	if len(seen) > 3*needed {
		t.Errorf("%d write requests for %d writes: retries are not bounded", len(seen), needed)
	}
	if reconciles > 60 {
		t.Errorf("%d reconciles for 3 changes of one source: hot loop", reconciles)
	}

	// client-go retries a 429 itself, after Retry-After; a retry sooner would be a hot loop.
	var gaps []time.Duration
	for i, w := range seen {
		if w.fault != throttle {
			continue
		}
		for _, next := range seen[i+1:] {
			if next.method == w.method && next.path == w.path {
				gaps = append(gaps, next.at.Sub(w.at).Round(time.Millisecond))
				break
			}
		}
	}
	if len(gaps) == 0 {
		t.Fatal("no throttled write was retried")
	}
	t.Logf("429: %d throttled writes retried after %s at the soonest (Retry-After: 1s)", len(gaps), slices.Min(gaps))
	if slices.Min(gaps) < 900*time.Millisecond {
		t.Errorf("a throttled write was retried after %s, before its Retry-After of 1s", slices.Min(gaps))
	}

	// Converged, with the faults still on: nothing more happens.
	quietFrom, quietReconciles := len(proxy.seen()), op.reconciles(t.Context())
	time.Sleep(8 * time.Second)
	if r, w := op.reconciles(t.Context())-quietReconciles, len(proxy.seen())-quietFrom; r != 0 || w != 0 {
		t.Errorf("converged, yet %d reconciles and %d write requests in 8s", r, w)
	}

	t.Log("step: persistent conflict backs off")
	{
		proxy.setFaults(func(_ int, namespace, _ string) fault {
			if namespace == "ft-hot" {
				return conflict
			}
			return pass
		})
		from, fromReconciles := len(proxy.seen()), op.reconciles(t.Context())
		e.updateSource(source, func(s *corev1.Secret) { s.Annotations[namespacesAnnotation] = "ft-0*, ft-1*, ft-hot" })
		const window = 12 * time.Second
		time.Sleep(window)
		var attempts []time.Time
		for _, w := range proxy.seen()[from:] {
			if w.namespace == "ft-hot" {
				attempts = append(attempts, w.at)
			}
		}
		reconciled := op.reconciles(t.Context()) - fromReconciles
		var gaps, shown []time.Duration
		for i := 1; i < len(attempts); i++ {
			gaps = append(gaps, attempts[i].Sub(attempts[i-1]))
			shown = append(shown, gaps[i-1].Round(time.Millisecond))
		}
		t.Logf("a write failing with 409 for %s: %d attempts, %d reconciles; gaps between attempts: %v", window, len(attempts), reconciled, shown)
		// The backoff's delays (backoffProblems) add up to 12 s after 12 attempts; a hot loop makes hundreds.
		if len(attempts) < 4 || reconciled > 40 {
			t.Errorf("%d attempts and %d reconciles in %s; want at least 4 attempts and at most 40 reconciles", len(attempts), reconciled, window)
		}
		if problems := backoffProblems(gaps); len(problems) > 0 {
			t.Errorf("no exponential backoff:\n%s", strings.Join(problems, "\n"))
		}
		op.requireRunning()

		proxy.setFaults(func(int, string, string) fault { return pass })
		want.Insert("ft-hot")
		took := e.waitMirrors(source, want, time.Minute)
		t.Logf("the fault lifted, the mirror was written %s later, at the next retry", took)
		if err := e.checkMirrors(t.Context(), source, want); err != nil {
			t.Error(fmt.Errorf("after recovery: %w", err))
		}
	}
}

// backoffBase is the first delay of controller-runtime's default rate limiter, which requeues a
// source whose reconcile failed after this long, doubled at each failure in a row.
const backoffBase = 5 * time.Millisecond

// backoffProblems says how the gaps between the attempts of a write that keeps failing fail to
// grow exponentially; nothing when they do. The n-th gap is the rate limiter's n-th delay,
// backoffBase times 2ⁿ⁻¹, plus the time the retry takes (a read of the source, then the write):
// at least that delay, however loaded the machine. And it is longer than the gap before whenever
// that one exceeded its own delay by less than that delay: such a gap is shorter than twice its
// delay, which the next delay is. So a hot loop fails the first check, a backoff that stops
// growing the second, and one that never grows, even with delays too long for either, the last:
// the last gap is at least twice the first.
func backoffProblems(gaps []time.Duration) []string {
	var problems []string
	for i, gap := range gaps {
		delay := backoffBase << i
		if gap < delay {
			problems = append(problems, fmt.Sprintf("gap %d between attempts: %s, shorter than the backoff's delay %s", i+1, gap, delay))
		}
		if i+1 < len(gaps) && gap < 2*delay && gaps[i+1] <= gap {
			problems = append(problems, fmt.Sprintf("gap %d between attempts (%s) is not longer than gap %d (%s)", i+2, gaps[i+1], i+1, gap))
		}
	}
	if len(gaps) >= 2 && gaps[len(gaps)-1] < 2*gaps[0] {
		problems = append(problems, fmt.Sprintf("the last gap between attempts (%s) is not twice the first (%s)", gaps[len(gaps)-1], gaps[0]))
	}
	return problems
}

// The backoff check, on gaps written here: it accepts those of a run, and rejects a hot loop, a
// backoff that stops growing and one that never does.
func TestBackoffCheck(t *testing.T) {
	ms := func(values ...int) []time.Duration {
		gaps := make([]time.Duration, len(values))
		for i, v := range values {
			gaps[i] = time.Duration(v) * time.Millisecond
		}
		return gaps
	}
	for _, c := range []struct {
		name string
		gaps []time.Duration
		fail bool
	}{
		{"a run", ms(9, 14, 25, 46, 87, 168, 330, 649, 1287, 2569, 5126), false},
		{"a run on a loaded machine", ms(180, 40, 60, 95, 250, 190, 350, 700, 1300, 2600, 5200), false},
		{"a hot loop", ms(9, 8, 10, 9, 11, 9, 10, 9), true},
		{"a backoff that stops growing", ms(9, 14, 25, 46, 87, 168, 170, 169, 171), true},
		{"a constant backoff", ms(2000, 2001, 2003, 1999, 2002), true},
	} {
		problems := backoffProblems(c.gaps)
		if failed := len(problems) > 0; failed != c.fail {
			t.Errorf("%s %v: problems %q; want some: %v", c.name, c.gaps, problems, c.fail)
		}
	}
}
