package controllers

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
		"Sources by state: active, or refused (namespace not allowed by --source-namespaces, or a token type).",
		[]string{"state"}, nil)
	mirrorsDesc = prometheus.NewDesc("whisperer_mirrors",
		"Namespaces that sources ask for, by state: in_sync; conflict (another Secret holds the name); "+
			"refused (by the policy, or because the source is refused); failed (the last write failed).",
		[]string{"state"}, nil)
)

// operationKinds are the values of the operation label.
var operationKinds = []mirror.ActionKind{mirror.Create, mirror.Update, mirror.Recreate, mirror.Delete}

func init() {
	metrics.Registry.MustRegister(mirrorOperations, mirrorErrors)
	for _, kind := range operationKinds {
		mirrorOperations.WithLabelValues(string(kind))
		mirrorErrors.WithLabelValues(string(kind))
	}
}

// countWrite counts a planned write by its result.
func countWrite(kind mirror.ActionKind, res result, err error) {
	switch {
	case err != nil:
		mirrorErrors.WithLabelValues(string(kind)).Inc()
	case res == created || res == updated || res == deleted:
		// A create that found a mirror to repair did an update, and an adopted recreate a
		// create: the operation label says what was planned, the result what it took.
		mirrorOperations.WithLabelValues(string(kind)).Inc()
	}
}

// stateCollector reports the state gauges from the reconciler's memory at each scrape.
type stateCollector struct{ memory *memory }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- sourcesDesc
	ch <- mirrorsDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	total := c.memory.totals()
	for state, n := range map[string]int{"active": total.active, "refused": total.refusedSources} {
		ch <- prometheus.MustNewConstMetric(sourcesDesc, prometheus.GaugeValue, float64(n), state)
	}
	for state, n := range map[string]int{"in_sync": total.inSync, "conflict": total.conflict, "refused": total.refused, "failed": total.failed} {
		ch <- prometheus.MustNewConstMetric(mirrorsDesc, prometheus.GaugeValue, float64(n), state)
	}
}

// registerStateMetrics serves the gauges of m. A process runs one reconciler; when tests start
// another, the newest one's gauges replace the previous ones.
func registerStateMetrics(m *memory) error {
	collector := stateCollector{memory: m}
	err := metrics.Registry.Register(collector)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		metrics.Registry.Unregister(already.ExistingCollector)
		err = metrics.Registry.Register(collector)
	}
	return err
}
