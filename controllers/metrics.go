package controllers

import (
	"context"
	"sync"
	"time"

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
		Help: "Mirror writes that succeeded, by kind (Secret, ConfigMap) and operation: create, update, recreate, delete.",
	}, []string{"kind", "operation"})
	mirrorErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "whisperer_mirror_errors_total",
		Help: "Mirror writes that failed, by kind (Secret, ConfigMap) and operation: create, update, recreate, delete.",
	}, []string{"kind", "operation"})
	attachments = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "whisperer_service_account_operations_total",
		Help: "Writes to ServiceAccounts' imagePullSecrets, by operation (attach, detach) and result (succeeded, failed).",
	}, []string{"operation", "result"})
	sourcesDesc = prometheus.NewDesc("whisperer_sources",
		"Sources by kind (Secret, ConfigMap) and state: active, or refused (by the administrator's policy, "+
			"or because of what they are).",
		[]string{"kind", "state"}, nil)
	contestedDesc = prometheus.NewDesc("whisperer_service_accounts_contested",
		"ServiceAccounts whose imagePullSecrets entry another writer keeps removing, which whisperer leaves alone for a while.",
		nil, nil)
	mirrorsDesc = prometheus.NewDesc("whisperer_mirrors",
		"Namespaces that sources ask for, by kind (Secret, ConfigMap) and state: in_sync; conflict (another "+
			"object holds the name); refused (by the policy, or because the source is refused); failed (the last write failed).",
		[]string{"kind", "state"}, nil)
)

// operationKinds are the values of the operation label.
var operationKinds = []mirror.ActionKind{mirror.Create, mirror.Update, mirror.Recreate, mirror.Delete}

func init() {
	metrics.Registry.MustRegister(mirrorOperations, mirrorErrors, attachments, stateCollector{})
	for _, op := range []mirror.AttachmentKind{mirror.Attach, mirror.Detach} {
		for _, result := range []string{"succeeded", "failed"} {
			attachments.WithLabelValues(string(op), result)
		}
	}
}

// countAttachment counts a write to a ServiceAccount.
func countAttachment(op mirror.AttachmentKind, err error) {
	result := "succeeded"
	if err != nil {
		result = "failed"
	}
	attachments.WithLabelValues(string(op), result).Inc()
}

// exportCounters makes the counters of kind exist, at zero, before its first write.
func exportCounters(kind mirror.Kind) {
	for _, op := range operationKinds {
		mirrorOperations.WithLabelValues(string(kind), string(op))
		mirrorErrors.WithLabelValues(string(kind), string(op))
	}
}

// countWrite counts a planned write of a mirror of kind by its result.
func countWrite(kind mirror.Kind, op mirror.ActionKind, res writeResult, err error) {
	switch {
	case err != nil:
		mirrorErrors.WithLabelValues(string(kind), string(op)).Inc()
	case res.changed():
		// A create that found a mirror to repair did an update, and a repaired recreate a
		// create: the operation label says what was planned, the result what it took.
		mirrorOperations.WithLabelValues(string(kind), string(op)).Inc()
	}
}

// sourceStats counts the namespaces one source asks for, by state, after its last full reconcile.
// Its conflicts are not among them: they are counted from the conflicts themselves, which every
// reconcile keeps up to date, even one of a single namespace (the one that follows the deletion of
// the object that blocked a mirror).
type sourceStats struct {
	refusedSource           bool
	wanted, refused, failed int
}

// stats holds the sourceStats of the sources of one reconciler, of one kind. Its conflicts and
// its fights over ServiceAccounts are counted from the conflicts and fights themselves, since the
// reconciles that start and end them may see one namespace only.
type stats struct {
	kind      mirror.Kind
	conflicts *conflicts
	fights    *fights
	mu        sync.Mutex
	bySource  map[types.NamespacedName]sourceStats
}

func newStats(kind mirror.Kind, c *conflicts, f *fights) *stats {
	return &stats{kind: kind, conflicts: c, fights: f, bySource: map[types.NamespacedName]sourceStats{}}
}

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
	ch <- contestedDesc
}

func (stateCollector) Collect(ch chan<- prometheus.Metric) {
	type totals struct {
		active, refusedSources            int
		inSync, conflict, refused, failed int
	}
	byKind := map[mirror.Kind]*totals{}
	contested := 0
	now := time.Now()
	running.Lock()
	for s := range running.stats {
		contested += s.fights.contested(now)
		t := byKind[s.kind]
		if t == nil {
			t = &totals{}
			byKind[s.kind] = t
		}
		s.mu.Lock()
		for source, st := range s.bySource {
			if st.refusedSource {
				t.refusedSources++
			} else {
				t.active++
			}
			conflicts := s.conflicts.count(source)
			// A conflict a reconcile of some namespaces found in a namespace new to the source
			// is not among its wanted ones until its next full reconcile.
			t.inSync += max(0, st.wanted-conflicts-st.failed)
			t.conflict += conflicts
			t.refused += st.refused
			t.failed += st.failed
		}
		s.mu.Unlock()
	}
	running.Unlock()
	ch <- prometheus.MustNewConstMetric(contestedDesc, prometheus.GaugeValue, float64(contested))
	for kind, t := range byKind {
		for state, n := range map[string]int{"active": t.active, "refused": t.refusedSources} {
			ch <- prometheus.MustNewConstMetric(sourcesDesc, prometheus.GaugeValue, float64(n), string(kind), state)
		}
		for state, n := range map[string]int{"in_sync": t.inSync, "conflict": t.conflict, "refused": t.refused, "failed": t.failed} {
			ch <- prometheus.MustNewConstMetric(mirrorsDesc, prometheus.GaugeValue, float64(n), string(kind), state)
		}
	}
}
