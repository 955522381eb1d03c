//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/teststorage"

	"github.com/whisperer-operator/whisperer/config/prometheus/alerttest"
)

// prometheus does in the test process what a Prometheus server does with whisperer's alerts: it
// scrapes operator processes' metrics endpoints into a TSDB, as the ServiceMonitor has them
// scraped (job="whisperer", the pod's labels, up, staleness markers), and evaluates
// config/prometheus/alerts.yaml with Prometheus's rule engine after each round of scrapes.
//
// Its clock runs faster than the wall clock, or alerts held for 15 to 35 minutes could not be
// seen to fire in a test: each round, a tick, is made once a second and counts as scrapeInterval,
// 30 seconds, the Prometheus Operator's default scrape and evaluation interval. What whisperer
// exports is real; only the time between two scrapes is stretched, so whisperer's own timers
// (retry backoff, Lease expiry) look 30 times slower to the rules than they are.
type prometheus struct {
	t       *testing.T
	storage *teststorage.TestStorage
	engine  *promql.Engine
	rules   *alerttest.Rules
	targets map[*operator]*alerttest.Target
	// dropped are the targets to mark stale at the next tick.
	dropped []*alerttest.Target
	zero    time.Time
	ticks   int
	last    time.Time
	alerts  []alerttest.Alert
}

const (
	scrapeInterval = 30 * time.Second
	tickEvery      = time.Second
	scrapeTimeout  = 2 * time.Second
	// runbookURL is where every alert's runbook_url points, followed by its anchor.
	runbookURL = "https://github.com/whisperer-operator/whisperer/blob/main/docs/runbooks.md#"
)

// stretched is how much simulated time passes while d passes on the wall clock, at the least.
func stretched(d time.Duration) time.Duration {
	ticks := int64(d / tickEvery)
	return time.Duration(ticks) * scrapeInterval
}

// startPrometheus returns a Prometheus with no target, whose clock starts now.
func (e *env) startPrometheus() *prometheus {
	e.t.Helper()
	st, err := teststorage.NewWithError()
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = st.Close() })
	engine := alerttest.NewEngine()
	rules, err := alerttest.Load(e.t.Context(), "../../config/prometheus/alerts.yaml", st, engine)
	if err != nil {
		e.t.Fatal(err)
	}
	return &prometheus{t: e.t, storage: st, engine: engine, rules: rules, targets: map[*operator]*alerttest.Target{}, zero: time.Now().Truncate(time.Second)}
}

// podName is the name the operator's pod would have.
func podName(op *operator) string { return "whisperer-controller-manager-" + op.name }

// scrape makes op a target from the next tick on, labelled as its pod would be.
func (p *prometheus) scrape(op *operator) {
	u, err := url.Parse(op.metrics)
	if err != nil {
		p.t.Fatal(err)
	}
	p.targets[op] = alerttest.NewTarget(map[string]string{
		"job": "whisperer", "namespace": "whisperer-system", "service": "whisperer-controller-manager-metrics-service",
		"endpoint": "https", "container": "manager", "pod": podName(op), "instance": u.Host,
	})
}

// drop removes op's target, as service discovery does once its pod is deleted: its series are
// marked stale at the next tick.
func (p *prometheus) drop(op *operator) {
	p.dropped = append(p.dropped, p.targets[op])
	delete(p.targets, op)
}

// at is the simulated time of tick n.
func (p *prometheus) at(n int) time.Time { return p.zero.Add(time.Duration(n) * scrapeInterval) }

// now is the simulated time of the last tick.
func (p *prometheus) now() time.Time { return p.at(p.ticks - 1) }

// tick scrapes every target and evaluates the rules, a second after the last tick, and logs the
// alerts that changed state.
func (p *prometheus) tick() {
	p.t.Helper()
	if wait := tickEvery - time.Since(p.last); wait > 0 {
		time.Sleep(wait)
	}
	p.last = time.Now()
	ts := p.at(p.ticks)
	p.ticks++
	for op, target := range p.targets {
		ctx, cancel := context.WithTimeout(p.t.Context(), scrapeTimeout)
		body, err := op.metricsText(ctx)
		cancel()
		if err := target.Append(p.t.Context(), p.storage, ts, body, err); err != nil {
			p.t.Fatalf("storing the scrape of %s: %v", op.user, err)
		}
	}
	for _, target := range p.dropped {
		if err := target.Gone(p.t.Context(), p.storage, ts); err != nil {
			p.t.Fatal(err)
		}
	}
	p.dropped = nil
	alerts, err := p.rules.Eval(ts)
	if err != nil {
		p.t.Fatal(err)
	}
	before := map[string]string{}
	for _, a := range p.alerts {
		before[a.Name+fmt.Sprint(a.Labels)] = a.State
	}
	for _, a := range alerts {
		key := a.Name + fmt.Sprint(a.Labels)
		if before[key] != a.State {
			p.t.Logf("[%s] %s %s", p.clock(ts), a.Name, a.State)
		}
		delete(before, key)
	}
	for key := range before {
		p.t.Logf("[%s] %s resolved", p.clock(ts), strings.SplitN(key, "map[", 2)[0])
	}
	p.alerts = alerts
}

