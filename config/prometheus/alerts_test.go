package prometheus

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql/promqltest"

	"github.com/whisperer-operator/whisperer/config/prometheus/alerttest"
)

// The alert rules, run by Prometheus's rule engine on synthetic series (promqltest's notation,
// one sample a minute, evaluated every minute), as `promtool test rules` runs them. For each
// alert: the failure it names makes it pending from the first evaluation that sees it and
// firing exactly its `for:` later, with its labels and annotations, and no other alert fires; a
// failure shorter than that never fires it. A healthy whisperer, a rollout and a crash (counters
// reset) fire nothing. Each runs on the whisperers that --resources makes: the default, with both
// controllers (and a failure of one controller in either), and one with only secretmirror or only
// configmapmirror.

// failureFrom is the minute each failure starts; horizon the minute the failure cases end.
const (
	failureFrom = 10
	horizon     = 150
)

// pod is a whisperer pod, as the Prometheus Operator labels the series scraped from it.
type pod struct{ name, instance string }

var (
	podA = pod{name: "whisperer-controller-manager-5f7d9c8b6-x2k4q", instance: "10.244.1.17:8443"}
	podB = pod{name: "whisperer-controller-manager-5f7d9c8b6-7hnmz", instance: "10.244.2.9:8443"}
)

func (p pod) labels() string {
	return `job="whisperer", namespace="whisperer-system", service="whisperer-controller-manager-metrics-service", ` +
		`endpoint="https", container="manager", pod="` + p.name + `", instance="` + p.instance + `"`
}

// upLabels are the labels of the pod's up series, which alerts on up keep.
func (p pod) upLabels() map[string]string {
	return map[string]string{
		"job": "whisperer", "namespace": "whisperer-system", "service": "whisperer-controller-manager-metrics-service",
		"endpoint": "https", "container": "manager", "pod": p.name, "instance": p.instance,
	}
}

// The values a timeline holds besides numbers: no sample, and Prometheus's staleness marker,
// written when a target goes or its scrape fails.
var (
	noSample = math.NaN()
	stale    = math.Float64frombits(value.StaleNaN)
)

// operator is a whisperer as --resources makes it: the controllers it runs, which name
// controller-runtime's series, and the kinds it mirrors, which label its own.
type operator struct {
	controllers []string
	kinds       []string
}

var (
	// bothKinds is the default, --resources=secrets,configmaps,serviceaccounts.
	bothKinds      = operator{controllers: []string{"secretmirror", "configmapmirror"}, kinds: []string{"Secret", "ConfigMap"}}
	secretsOnly    = operator{controllers: []string{"secretmirror"}, kinds: []string{"Secret"}}
	configMapsOnly = operator{controllers: []string{"configmapmirror"}, kinds: []string{"ConfigMap"}}
)

// timeline is the series of a scenario, one value a minute from minute 0 to minutes.
type timeline struct {
	minutes int
	series  map[string][]float64
	operator
	// failing is the controller in which a failure of one controller happens (a reconcile that
	// fails or hangs, a queue that does not drain): the operator's first unless set.
	failing string
}

func newTimeline(minutes int, op operator) *timeline {
	return &timeline{minutes: minutes, series: map[string][]float64{}, operator: op, failing: op.controllers[0]}
}

// queue are the labels of the work queue series of controller.
func queue(controller string) string {
	return `controller="` + controller + `", name="` + controller + `"`
}

// byKind sets whisperer's own metric{labels} of the pod to v in [from, to), split between the
// kinds of the operator, the first getting the rest of what the others get, 1 each.
func (t *timeline) byKind(p pod, metric, labels string, from, to int, v float64) {
	for i, kind := range t.kinds {
		share := min(v, 1)
		if i == 0 {
			share = v - min(v, 1)*float64(len(t.kinds)-1)
		}
		t.set(p, metric, `kind="`+kind+`", `+labels, from, to, func(int) float64 { return share })
	}
}

