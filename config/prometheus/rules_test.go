// Package prometheus tests the Prometheus Operator resources of config/prometheus, as promtool and
// kustomize would: the alert rules parse and refer only to metrics whisperer exports, each alert
// has its runbook and fires on the failure it names (alerts_test.go), and config/default renders
// with and without them. It has no code of its own, and alerttest is imported by tests only, so
// nothing here reaches the operator's binary.
package prometheus

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	// runbookBase is where every alert's runbook_url points, followed by the section's anchor.
	runbookBase = "https://github.com/whisperer-operator/whisperer/blob/main/docs/runbooks.md#"
	runbooks    = "../../docs/runbooks.md"
	// prometheusLine is config/default's switch for this directory, commented out by default.
	prometheusLine = "#- ../prometheus"
)

// exported lists the metrics whisperer exports that alerts may use: for each, the labels an
// expression may match on and, where the set is known, their values. An alert on any other name,
// label or value would select nothing and never fire. A nil list of values allows any value.
var exported = map[string]map[string][]string{
	// The scrape's own.
	"up": {},
	// controller-runtime's, for the controllers and their work queues: one controller per kind,
	// those --resources names.
	"controller_runtime_reconcile_errors_total": {"controller": controllerNames},
	"controller_runtime_reconcile_total": {
		"controller": controllerNames,
		"result":     {"success", "error", "requeue", "requeue_after"},
	},
	"workqueue_depth": {
		"name":       controllerNames,
		"controller": controllerNames,
		"priority":   nil,
	},
	"workqueue_longest_running_processor_seconds": {
		"name":       controllerNames,
		"controller": controllerNames,
	},
	// whisperer's own.
	"whisperer_sources":                          {"kind": kindNames, "state": {"active", "refused"}},
	"whisperer_mirrors":                          {"kind": kindNames, "state": {"in_sync", "conflict", "refused", "failed"}},
	"whisperer_mirror_operations_total":          {"kind": kindNames, "operation": operations},
	"whisperer_mirror_errors_total":              {"kind": kindNames, "operation": operations},
	"whisperer_service_account_operations_total": {"operation": {"attach", "detach"}, "result": {"succeeded", "failed"}},
	"whisperer_service_accounts_contested":       {},
}

var (
	controllerNames = []string{"secretmirror", "configmapmirror"}
	kindNames       = []string{"Secret", "ConfigMap"}
	operations      = []string{"create", "update", "recreate", "delete"}
)

// targetLabels are the labels the Prometheus Operator puts on every series of a target.
var targetLabels = []string{"namespace", "pod", "instance", "service", "endpoint", "container"}

var severities = []string{"critical", "warning", "info"}

// TestAlertRules validates the PrometheusRule as Prometheus loads it (rulefmt: YAML fields, PromQL,
// label names, annotation templates), then what Prometheus cannot know: every selector names an
// exported metric and whisperer's job, every alert is labelled and annotated for the on-call, and
// its runbook section exists.
func TestAlertRules(t *testing.T) {
	var rule monitoringv1.PrometheusRule
	decodeStrict(t, "alerts.yaml", &rule)
	if rule.Kind != monitoringv1.PrometheusRuleKind || rule.APIVersion != monitoringv1.SchemeGroupVersion.String() {
		t.Fatalf("alerts.yaml holds a %s %s, want a %s", rule.APIVersion, rule.Kind, monitoringv1.PrometheusRuleKind)
	}
	groups := parseRuleGroups(t, rule.Spec.Groups)
	anchors := markdownAnchors(t, runbooks)
	job := scrapeJob(t)

	names := map[string]bool{}
	for _, group := range groups.Groups {
		for _, r := range group.Rules {
			if r.Record != "" {
				t.Errorf("rule %q: recording rules are not expected here; teach this test their names first", r.Record)
				continue
			}
			t.Run(r.Alert, func(t *testing.T) {
				if names[r.Alert] {
					t.Errorf("alert %s is defined twice", r.Alert)
				}
				names[r.Alert] = true
				checkAlert(t, r, anchors)
				expr, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr)
				if err != nil {
					t.Fatalf("expression: %v", err) // rulefmt parsed it already
				}
				for _, problem := range selectorProblems(expr, job) {
					t.Error(problem)
				}
			})
		}
	}
	if len(names) == 0 {
		t.Fatal("alerts.yaml has no alert")
	}
}