// clock shows a simulated time as the time since the first tick.
func (p *prometheus) clock(ts time.Time) string { return ts.Sub(p.zero).String() }

// active returns the alerts named name after the last tick.
func (p *prometheus) active(name string) []alerttest.Alert {
	var out []alerttest.Alert
	for _, a := range p.alerts {
		if a.Name == name {
			out = append(out, a)
		}
	}
	return out
}

// quiet ticks for d of simulated time and fails the test if any alert is pending or firing.
func (p *prometheus) quiet(d time.Duration) {
	p.t.Helper()
	for range int(d / scrapeInterval) {
		p.tick()
		for _, a := range p.alerts {
			p.t.Errorf("[%s] %s", p.clock(p.now()), a)
		}
	}
}

// waitFiring ticks until every alert named in names fires, and fails the test when one has not
// within (of simulated time). It returns them, by name.
func (p *prometheus) waitFiring(within time.Duration, names ...string) map[string]alerttest.Alert {
	p.t.Helper()
	deadline := p.now().Add(within)
	fired := map[string]alerttest.Alert{}
	for len(fired) < len(names) {
		if p.now().After(deadline) {
			var missing []string
			for _, name := range names {
				if _, ok := fired[name]; !ok {
					missing = append(missing, name)
				}
			}
			p.t.Fatalf("[%s] %v not firing within %s; active: %v", p.clock(p.now()), missing, within, p.alerts)
		}
		p.tick()
		for _, name := range names {
			for _, a := range p.active(name) {
				if _, ok := fired[name]; !ok && a.State == "firing" {
					fired[name] = a
				}
			}
		}
	}
	return fired
}

// waitResolved ticks until no alert named name is active, and fails the test when one still is
// after within.
func (p *prometheus) waitResolved(within time.Duration, name string) {
	p.t.Helper()
	deadline := p.now().Add(within)
	for {
		p.tick()
		if len(p.active(name)) == 0 {
			return
		}
		if p.now().After(deadline) {
			p.t.Fatalf("[%s] %s still active %s later: %v", p.clock(p.now()), name, within, p.active(name))
		}
	}
}

// checkFired fails the test unless a became active no sooner than the failure it names was
// caused, at cause, and fired exactly its `for:` later, and carries the labels of an alert on
// whisperer's pods in whisperer-system and annotations rendered in full.
func (p *prometheus) checkFired(a alerttest.Alert, cause time.Time, labels map[string]string) {
	p.t.Helper()
	hold, ok := p.rules.Hold(a.Name)
	if !ok {
		p.t.Fatalf("no rule %s", a.Name)
	}
	if a.ActiveAt.Before(cause) {
		p.t.Errorf("%s active at %s, before its failure was caused at %s", a.Name, p.clock(a.ActiveAt), p.clock(cause))
	}
	if fired := a.FiredAt.Sub(a.ActiveAt); fired != hold {
		p.t.Errorf("%s fired %s after it became active; its for: is %s", a.Name, fired, hold)
	}
	for name, value := range labels {
		if a.Labels[name] != value {
			p.t.Errorf("%s: label %s=%q, want %q (labels %v)", a.Name, name, a.Labels[name], value, a.Labels)
		}
	}
	if want := runbookURL + strings.ToLower(a.Name); a.Annotations["runbook_url"] != want {
		p.t.Errorf("%s: runbook_url %q, want %q", a.Name, a.Annotations["runbook_url"], want)
	}
	for _, name := range []string{"summary", "description"} {
		if text := a.Annotations[name]; text == "" || strings.Contains(text, "<no value>") {
			p.t.Errorf("%s: annotation %s is %q", a.Name, name, text)
		}
	}
	p.t.Logf("%s fired %s after it was caused (pending for its for: of %s): %s", a.Name, a.FiredAt.Sub(cause), hold, a.Annotations["description"])
}

// query evaluates a PromQL expression at the last tick, as the Prometheus UI does.
func (p *prometheus) query(expr string) (promql.Vector, error) {
	q, err := p.engine.NewInstantQuery(p.t.Context(), p.storage, nil, expr, p.now())
	if err != nil {
		return nil, err
	}
	defer q.Close()
	return q.Exec(p.t.Context()).Vector()
}

// others returns the alerts active after the last tick whose names are not in names.
func (p *prometheus) others(names ...string) []alerttest.Alert {
	var out []alerttest.Alert
	for _, a := range p.alerts {
		if !slices.Contains(names, a.Name) {
			out = append(out, a)
		}
	}
	return out
}
