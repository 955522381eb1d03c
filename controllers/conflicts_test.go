package controllers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// watchRecorder stands for the watches conflicts opens: it records which are open.
type watchRecorder struct {
	mu   sync.Mutex
	open map[types.NamespacedName]func()
}

func (w *watchRecorder) watch(key types.NamespacedName, gone func()) context.CancelFunc {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.open[key] = gone
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		delete(w.open, key)
	}
}

func (w *watchRecorder) keys() []types.NamespacedName {
	w.mu.Lock()
	defer w.mu.Unlock()
	var keys []types.NamespacedName
	for k := range w.open {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return compareKeys(a, b) })
	return keys
}

func compareKeys(a, b types.NamespacedName) int {
	if a.String() < b.String() {
		return -1
	}
	if a.String() > b.String() {
		return 1
	}
	return 0
}

func TestConflictsWatchEachBlockerWhileItBlocks(t *testing.T) {
	w := &watchRecorder{open: map[types.NamespacedName]func(){}}
	var notified []types.NamespacedName
	c := newConflicts(w.watch, func(source, _ types.NamespacedName) { notified = append(notified, source) })
	first := types.NamespacedName{Namespace: "a", Name: "pull"}
	second := types.NamespacedName{Namespace: "b", Name: "pull"}

	c.set(first, nil, []string{"x", "y"}, nil)
	c.set(second, nil, []string{"y"}, nil)
	want := []types.NamespacedName{{Namespace: "x", Name: "pull"}, {Namespace: "y", Name: "pull"}}
	if got := w.keys(); !slices.Equal(got, want) {
		t.Fatalf("watches %v, want one per blocking object %v", got, want)
	}
	if !c.blocked(first, "x") || c.blocked(second, "x") {
		t.Error("blocked() does not say where each source is blocked")
	}

	w.open[types.NamespacedName{Namespace: "y", Name: "pull"}]() // y/pull is deleted
	slices.SortFunc(notified, compareKeys)
	if !slices.Equal(notified, []types.NamespacedName{first, second}) {
		t.Errorf("deleting y/pull reconciled %v, want both sources it blocked", notified)
	}

	c.set(first, nil, nil, nil)
	if got := w.keys(); !slices.Equal(got, []types.NamespacedName{{Namespace: "y", Name: "pull"}}) {
		t.Errorf("watches %v once the first source is no longer blocked, want only y/pull, which still blocks the second", got)
	}
	c.set(second, nil, nil, nil)
	if got := w.keys(); len(got) != 0 || c.openWatches() != 0 {
		t.Errorf("watches %v once nothing is blocked, want none", got)
	}
}

func TestConflictWatchesAreCapped(t *testing.T) {
	w := &watchRecorder{open: map[types.NamespacedName]func(){}}
	c := newConflicts(w.watch, func(_, _ types.NamespacedName) {})
	var namespaces []string
	for i := range maxBlockerWatches + 10 {
		namespaces = append(namespaces, fmt.Sprintf("ns-%d", i))
	}
	source := types.NamespacedName{Namespace: "a", Name: "pull"}
	c.set(source, nil, namespaces, nil)
	if got := len(w.keys()); got != maxBlockerWatches {
		t.Errorf("%d watches open, want the cap, %d; beyond it the periodic retry looks", got, maxBlockerWatches)
	}
	if !c.blocked(source, namespaces[len(namespaces)-1]) {
		t.Error("a conflict beyond the cap is not remembered: its retry would write instead of read")
	}
	c.set(source, nil, nil, nil)
	if got := len(w.keys()); got != 0 {
		t.Errorf("%d watches left open", got)
	}
}

func TestConflictsOfAScopeLeaveTheOthers(t *testing.T) {
	w := &watchRecorder{open: map[types.NamespacedName]func(){}}
	c := newConflicts(w.watch, func(_, _ types.NamespacedName) {})
	source := types.NamespacedName{Namespace: "a", Name: "pull"}
	c.set(source, nil, []string{"x", "y"}, nil)
	c.set(source, sets.New("y", "z"), []string{"z"}, nil) // y freed, z blocked; x not looked at
	got := c.in(source)
	slices.Sort(got)
	if !slices.Equal(got, []string{"x", "z"}) {
		t.Errorf("blocked in %v after a reconcile of y and z, want x (outside it) and z", got)
	}
}

// A namespace where the write failed was not looked at: what was known of it stays.
func TestConflictsWhereAWriteFailedStayKnown(t *testing.T) {
	w := &watchRecorder{open: map[types.NamespacedName]func(){}}
	c := newConflicts(w.watch, func(_, _ types.NamespacedName) {})
	source := types.NamespacedName{Namespace: "a", Name: "pull"}
	c.set(source, nil, []string{"x", "y"}, nil)
	c.set(source, nil, nil, sets.New("x", "z")) // x and z failed, y found free
	got := c.in(source)
	if !slices.Equal(got, []string{"x"}) {
		t.Errorf("blocked in %v after writes failed in x and z, want x, still blocked (z never was)", got)
	}
}

// A source blocked by an object that is not its mirror looks again about every conflict retry
// interval, plus up to half of it at random (the README's behaviour table): not sooner, not
// later, and not all at the same moment. (A reconcile of some namespaces asks for a full one
// fullAfterScoped later, which comes first.)
func TestBlockedSourceLooksAgainAtTheRetryIntervalWithJitter(t *testing.T) {
	const interval = time.Minute
	source := types.NamespacedName{Namespace: "team-a", Name: "registry"}
	r := &MirrorReconciler{ConflictRetryInterval: interval, ResyncPeriod: time.Hour}
	r.conflicts = newConflicts((&watchRecorder{open: map[types.NamespacedName]func(){}}).watch, func(_, _ types.NamespacedName) {})
	r.conflicts.set(source, nil, []string{"team-b"}, nil)
	state := mirror.State{Key: source, Source: &mirror.Source{}}
	seen := sets.New[time.Duration]()
	for range 200 {
		after := r.requeue(state, nil, mirror.Result{}, &outcome{}).RequeueAfter
		if after < interval || after > interval*3/2 {
			t.Fatalf("looks again after %s, want between %s and %s", after, interval, interval*3/2)
		}
		seen.Insert(after)
	}
	if seen.Len() < 100 {
		t.Errorf("%d different delays in 200 reconciles, want them spread at random", seen.Len())
	}
}
