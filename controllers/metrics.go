package controllers

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// whisperer's metrics, served with controller-runtime's on the manager's metrics endpoint. No
// label names an object, so their cardinality stays the same however many sources and mirrors
// there are.
var (
	mirrorOperations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "whisperer_mirror_operations_total",
		Help: "Mirror writes that succeeded, by operation: create, update, recreate, delete.",
	}, []string{"operation"})
	mirrorErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "whisperer_mirror_errors_total",
		Help: "Mirror writes that failed, by operation: create, update, recreate, delete.",
	}, []string{"operation"})
	sourcesDesc = prometheus.NewDesc("whisperer_sources",
		"Sources by state: active, or refused (by the administrator's policy, or because of what they are).",
		[]string{"state"}, nil)
	mirrorsDesc = prometheus.NewDesc("whisperer_mirrors",
		"Namespaces that sources ask for, by state: in_sync; conflict (another object holds the name); "+
			"refused (by the policy, or because the source is refused); failed (the last write failed).",
		[]string{"state"}, nil)
)

// operationKinds are the values of the operation label.
var operationKinds = []mirror.ActionKind{mirror.Create, mirror.Update, mirror.Recreate, mirror.Delete}

func init() {
	metrics.Registry.MustRegister(mirrorOperations, mirrorErrors, stateCollector{})
	for _, kind := range operationKinds {
		mirrorOperations.WithLabelValues(string(kind))
		mirrorErrors.WithLabelValues(string(kind))
	}
}

// countWrite counts a planned write by its result.
func countWrite(kind mirror.ActionKind, res writeResult, err error) {
	switch {
	case err != nil:
		mirrorErrors.WithLabelValues(string(kind)).Inc()
	case res.changed():
		// A create that found a mirror to repair did an update, and a repaired recreate a
		// create: the operation label says what was planned, the result what it took.
		mirrorOperations.WithLabelValues(string(kind)).Inc()
	}
}

// sourceStats counts the namespaces one source asks for, by state, after its last reconcile.
type sourceStats struct {
	refusedSource                     bool
	inSync, conflict, refused, failed int
}

// stats holds the sourceStats of the sources of one reconciler.
type stats struct {
	mu       sync.Mutex
	bySource map[types.NamespacedName]sourceStats
}

func newStats() *stats { return &stats{bySource: map[types.NamespacedName]sourceStats{}} }

func (s *stats) set(source types.NamespacedName, st sourceStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bySource[source] = st
}

func (s *stats) forget(source types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.bySource, source)
}

// running holds the stats of every reconciler whose manager runs: the gauges sum them.
var running = struct {
	sync.Mutex
	stats map[*stats]bool
}{stats: map[*stats]bool{}}

// reportWhileRunning adds s to the gauges for as long as mgr runs.
func reportWhileRunning(mgr manager.Manager, s *stats) error {
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		running.Lock()
		running.stats[s] = true
		running.Unlock()
		<-ctx.Done()
		running.Lock()
		delete(running.stats, s)
		running.Unlock()
		return nil
	}))
}

// stateCollector reports the state gauges at each scrape.
type stateCollector struct{}

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sourcesDesc
	ch <- mirrorsDesc
}

func (stateCollector) Collect(ch chan<- prometheus.Metric) {
	var active, refusedSources int
	var total sourceStats
	running.Lock()
	for s := range running.stats {
		s.mu.Lock()
		for _, st := range s.bySource {
			if st.refusedSource {
				refusedSources++
			} else {
				active++
			}
			total.inSync += st.inSync
			total.conflict += st.conflict
			total.refused += st.refused
			total.failed += st.failed
		}
		s.mu.Unlock()
	}
	running.Unlock()
	for state, n := range map[string]int{"active": active, "refused": refusedSources} {
		ch <- prometheus.MustNewConstMetric(sourcesDesc, prometheus.GaugeValue, float64(n), state)
	}
	for state, n := range map[string]int{"in_sync": total.inSync, "conflict": total.conflict, "refused": total.refused, "failed": total.failed} {
		ch <- prometheus.MustNewConstMetric(mirrorsDesc, prometheus.GaugeValue, float64(n), state)
	}
}
