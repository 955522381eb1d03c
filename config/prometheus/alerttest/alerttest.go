// Package alerttest evaluates whisperer's alerting rules (config/prometheus/alerts.yaml) with
// Prometheus's own rule engine, as `promtool test rules` does: the rule manager loads the groups
// as it loads a rule file, and each evaluation runs every group at a given time over a storage
// that the caller fills, with series written in promqltest's notation (config/prometheus's tests)
// or scraped from a running whisperer (test/reliability). Only tests import it.
package alerttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"sigs.k8s.io/yaml"
)

// Rules are the alerting rules of a PrometheusRule, loaded by Prometheus's rule manager.
type Rules struct {
	groups []*rules.Group
	ctx    context.Context
}

// Load reads the PrometheusRule in path and loads its groups as Prometheus loads a rule file,
// evaluated with engine over st, whose ALERTS series they also write there.
func Load(ctx context.Context, path string, st storage.Storage, engine *promql.Engine) (_ *Rules, err error) {
	content, err := RuleFile(path)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "whisperer-alerttest-")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	file := filepath.Join(dir, "alerts.yaml")
	if err := os.WriteFile(file, content, 0o600); err != nil {
		return nil, err
	}
	manager := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    rules.EngineQueryFunc(engine, st),
		AppendableV2: st,
		Queryable:    st,
		Context:      ctx,
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
	})
	// The interval only matters to groups evaluated by the manager's own loop, which Eval replaces.
	loaded, errs := manager.LoadGroups(time.Minute, labels.EmptyLabels(), "", nil, false, file)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r := &Rules{ctx: ctx}
	for _, name := range slices.Sorted(maps.Keys(loaded)) {
		group := loaded[name]
		for _, rule := range group.Rules() {
			if alerting, ok := rule.(*rules.AlertingRule); ok {
				// As promtool does: no ALERTS_FOR_STATE to restore from, so start evaluating.
				alerting.SetRestored(true)
			}
		}
		r.groups = append(r.groups, group)
	}
	return r, nil
}

// NewEngine returns a PromQL engine with Prometheus's defaults: 5 minutes of lookback, 2 minutes
// of timeout, 50 million samples at most per query.
func NewEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: 2 * time.Minute})
}

// RuleFile returns the groups of the PrometheusRule in path as the content of a Prometheus rule
// file.
func RuleFile(path string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rule monitoringv1.PrometheusRule
	if err := yaml.UnmarshalStrict(content, &rule); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
}

// Alert is an alert of a rule, pending or firing.
type Alert struct {
	Name string
	// State is "pending" or "firing".
	State       string
	Labels      map[string]string
	Annotations map[string]string
	// ActiveAt is the first evaluation at which its expression held, this time round.
	ActiveAt time.Time
	// FiredAt is the evaluation at which it started firing; zero while pending.
	FiredAt time.Time
}

func (a Alert) String() string {
	return fmt.Sprintf("%s %s since %s %v %v", a.Name, a.State, a.ActiveAt.UTC().Format(time.TimeOnly), a.Labels, a.Annotations)
}

// Eval evaluates every rule at ts, as Prometheus does at each evaluation interval, and returns
// the alerts pending or firing after it, sorted by name and labels. Evaluate at increasing times.
func (r *Rules) Eval(ts time.Time) ([]Alert, error) {
	var alerts []Alert
	var errs []error
	for _, group := range r.groups {
		group.Eval(r.ctx, ts)
		for _, rule := range group.Rules() {
			if err := rule.LastError(); err != nil {
				errs = append(errs, fmt.Errorf("rule %s at %s: %w", rule.Name(), ts.UTC().Format(time.TimeOnly), err))
			}
			alerting, ok := rule.(*rules.AlertingRule)
			if !ok {
				continue
			}
			for _, a := range alerting.ActiveAlerts() {
				alerts = append(alerts, Alert{
					Name:        alerting.Name(),
					State:       a.State.String(),
					Labels:      a.Labels.Map(),
					Annotations: a.Annotations.Map(),
					ActiveAt:    a.ActiveAt,
					FiredAt:     a.FiredAt,
				})
			}
		}
	}
	slices.SortFunc(alerts, func(a, b Alert) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return labels.Compare(labels.FromMap(a.Labels), labels.FromMap(b.Labels))
	})
	return alerts, errors.Join(errs...)
}

// Hold returns the `for:` of the alert named name, and false when there is no such alert.
func (r *Rules) Hold(name string) (time.Duration, bool) {
	for _, group := range r.groups {
		for _, rule := range group.Rules() {
			if alerting, ok := rule.(*rules.AlertingRule); ok && alerting.Name() == name {
				return alerting.HoldDuration(), true
			}
		}
	}
	return 0, false
}

