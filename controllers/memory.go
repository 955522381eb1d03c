package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// memory is what the reconciler remembers of each source between reconciles: the Warnings it
// gave, so that each is given once and not at every resync, and the namespaces where another
// Secret blocks a mirror, so that retries there read before they write. Losing it (a restart)
// costs one repeated Warning and one refused create per conflict, nothing else.
type memory struct {
	mu      sync.Mutex
	sources map[types.NamespacedName]*remembered
}

type remembered struct {
	warnings  map[string]string // reason → note
	conflicts sets.Set[string]
	stats     sourceStats
}

// sourceStats counts, for metrics, the namespaces a source asks for by state after its last
// reconcile.
type sourceStats struct {
	refusedSource                     bool
	inSync, conflict, refused, failed int
}

// stateTotals sums sourceStats over every source.
type stateTotals struct {
	active, refusedSources            int
	inSync, conflict, refused, failed int
}

func newMemory() *memory {
	return &memory{sources: map[types.NamespacedName]*remembered{}}
}

func (m *memory) of(source types.NamespacedName) *remembered {
	r := m.sources[source]
	if r == nil {
		r = &remembered{warnings: map[string]string{}, conflicts: sets.New[string]()}
		m.sources[source] = r
	}
	return r
}

// newWarning stores note as the current one for (source, reason) and reports whether it is a
// new, non-empty note. An empty note means the problem is gone.
func (m *memory) newWarning(source types.NamespacedName, reason, note string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.of(source)
	if r.warnings[reason] == note {
		return false
	}
	if note == "" {
		delete(r.warnings, reason)
		return false
	}
	r.warnings[reason] = note
	return true
}

// setConflicts records the namespaces where the last reconcile of source met a conflict.
func (m *memory) setConflicts(source types.NamespacedName, namespaces []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.of(source).conflicts = sets.New(namespaces...)
}

// isConflict reports whether the last reconcile of source met a conflict in namespace.
func (m *memory) isConflict(source types.NamespacedName, namespace string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.sources[source]
	return r != nil && r.conflicts.Has(namespace)
}

// forget drops what is remembered of a source that is gone.
func (m *memory) forget(source types.NamespacedName) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.sources, source)
}

// setStats records the state of source after a reconcile.
func (m *memory) setStats(source types.NamespacedName, stats sourceStats) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.of(source).stats = stats
}

// totals sums the states of every source remembered.
func (m *memory) totals() stateTotals {
	m.mu.Lock()
	defer m.mu.Unlock()
	var t stateTotals
	for _, r := range m.sources {
		if r.stats.refusedSource {
			t.refusedSources++
		} else {
			t.active++
		}
		t.inSync += r.stats.inSync
		t.conflict += r.stats.conflict
		t.refused += r.stats.refused
		t.failed += r.stats.failed
	}
	return t
}
