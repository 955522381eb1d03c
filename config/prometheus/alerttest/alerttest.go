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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/model/labels"
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
func Load(ctx context.Context, path string, st storage.Storage, engine *promql.Engine) (*Rules, error) {
	content, err := RuleFile(path)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "whisperer-alerttest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
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