// set gives the pod's series metric{extra} the value f(m) at each minute m of [from, to).
func (t *timeline) set(p pod, metric, extra string, from, to int, f func(m int) float64) {
	key := metric + "{" + p.labels()
	if extra != "" {
		key += ", " + extra
	}
	key += "}"
	values, ok := t.series[key]
	if !ok {
		values = make([]float64, t.minutes+1)
		for i := range values {
			values[i] = noSample
		}
		t.series[key] = values
	}
	for m := from; m < min(to, t.minutes+1); m++ {
		values[m] = f(m)
	}
}

// seriesOf returns the keys of the pod's series, up excluded.
func (t *timeline) seriesOf(p pod) []string {
	var keys []string
	for key := range t.series {
		if strings.Contains(key, `pod="`+p.name+`"`) && !strings.HasPrefix(key, "up{") {
			keys = append(keys, key)
		}
	}
	return keys
}

// healthy is a pod that serves its metrics and holds the Lease in [from, to): 40 sources
// converged into 400 mirrors, each controller reconciling 4 times a minute (resyncs), without
// error; counters that start at 0 at from, as after a start.
func (t *timeline) healthy(p pod, from, to int) {
	c := func(v float64) func(int) float64 { return func(int) float64 { return v } }
	t.set(p, "up", "", from, to, c(1))
	for _, controller := range t.controllers {
		t.set(p, "controller_runtime_reconcile_total", `controller="`+controller+`", result="success"`, from, to,
			func(m int) float64 { return float64(4 * (m - from)) })
		for _, result := range []string{"error", "requeue", "requeue_after"} {
			t.set(p, "controller_runtime_reconcile_total", `controller="`+controller+`", result="`+result+`"`, from, to, c(0))
		}
		t.set(p, "controller_runtime_reconcile_errors_total", `controller="`+controller+`"`, from, to, c(0))
		// The resync queues a few sources for less than a scrape interval: the queue is seen
		// empty. WhispererWorkQueueNotDraining's blips test a queue seen full for a scrape or more.
		t.set(p, "workqueue_depth", queue(controller), from, to, c(0))
		t.set(p, "workqueue_longest_running_processor_seconds", queue(controller), from, to, c(0))
	}
	for state, v := range map[string]float64{"in_sync": 400, "conflict": 0, "refused": 0, "failed": 0} {
		t.byKind(p, "whisperer_mirrors", `state="`+state+`"`, from, to, v)
	}
	for state, v := range map[string]float64{"active": 40, "refused": 0} {
		t.byKind(p, "whisperer_sources", `state="`+state+`"`, from, to, v)
	}
}

// gone marks every series of the pod stale at minute at, as Prometheus does when the target
// disappears, and gives them no sample after.
func (t *timeline) gone(p pod, at int) {
	for _, key := range append(t.seriesOf(p), "up{"+p.labels()+"}") {
		t.series[key][at] = stale
		for m := at + 1; m <= t.minutes; m++ {
			t.series[key][m] = noSample
		}
	}
}

// scrapeFails makes the pod's scrapes fail in [from, to): up is 0, its other series are marked
// stale at the first failure and have no sample after.
func (t *timeline) scrapeFails(p pod, from, to int) {
	for _, key := range t.seriesOf(p) {
		for m := from; m < min(to, t.minutes+1); m++ {
			t.series[key][m] = noSample
		}
		t.series[key][from] = stale
	}
	t.set(p, "up", "", from, to, func(int) float64 { return 0 })
}