// parseRuleGroups hands the groups to Prometheus's own rule file parser, with unknown fields
// refused and metric and label names held to the classic character set.
func parseRuleGroups(t *testing.T, groups []monitoringv1.RuleGroup) *rulefmt.RuleGroups {
	t.Helper()
	content, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	parsed, errs := rulefmt.Parse(content, false, model.LegacyValidation,
		parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("Prometheus would not load these rules: %v", err)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return parsed
}

func checkAlert(t *testing.T, r rulefmt.Rule, anchors map[string]bool) {
	t.Helper()
	if !slices.Contains(severities, r.Labels["severity"]) {
		t.Errorf("label severity is %q, want one of %v", r.Labels["severity"], severities)
	}
	for _, annotation := range []string{"summary", "description", "runbook_url"} {
		if strings.TrimSpace(r.Annotations[annotation]) == "" {
			t.Errorf("annotation %s is missing", annotation)
		}
	}
	if r.For == 0 {
		t.Error("no `for`: one bad evaluation would fire it")
	}
	url := r.Annotations["runbook_url"]
	anchor, ok := strings.CutPrefix(url, runbookBase)
	switch {
	case !ok:
		t.Errorf("runbook_url %q does not start with %s", url, runbookBase)
	case !anchors[anchor]:
		t.Errorf("runbook_url %q: docs/runbooks.md has no section with anchor #%s", url, anchor)
	}
}

// selectorProblems returns what is wrong with the series selectors of expr: a metric that
// whisperer does not export, a label it does not have or a value it never takes, or no job matcher
// (another operator built on controller-runtime exports the same metric names).
func selectorProblems(expr parser.Expr, job string) []string {
	var problems []string
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		known, ok := exported[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: metric %q is not one whisperer exports", vs, name))
			return nil
		}
		hasJob := false
		for _, m := range vs.LabelMatchers {
			values, ok := known[m.Name]
			switch {
			case m.Name == model.MetricNameLabel:
				continue
			case m.Name == "job":
				hasJob = true
				values, ok = []string{job}, true
			case slices.Contains(targetLabels, m.Name):
				continue
			}
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %q", vs, name, m.Name))
				continue
			}
			if values == nil {
				continue
			}
			switch m.Type {
			case labels.MatchEqual:
				if !slices.Contains(values, m.Value) {
					problems = append(problems, fmt.Sprintf("%s: label %s is never %q (it is one of %v)", vs, m.Name, m.Value, values))
				}
			case labels.MatchRegexp:
				// A list of alternatives, such as the controllers': each must be a value, or a
				// misspelt one would silently select nothing.
				alternatives := m.SetMatches()
				for _, alternative := range alternatives {
					if !slices.Contains(values, alternative) {
						problems = append(problems, fmt.Sprintf("%s: label %s is never %q (it is one of %v)", vs, m.Name, alternative, values))
					}
				}
				if alternatives == nil && !slices.ContainsFunc(values, m.Matches) {
					problems = append(problems, fmt.Sprintf("%s: label %s=~%q matches none of %v", vs, m.Name, m.Value, values))
				}
			}
		}
		if !hasJob {
			problems = append(problems, fmt.Sprintf("%s: no job=%q matcher", vs, job))
		}
		return nil
	})
	return problems
}