// Names returns the names of the alerts in state ("pending" or "firing"), once each.
func Names(alerts []Alert, state string) []string {
	var names []string
	for _, a := range alerts {
		if a.State == state && !slices.Contains(names, a.Name) {
			names = append(names, a.Name)
		}
	}
	return names
}

// Target is one scrape target as Prometheus keeps it: its labels, and the series of its last
// scrape, which get a staleness marker when a scrape no longer has them.
type Target struct {
	labels labels.Labels
	last   map[string]labels.Labels
}

// NewTarget returns a target whose series all get targetLabels, job included, as the Prometheus
// Operator's relabelling gives them.
func NewTarget(targetLabels map[string]string) *Target {
	return &Target{labels: labels.FromMap(targetLabels), last: map[string]labels.Labels{}}
}

// Append stores a scrape of the target at ts, as Prometheus's scrape loop does: body is the
// text exposition format; scrapeErr, when not nil, is why the scrape failed (body is then
// ignored). Every series gets the target's labels (a scraped label of the same name is kept as
// exported_<name>); up is 1, or 0 when the scrape failed; series of the last scrape that this one
// lacks, all of them when it failed, get a staleness marker.
func (t *Target) Append(ctx context.Context, st storage.Storage, ts time.Time, body []byte, scrapeErr error) error {
	millis := ts.UnixMilli()
	app := st.AppenderV2(ctx)
	current := map[string]sample{}
	up := 1.0
	if scrapeErr != nil {
		up = 0
	} else if err := t.parse(body, current); err != nil {
		_ = app.Rollback()
		return err
	}
	for _, series := range current {
		if _, err := app.Append(0, series.lset, 0, millis, series.value, nil, nil, storage.AppendV2Options{}); err != nil {
			_ = app.Rollback()
			return fmt.Errorf("appending %s: %w", series.lset, err)
		}
	}
	for key, lset := range t.last {
		if _, ok := current[key]; !ok {
			if _, err := app.Append(0, lset, 0, millis, math.Float64frombits(value.StaleNaN), nil, nil, storage.AppendV2Options{}); err != nil {
				_ = app.Rollback()
				return err
			}
		}
	}
	upLabels := t.withTargetLabels(labels.FromStrings(model.MetricNameLabel, "up"))
	if _, err := app.Append(0, upLabels, 0, millis, up, nil, nil, storage.AppendV2Options{}); err != nil {
		_ = app.Rollback()
		return err
	}
	t.last = map[string]labels.Labels{}
	for key, series := range current {
		t.last[key] = series.lset
	}
	return app.Commit()
}

// Gone stores what Prometheus stores when the target disappears from service discovery: a
// staleness marker for each of its series, up included.
func (t *Target) Gone(ctx context.Context, st storage.Storage, ts time.Time) error {
	app := st.AppenderV2(ctx)
	stale := math.Float64frombits(value.StaleNaN)
	all := append(slices.Collect(maps.Values(t.last)), t.withTargetLabels(labels.FromStrings(model.MetricNameLabel, "up")))
	for _, lset := range all {
		if _, err := app.Append(0, lset, 0, ts.UnixMilli(), stale, nil, nil, storage.AppendV2Options{}); err != nil {
			_ = app.Rollback()
			return err
		}
	}
	t.last = map[string]labels.Labels{}
	return app.Commit()
}

type sample struct {
	lset  labels.Labels
	value float64
}

// parse reads the text exposition format with Prometheus's own parser.
func (t *Target) parse(body []byte, into map[string]sample) error {
	parser := textparse.NewPromParser(body, labels.NewSymbolTable(), false)
	for {
		entry, err := parser.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("parsing the scrape: %w", err)
		}
		if entry != textparse.EntrySeries {
			continue
		}
		_, _, v := parser.Series()
		var lset labels.Labels
		parser.Labels(&lset)
		lset = t.withTargetLabels(lset)
		into[lset.String()] = sample{lset: lset, value: v}
	}
}

// withTargetLabels adds the target's labels to lset, renaming a label of lset that has one of
// their names to exported_<name>, as Prometheus does without honor_labels.
func (t *Target) withTargetLabels(lset labels.Labels) labels.Labels {
	b := labels.NewBuilder(lset)
	t.labels.Range(func(l labels.Label) {
		if v := lset.Get(l.Name); v != "" {
			b.Set("exported_"+l.Name, v)
		}
		b.Set(l.Name, l.Value)
	})
	return b.Labels()
}