// load renders the timeline in promqltest's notation.
func (t *timeline) load() string {
	var b strings.Builder
	b.WriteString("load 1m\n")
	for _, key := range slices.Sorted(maps.Keys(t.series)) {
		b.WriteString("  " + key)
		for _, v := range t.series[key] {
			switch {
			case value.IsStaleNaN(v):
				b.WriteString(" stale")
			case math.IsNaN(v):
				b.WriteString(" _")
			default:
				b.WriteString(" " + strconv.FormatFloat(v, 'f', -1, 64))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// evaluate runs the alert rules over the timeline, every minute from 0 to its end, and returns
// the alerts pending or firing after each evaluation.
func evaluate(t *testing.T, tl *timeline) [][]alerttest.Alert {
	t.Helper()
	suite, err := promqltest.NewLazyLoader(tl.load(), promqltest.LazyLoaderOpts{EnableAtModifier: true, EnableNegativeOffset: true})
	if err != nil {
		t.Fatalf("loading the series: %v", err)
	}
	t.Cleanup(func() { _ = suite.Close() })
	suite.SubqueryInterval = time.Minute
	rules, err := alerttest.Load(suite.Context(), "alerts.yaml", suite.Storage(), suite.QueryEngine())
	if err != nil {
		t.Fatal(err)
	}
	var timeline [][]alerttest.Alert
	for m := 0; m <= tl.minutes; m++ {
		var alerts []alerttest.Alert
		suite.WithSamplesTill(minute(m), func(err error) {
			if err != nil {
				t.Fatalf("appending the series up to minute %d: %v", m, err)
			}
			alerts, err = rules.Eval(minute(m))
			if err != nil {
				t.Fatalf("evaluating at minute %d: %v", m, err)
			}
		})
		timeline = append(timeline, alerts)
	}
	return timeline
}

func minute(m int) time.Time { return time.Unix(0, 0).UTC().Add(time.Duration(m) * time.Minute) }

// backoffErrors is how many times a reconcile that keeps failing has failed by elapsed after
// its first failure: controller-runtime retries it after 5 ms, doubling up to 1000 s.
func backoffErrors(elapsed time.Duration) int {
	n := 0
	for at, delay := time.Duration(0), 5*time.Millisecond; at <= elapsed; at, delay = at+delay, min(2*delay, 1000*time.Second) {
		n++
	}
	return n
}

// reconcileFailing makes one source's reconciles fail in [from, to) in the failing controller,
// retried with controller-runtime's backoff; the retry after to succeeds. Both counters of errors
// count them.
func reconcileFailing(t *timeline, from, to int) {
	errorsAt := func(m int) float64 {
		elapsed := time.Duration(min(m, to)-from) * time.Minute
		if m >= to {
			// The cause is gone: the retries after it succeed, so the count stops at the
			// failures made before to.
			elapsed = time.Duration(to-from)*time.Minute - time.Nanosecond
		}
		return float64(backoffErrors(elapsed))
	}
	t.set(podA, "controller_runtime_reconcile_errors_total", `controller="`+t.failing+`"`, from, t.minutes+1, errorsAt)
	t.set(podA, "controller_runtime_reconcile_total", `controller="`+t.failing+`", result="error"`, from, t.minutes+1, errorsAt)
}

// queueGauge sets the pod's series metric of the failing controller's work queue to v in
// [from, to).
func queueGauge(metric string, v float64) func(t *timeline, from, to int) {
	return func(t *timeline, from, to int) {
		t.set(podA, metric, queue(t.failing), from, to, func(int) float64 { return v })
	}
}

// whispererGauge sets whisperer's own metric{labels} of the pod to v in [from, to), split
// between the kinds of the operator.
func whispererGauge(metric, labels string, v float64) func(t *timeline, from, to int) {
	return func(t *timeline, from, to int) { t.byKind(podA, metric, labels, from, to, v) }
}

const runbook = "https://github.com/whisperer-operator/whisperer/blob/main/docs/runbooks.md#"

// alertTest are the cases of an alert. fail(t, from, to) puts the failure the alert names into
// a healthy timeline for minutes [from, to). The alert must be pending from activeAfter after
// the failure started and firing holds (its `for:`) later, with exactly these labels (alertname
// included) and annotations; blips are failures, in minutes, that must not fire it.
type alertTest struct {
	alert       string
	fail        func(t *timeline, from, to int)
	activeAfter time.Duration
	holds       time.Duration
	labels      map[string]string
	annotations map[string]string
	blips       []int
	// smallest, when set, is the smallest failure that must fire the alert too (its
	// annotations then unchecked): one namespace, one source, one queued item.
	smallest func(t *timeline, from, to int)
	// oneController is set when the failure is of one controller: with both running, it is
	// tested in each.
	oneController bool
}

var alertTests = []alertTest{
	{
		alert: "WhispererDown",
		fail:  func(t *timeline, from, to int) { t.scrapeFails(podA, from, to) },
		holds: 10 * time.Minute,
		labels: with(podA.upLabels(), map[string]string{
			"alertname": "WhispererDown", "severity": "critical",
		}),
		annotations: map[string]string{
			"summary": "whisperer is down or cannot be scraped.",
			"description": "Prometheus has not scraped whisperer's pod " + podA.name + " in whisperer-system for 10 minutes. " +
				"While whisperer is down, sources are not mirrored, new namespaces get no mirrors and deleted mirrors " +
				"are not restored; existing mirrors stay as they are.",
			"runbook_url": runbook + "whispererdown",
		},
		blips: []int{1, 9},
	},
	{
		alert: "WhispererAbsent",
		fail: func(t *timeline, from, to int) {
			// The pod is gone and no other replaces it until to.
			t.gone(podA, from)
			if to <= t.minutes {
				t.healthy(podB, to, t.minutes+1)
			}
		},
		holds:  15 * time.Minute,
		labels: map[string]string{"alertname": "WhispererAbsent", "severity": "critical", "job": "whisperer"},
		annotations: map[string]string{
			"summary": "Prometheus finds no whisperer to scrape.",
			"description": `No target with job="whisperer" has existed for 15 minutes: whisperer is not deployed or ` +
				"has no running pod, or Prometheus does not select its ServiceMonitor.",
			"runbook_url": runbook + "whispererabsent",
		},
		blips: []int{1, 14},
	},
	{
		alert: "WhispererNotReconciling",
		fail: func(t *timeline, from, to int) {
			// A new pod replaces A but does not get the Lease until to: it serves metrics, and
			// starts the controller (and its metrics) only once it is the leader.
			t.gone(podA, from)
			t.set(podB, "up", "", from, to, func(int) float64 { return 1 })
			t.healthy(podB, to, t.minutes+1)
		},
		holds:  10 * time.Minute,
		labels: map[string]string{"alertname": "WhispererNotReconciling", "severity": "critical", "job": "whisperer", "namespace": "whisperer-system"},
		annotations: map[string]string{
			"summary": "whisperer runs but does not reconcile.",
			"description": "whisperer's pods in whisperer-system answer scrapes, but none of them has started its " +
				"controllers (secretmirror, configmapmirror) for 10 minutes: no replica holds the leader election Lease. " +
				"No Secret or ConfigMap is mirrored meanwhile.",
			"runbook_url": runbook + "whisperernotreconciling",
		},
		blips: []int{1, 9},
	},
	{
		alert:         "WhispererReconcileErrors",
		fail:          reconcileFailing,
		oneController: true,
		holds:         35 * time.Minute,
		labels: map[string]string{
			"alertname": "WhispererReconcileErrors", "severity": "warning", "job": "whisperer", "namespace": "whisperer-system",
		},
		annotations: map[string]string{
			"summary": "whisperer's reconciles have been failing for 15 minutes.",
			// At minute 45 the window (25m, 45m] holds one retry, 21.8 minutes after the first
			// failure (the next is at 38.5): its 20 samples rise by 1 over 19 minutes, which
			// Prometheus extrapolates to the window's 20.
			"description": "whisperer in whisperer-system has had reconcile errors for at least 15 minutes " +
				"(1.053 in the last 20 minutes, of Secrets and ConfigMaps together). Some sources' mirrors, or the " +
				"ServiceAccounts their pull secrets are attached to, are not converging.",
			"runbook_url": runbook + "whispererreconcileerrors",
		},
		// A cause gone after 1 minute (the retries within it fail, the next succeeds) and one
		// gone after 14 minutes, whose last failed retry is 10.9 minutes after the first.
		blips: []int{1, 14},
	},
	{
		alert:    "WhispererMirrorWritesFailing",
		fail:     whispererGauge("whisperer_mirrors", `state="failed"`, 3),
		smallest: whispererGauge("whisperer_mirrors", `state="failed"`, 1),
		holds:    15 * time.Minute,
		labels: map[string]string{
			"alertname": "WhispererMirrorWritesFailing", "severity": "warning", "job": "whisperer", "namespace": "whisperer-system",
		},
		annotations: map[string]string{
			"summary": "Mirror writes have been failing for 15 minutes.",
			"description": "The last write of a mirror (Secret or ConfigMap) into 3 target namespaces has failed, " +
				"for 15 minutes (whisperer in whisperer-system). Those mirrors are missing, stale or not deleted.",
			"runbook_url": runbook + "whisperermirrorwritesfailing",
		},
		blips: []int{1, 14},
	},
	{
		alert:    "WhispererMirrorConflicts",
		fail:     whispererGauge("whisperer_mirrors", `state="conflict"`, 3),
		smallest: whispererGauge("whisperer_mirrors", `state="conflict"`, 1),
		holds:    15 * time.Minute,
		labels: map[string]string{
			"alertname": "WhispererMirrorConflicts", "severity": "warning", "job": "whisperer", "namespace": "whisperer-system",
		},
		annotations: map[string]string{
			"summary": "Mirrors have been blocked by other Secrets or ConfigMaps for 15 minutes.",
			"description": "In 3 target namespaces, a Secret or ConfigMap that is not a mirror of its source holds the " +
				"source's name, for 15 minutes (whisperer in whisperer-system). whisperer never touches it, so those " +
				"namespaces do not get their mirror.",
			"runbook_url": runbook + "whisperermirrorconflicts",
		},
		blips: []int{1, 14},
	},
	{
		alert:    "WhispererSourcesRefused",
		fail:     whispererGauge("whisperer_sources", `state="refused"`, 2),
		smallest: whispererGauge("whisperer_sources", `state="refused"`, 1),
		holds:    15 * time.Minute,
		labels: map[string]string{
			"alertname": "WhispererSourcesRefused", "severity": "warning", "job": "whisperer", "namespace": "whisperer-system",
		},
		annotations: map[string]string{
			"summary": "Secrets or ConfigMaps labelled for mirroring have been refused for 15 minutes.",
			"description": "2 sources, Secrets or ConfigMaps labelled secret-syncer.jeffl.es/sync=true, are refused by " +
				"whisperer in whisperer-system, by its policy (outside --source-namespaces, larger than --max-source-size, asking for " +
				"more namespaces than --max-targets-per-source, a namespaces annotation over whisperer's limits) or for " +
				"what they are (token Secrets, the kube-root-ca.crt and openshift-service-ca.crt ConfigMaps). They are " +
				"mirrored nowhere; their Refused Events say why.",
			"runbook_url": runbook + "whisperersourcesrefused",
		},
		blips: []int{1, 14},
	},
	{
		alert:         "WhispererWorkQueueNotDraining",
		fail:          queueGauge("workqueue_depth", 7),
		smallest:      queueGauge("workqueue_depth", 1),
		oneController: true,
		holds:         15 * time.Minute,
		labels: map[string]string{
			"alertname": "WhispererWorkQueueNotDraining", "severity": "warning", "job": "whisperer", "namespace": "whisperer-system",
		},
		annotations: map[string]string{
			"summary": "Sources have been waiting in whisperer's work queues for 15 minutes.",
			"description": "Sources have been waiting to be reconciled at every evaluation for 15 minutes (7 now in the " +
				"secretmirror and configmapmirror queues, whisperer in whisperer-system): whisperer does not keep up, and " +
				"changes reach mirrors late.",
			"runbook_url": runbook + "whispererworkqueuenotdraining",
		},
		blips: []int{1, 14},
	},
	{
		alert: "WhispererReconcileStuck",
		// A reconcile that started at from and does not return before to.
		fail: func(t *timeline, from, to int) {
			t.set(podA, "workqueue_longest_running_processor_seconds", queue(t.failing), from, to,
				func(m int) float64 { return float64(60 * (m - from)) })
		},
		oneController: true,
		// Running for more than 600 s first at the scrape 11 minutes after it started.
		activeAfter: 11 * time.Minute,
		holds:       5 * time.Minute,
		labels: map[string]string{
			"alertname": "WhispererReconcileStuck", "severity": "warning", "job": "whisperer", "namespace": "whisperer-system",
		},
		annotations: map[string]string{
			"summary": "A reconcile has been running for more than 15 minutes.",
			"description": "whisperer in whisperer-system has a reconcile that has been running for 16m 0s; even a source " +
				"mirrored into 10,000 namespaces takes about a minute. A worker is stuck, and its source is not converging.",
			"runbook_url": runbook + "whispererreconcilestuck",
		},
		// Reconciles that return after 12 and after 15 minutes: they ran for more than 600 s at
		// 1 and 4 evaluations.
		blips: []int{12, 15},
	},
}

func with(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// TestEveryAlertIsTested fails when alerts.yaml has an alert that alertTests does not cover,
// or alertTests one that alerts.yaml lacks.
func TestEveryAlertIsTested(t *testing.T) {
	var rule monitoringv1.PrometheusRule
	decodeStrict(t, "alerts.yaml", &rule)
	var defined, tested []string
	for _, group := range parseRuleGroups(t, rule.Spec.Groups).Groups {
		for _, r := range group.Rules {
			defined = append(defined, r.Alert)
		}
	}
	for _, c := range alertTests {
		tested = append(tested, c.alert)
	}
	slices.Sort(defined)
	slices.Sort(tested)
	if !slices.Equal(defined, tested) {
		t.Errorf("alerts in alerts.yaml: %v; alerts tested here: %v", defined, tested)
	}
}

// variant is a whisperer that an alert is tested on, and the controller its failure is in, when
// it is of one controller.
type variant struct {
	name string
	operator
	failing string
}

// defaultVariants returns the default whisperer, which runs both controllers, with c's failure
// in each controller when it is of one.
func defaultVariants(c alertTest) []variant {
	if !c.oneController {
		return []variant{{name: "both", operator: bothKinds, failing: "secretmirror"}}
	}
	return []variant{
		{name: "both/secretmirror fails", operator: bothKinds, failing: "secretmirror"},
		{name: "both/configmapmirror fails", operator: bothKinds, failing: "configmapmirror"},
	}
}

// variantsOf returns the whisperers c is tested on: the default ones, one that runs only
// secretmirror and one that runs only configmapmirror.
func variantsOf(c alertTest) []variant {
	return append(defaultVariants(c),
		variant{name: "secrets only", operator: secretsOnly, failing: "secretmirror"},
		variant{name: "configmaps only", operator: configMapsOnly, failing: "configmapmirror"})
}

func (v variant) timeline() *timeline {
	tl := newTimeline(horizon, v.operator)
	tl.failing = v.failing
	return tl
}

// TestAlertFires checks, for each alert, that its failure makes it fire exactly holds after it
// becomes active, with its labels and annotations, and nothing else fires: on each whisperer of
// variantsOf, and with the smallest failure on the default one.
func TestAlertFires(t *testing.T) {
	for _, c := range alertTests {
		for _, v := range variantsOf(c) {
			t.Run(c.alert+"/"+v.name, func(t *testing.T) { testAlertFires(t, c, v.timeline()) })
		}
		if c.smallest != nil {
			smallest := c
			smallest.fail, smallest.annotations = c.smallest, nil
			t.Run(c.alert+"/smallest", func(t *testing.T) { testAlertFires(t, smallest, defaultVariants(c)[0].timeline()) })
		}
	}
}

func testAlertFires(t *testing.T, c alertTest, tl *timeline) {
	tl.healthy(podA, 0, horizon+1)
	c.fail(tl, failureFrom, horizon+1)
	active := failureFrom*time.Minute + c.activeAfter
	fires := active + c.holds
	for m, alerts := range evaluate(t, tl) {
		at := time.Duration(m) * time.Minute
		var own []alerttest.Alert
		for _, a := range alerts {
			if a.Name == c.alert {
				own = append(own, a)
			} else if a.State == "firing" {
				t.Errorf("minute %d: %s fires too: %s", m, a.Name, a)
			}
		}
		switch {
		case at < active && len(own) > 0:
			t.Errorf("minute %d, before the failure shows: %v", m, own)
		case at >= active && at < fires && (len(own) != 1 || own[0].State != "pending"):
			t.Errorf("minute %d, between the failure (%s) and its `for:` (%s): %v; want it pending", m, active, fires, own)
		case at >= fires && len(own) != 1:
			t.Errorf("minute %d: %v; want one alert firing", m, own)
		case at == fires:
			checkFiring(t, m, own[0], minute(0).Add(active), c.labels, c.annotations)
		case at > fires:
			checkFiring(t, m, own[0], minute(0).Add(active), c.labels, nil)
		}
	}
}

// checkFiring checks that a fires since activeAt with labels and, unless nil, annotations.
func checkFiring(t *testing.T, m int, a alerttest.Alert, activeAt time.Time, labels, annotations map[string]string) {
	t.Helper()
	if a.State != "firing" || !a.ActiveAt.Equal(activeAt) {
		t.Errorf("minute %d: %s %s since %s; want firing since %s", m, a.Name, a.State, a.ActiveAt.Sub(minute(0)), activeAt.Sub(minute(0)))
	}
	if !maps.Equal(a.Labels, labels) {
		t.Errorf("minute %d: labels\n  %v\nwant\n  %v", m, a.Labels, labels)
	}
	if annotations != nil && !maps.Equal(a.Annotations, annotations) {
		for name := range with(a.Annotations, annotations) {
			if got, want := a.Annotations[name], annotations[name]; got != want {
				t.Errorf("minute %d: annotation %s:\n  %q\nwant\n  %q", m, name, got, want)
			}
		}
	}
}

// TestBlipsDoNotFire checks that each alert's failure, when it lasts less than the alert
// waits for, never fires it: on the default whisperer, with a failure of one controller in each.
func TestBlipsDoNotFire(t *testing.T) {
	for _, c := range alertTests {
		for _, v := range defaultVariants(c) {
			for _, blip := range c.blips {
				t.Run(fmt.Sprintf("%s/%s/%dm", c.alert, v.name, blip), func(t *testing.T) {
					tl := v.timeline()
					tl.healthy(podA, 0, horizon+1)
					c.fail(tl, failureFrom, failureFrom+blip)
					pending := false
					for m, alerts := range evaluate(t, tl) {
						for _, a := range alerts {
							if a.State == "firing" {
								t.Errorf("minute %d: %s", m, a)
							}
							pending = pending || a.Name == c.alert
						}
					}
					if !pending {
						t.Errorf("%s was never even pending: the blip does not test its `for:`", c.alert)
					}
				})
			}
		}
	}
}

// TestHealthyAndRestartsDoNotFire runs whisperer healthy for two and a half hours, through a
// rollout (a new pod, which must win the Lease, reconciles every source at start) and through a
// crash of its container (a failed scrape, then counters from 0 in the same pod): no alert fires,
// whether it runs both controllers or one; a healthy one makes none even pending.
func TestHealthyAndRestartsDoNotFire(t *testing.T) {
	// startBurst fills the pod's work queues with every source for a scrape, from at.
	startBurst := func(tl *timeline, p pod, at int) {
		for _, controller := range tl.controllers {
			tl.set(p, "workqueue_depth", queue(controller), at, at+1, func(int) float64 { return 40 })
		}
	}
	scenarios := map[string]func(*timeline){
		"healthy": func(tl *timeline) {
			tl.healthy(podA, 0, horizon+1)
		},
		"rollout": func(tl *timeline) {
			const at = 30
			tl.healthy(podA, 0, at)
			tl.gone(podA, at)
			// The new pod fails its first scrape, serves metrics at the next without the
			// controllers', and wins the Lease at the one after.
			tl.set(podB, "up", "", at, at+1, func(int) float64 { return 0 })
			tl.set(podB, "up", "", at+1, at+2, func(int) float64 { return 1 })
			tl.healthy(podB, at+2, horizon+1)
			startBurst(tl, podB, at+2)
		},
		"crash": func(tl *timeline) {
			const at = 60
			tl.healthy(podA, 0, horizon+1)
			// Errors long before: the counter is at 5 when the crash resets it to 0.
			reconcileFailing(tl, 5, 6)
			tl.scrapeFails(podA, at, at+1)
			tl.healthy(podA, at+1, horizon+1)
			startBurst(tl, podA, at+1)
		},
	}
	for name, scenario := range scenarios {
		for op, operator := range map[string]operator{"both": bothKinds, "secrets only": secretsOnly, "configmaps only": configMapsOnly} {
			t.Run(name+"/"+op, func(t *testing.T) {
				tl := newTimeline(horizon, operator)
				scenario(tl)
				for m, alerts := range evaluate(t, tl) {
					for _, a := range alerts {
						if a.State == "firing" || name == "healthy" {
							t.Errorf("minute %d: %s", m, a)
						}
					}
				}
			})
		}
	}
}