// TestSelectorProblems checks that selectorProblems finds each kind of mistake, and only those.
func TestSelectorProblems(t *testing.T) {
	for expr, want := range map[string]int{
		`sum(increase(controller_runtime_reconcile_errors_total{job="whisperer", controller="configmapmirror"}[20m]))`: 0,
		`workqueue_depth{job="whisperer", name=~"secretmirror|configmapmirror"}`:                                       0,
		`whisperer_mirrors{job="whisperer", kind="ConfigMap", state="conflict"}`:                                       0,
		`whisperer_service_account_operations_total{job="whisperer", result="failed"}`:                                 0,
		`workqueue_depth{job="whisperer", name=~"secretmirror|configmapmirorr"}`:                                       1,
		`workqueue_depth{job="whisperer", name=~"secret.*"}`:                                                           0,
		`workqueue_depth{job="whisperer", name=~"configmap"}`:                                                          1,
		`workqueue_depth{job="whisperer", name=~"other.*"}`:                                                            1,
		`whisperer_mirrors{job="whisperer", kind="Secrets"}`:                                                           1,
		`whisperer_mirrors{job="whisperer", controller="secretmirror"}`:                                                1,
		`whisperer_mirrors{kind="Secret"}`:                                                                             1,
		`whisperer_mirrorz{job="whisperer"}`:                                                                           1,
		`controller_runtime_reconcile_total{job="other"}`:                                                              1,
	} {
		parsed, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
		if err != nil {
			t.Fatal(err)
		}
		if got := selectorProblems(parsed, "whisperer"); len(got) != want {
			t.Errorf("%s: %d problems, want %d: %q", expr, len(got), want, got)
		}
	}
}

// TestDefaultRenders renders config/default as it is, which must leave the Prometheus Operator
// resources out, and with its ../prometheus line uncommented, which must add them with the
// whisperer- prefix, in whisperer-system, scraping the metrics Service.
func TestDefaultRenders(t *testing.T) {
	plain := render(t, false)
	if len(kinds(plain, "Deployment")) != 1 {
		t.Fatalf("config/default renders no Deployment:\n%s", yamlOf(t, plain))
	}
	if got := append(kinds(plain, monitoringv1.ServiceMonitorsKind), kinds(plain, monitoringv1.PrometheusRuleKind)...); len(got) > 0 {
		t.Errorf("config/default renders %v without ../prometheus: a cluster without the Prometheus Operator CRDs could not apply it", got)
	}

	monitored := render(t, true)
	if len(monitored.Resources()) != len(plain.Resources())+2 {
		t.Errorf("../prometheus adds %d resources, want 2 (ServiceMonitor, PrometheusRule)",
			len(monitored.Resources())-len(plain.Resources()))
	}
	for kind, name := range map[string]string{
		monitoringv1.ServiceMonitorsKind: "whisperer-controller-manager-metrics-monitor",
		monitoringv1.PrometheusRuleKind:  "whisperer-alerts",
	} {
		if got := kinds(monitored, kind); !slices.Equal(got, []string{"whisperer-system/" + name}) {
			t.Errorf("%ss rendered: %v, want whisperer-system/%s", kind, got, name)
		}
	}
	if job := scrapeJob(t); job != "whisperer" {
		t.Errorf("the ServiceMonitor gives whisperer's series job=%q; the alerts select job=\"whisperer\"", job)
	}
}

// scrapeJob renders config/default with monitoring and returns the job label that the
// ServiceMonitor gives whisperer's series, after checking that it scrapes the metrics Service:
// same namespace, a selector that matches the Service, a port of the Service, HTTPS.
func scrapeJob(t *testing.T) string {
	t.Helper()
	var monitor monitoringv1.ServiceMonitor
	decodeStrict(t, "monitor.yaml", &monitor) // unknown fields would be dropped by the API server
	resources := render(t, true)
	var service corev1.Service
	fromResource(t, resources, "Service", "whisperer-controller-manager-metrics-service", &service)
	fromResource(t, resources, monitoringv1.ServiceMonitorsKind, "whisperer-controller-manager-metrics-monitor", &monitor)

	if monitor.Namespace != service.Namespace {
		t.Errorf("ServiceMonitor in %q, Service in %q: without a namespaceSelector it only sees its own namespace",
			monitor.Namespace, service.Namespace)
	}
	selector, err := metav1.LabelSelectorAsSelector(&monitor.Spec.Selector)
	if err != nil || !selector.Matches(k8slabels.Set(service.Labels)) {
		t.Errorf("the ServiceMonitor's selector %v does not select the Service labelled %v (%v)", selector, service.Labels, err)
	}
	if len(monitor.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints: %d, want 1", len(monitor.Spec.Endpoints))
	}
	endpoint := monitor.Spec.Endpoints[0]
	if !slices.ContainsFunc(service.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == endpoint.Port }) {
		t.Errorf("the ServiceMonitor scrapes port %q, which the Service does not have: %v", endpoint.Port, service.Spec.Ports)
	}
	if endpoint.Scheme.String() != "https" {
		t.Errorf("the ServiceMonitor scrapes with scheme %q; the metrics endpoint serves HTTPS", endpoint.Scheme.String())
	}
	if job := service.Labels[monitor.Spec.JobLabel]; monitor.Spec.JobLabel != "" && job != "" {
		return job
	}
	return service.Name // the Prometheus Operator's default
}

// render runs kustomize, as bin/kustomize would, on a copy of config/ where config/default
// includes ../prometheus or not.
func render(t *testing.T, withPrometheus bool) resmap.ResMap {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("..")); err != nil {
		t.Fatal(err)
	}
	kustomization := filepath.Join(dir, "default", "kustomization.yaml")
	content, err := os.ReadFile(kustomization)
	if err != nil {
		t.Fatal(err)
	}
	if n := countLines(content, prometheusLine); n != 1 {
		t.Fatalf("config/default/kustomization.yaml has %d lines %q, want 1: the documented way to enable monitoring", n, prometheusLine)
	}
	if withPrometheus {
		content = bytes.Replace(content, []byte(prometheusLine), []byte(strings.TrimPrefix(prometheusLine, "#")), 1)
		if err := os.WriteFile(kustomization, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(dir, "default"))
	if err != nil {
		t.Fatalf("kustomize build config/default (with ../prometheus: %t): %v", withPrometheus, err)
	}
	return resources
}

func countLines(content []byte, line string) int {
	n := 0
	for l := range strings.Lines(string(content)) {
		if strings.TrimSpace(l) == line {
			n++
		}
	}
	return n
}

// kinds returns namespace/name of the rendered resources of kind.
func kinds(resources resmap.ResMap, kind string) []string {
	var names []string
	for _, r := range resources.Resources() {
		if r.GetKind() == kind {
			names = append(names, r.GetNamespace()+"/"+r.GetName())
		}
	}
	return names
}

func fromResource(t *testing.T, resources resmap.ResMap, kind, name string, into any) {
	t.Helper()
	for _, r := range resources.Resources() {
		if r.GetKind() == kind && r.GetName() == name {
			content, err := r.AsYAML()
			if err != nil {
				t.Fatal(err)
			}
			if err := unmarshalStrict(content, into); err != nil {
				t.Fatalf("rendered %s %s: %v", kind, name, err)
			}
			return
		}
	}
	t.Fatalf("config/default with ../prometheus renders no %s %s", kind, name)
}

func yamlOf(t *testing.T, resources resmap.ResMap) string {
	content, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return string(content)
}

// decodeStrict decodes a file of this directory into its API type, failing on any field the type
// does not have: the API server would drop it.
func decodeStrict(t *testing.T, file string, into any) {
	t.Helper()
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := unmarshalStrict(content, into); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// unmarshalStrict decodes YAML as the API server does, and fails on unknown and duplicate fields.
// Field names are case-sensitive, unlike yaml.UnmarshalStrict's: bearerTokenfile is a typo.
func unmarshalStrict(content []byte, into any) error {
	content, err := yaml.YAMLToJSONStrict(content)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(content, into)
	return errors.Join(append(strict, err)...)
}

// markdownAnchors returns the anchors GitHub gives the headings of a Markdown file.
func markdownAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	fenced := false
	heading := regexp.MustCompile(`^#{1,6}\s+(.+?)\s*#*\s*$`)
	for _, line := range strings.Split(string(content), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		if m := heading.FindStringSubmatch(line); m != nil && !fenced {
			anchors[anchor(m[1])] = true
		}
	}
	return anchors
}

// anchor is GitHub's: lower case, punctuation other than - and _ dropped, spaces made dashes.
func anchor(heading string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ':
			return '-'
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			return unicode.ToLower(r)
		}
		return -1
	}, heading)
}

func TestAnchor(t *testing.T) {
	for heading, want := range map[string]string{
		"WhispererDown":      "whispererdown",
		"Before you start":   "before-you-start",
		"`up` == 0, (maybe)": "up--0-maybe",
	} {
		if got := anchor(heading); got != want {
			t.Errorf("anchor(%q) = %q, want %q", heading, got, want)
		}
	}
}
