package helm

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/labels"
)

// counterparts maps each object config/default installs to the chart's, by "Kind/name":
// config/default names them after its namePrefix, the chart after the release. Add an object to
// config/default and this test fails until the chart renders it too.
var counterparts = map[string]string{
	"ServiceAccount/whisperer-controller-manager":           "ServiceAccount/whisperer",
	"Deployment/whisperer-controller-manager":               "Deployment/whisperer",
	"ClusterRole/whisperer-manager-role":                    "ClusterRole/whisperer",
	"ClusterRoleBinding/whisperer-manager-rolebinding":      "ClusterRoleBinding/whisperer",
	"Role/whisperer-leader-election-role":                   "Role/whisperer-leader-election",
	"RoleBinding/whisperer-leader-election-rolebinding":     "RoleBinding/whisperer-leader-election",
	"ClusterRole/whisperer-metrics-auth-role":               "ClusterRole/whisperer-metrics-auth",
	"ClusterRoleBinding/whisperer-metrics-auth-rolebinding": "ClusterRoleBinding/whisperer-metrics-auth",
	"ClusterRole/whisperer-metrics-reader":                  "ClusterRole/whisperer-metrics-reader",
	"Service/whisperer-controller-manager-metrics-service":  "Service/whisperer-metrics",
}

// notRendered are the objects of config/default that the chart leaves to Helm: helm install
// installs into an existing namespace, or creates it with --create-namespace.
var notRendered = []string{"Namespace/whisperer-system"}

// TestDefaultsInstallWhatConfigDefaultInstalls renders the chart with its default values and
// config/default with kustomize, and compares them object by object: the same objects, in the
// same namespace, with the same RBAC rules and bindings, the same metrics Service, and the same
// Deployment but for what the chart changes by design (replicas, labels, names).
func TestDefaultsInstallWhatConfigDefaultInstalls(t *testing.T) {
	config := kustomize(t, "default")
	chart, _ := render(t, "")

	for _, key := range config.keys() {
		if slices.Contains(notRendered, key) {
			continue
		}
		if _, ok := counterparts[key]; !ok {
			t.Errorf("config/default installs %s, which the chart has no counterpart of: render it and add it to counterparts", key)
		}
	}
	var wantKeys []string
	for from, to := range counterparts {
		if _, ok := config[from]; !ok {
			t.Errorf("config/default no longer installs %s: remove it from counterparts and from the chart", from)
		}
		wantKeys = append(wantKeys, to)
	}
	slices.Sort(wantKeys)
	if got := chart.keys(); !slices.Equal(got, wantKeys) {
		t.Fatalf("the chart renders %v, want the counterparts of config/default's: %v", got, wantKeys)
	}

	for from, to := range counterparts {
		kind, configName, _ := strings.Cut(from, "/")
		_, chartName, _ := strings.Cut(to, "/")
		t.Run(from, func(t *testing.T) {
			if got, want := chart[to].GetNamespace(), config[from].GetNamespace(); got != want {
				t.Errorf("%s is in namespace %q, %s in %q", to, got, from, want)
			}
			switch kind {
			case "ClusterRole", "Role":
				var want, got rbacv1.ClusterRole // a Role's rules decode the same
				want.Rules, got.Rules = rules(t, config, kind, configName), rules(t, chart, kind, chartName)
				if diff := cmp.Diff(want.Rules, got.Rules); diff != "" {
					t.Errorf("the rules of %s differ from %s's (-config +chart):\n%s", to, from, diff)
				}
			case "ClusterRoleBinding", "RoleBinding":
				compareBindings(t, config, chart, kind, configName, chartName)
			case "Service":
				compareServices(t, config, chart, configName, chartName)
			case "Deployment":
				compareDeployments(t, config, chart, configName, chartName)
			case "ServiceAccount":
				// Its name and namespace are what the bindings and the Deployment check.
			default:
				t.Errorf("no comparison for a %s", kind)
			}
		})
	}
}

func rules(t *testing.T, o objects, kind, name string) []rbacv1.PolicyRule {
	t.Helper()
	role := &rbacv1.Role{}
	o.decode(t, kind, name, role)
	if len(role.Rules) == 0 {
		t.Fatalf("%s %s has no rules", kind, name)
	}
	return role.Rules
}

// compareBindings checks that the chart's binding binds the counterpart of the role that
// config/default's binds, to the counterparts of its subjects.
func compareBindings(t *testing.T, config, chart objects, kind, configName, chartName string) {
	want, got := &rbacv1.ClusterRoleBinding{}, &rbacv1.ClusterRoleBinding{} // a RoleBinding decodes the same
	config.decode(t, kind, configName, want)
	chart.decode(t, kind, chartName, got)
	want.RoleRef.Name = counterpartName(t, want.RoleRef.Kind, want.RoleRef.Name)
	for i, s := range want.Subjects {
		want.Subjects[i].Name = counterpartName(t, s.Kind, s.Name)
	}
	if diff := cmp.Diff(want.RoleRef, got.RoleRef); diff != "" {
		t.Errorf("%s %s binds another role (-want +got):\n%s", kind, chartName, diff)
	}
	if diff := cmp.Diff(want.Subjects, got.Subjects); diff != "" {
		t.Errorf("%s %s binds other subjects (-want +got):\n%s", kind, chartName, diff)
	}
}

func counterpartName(t *testing.T, kind, name string) string {
	t.Helper()
	to, ok := counterparts[kind+"/"+name]
	if !ok {
		t.Fatalf("no counterpart of %s %s", kind, name)
	}
	_, chartName, _ := strings.Cut(to, "/")
	return chartName
}

// compareServices checks that the chart's metrics Service has the same ports and selects the
// chart's operator pods.
func compareServices(t *testing.T, config, chart objects, configName, chartName string) {
	want, got := &corev1.Service{}, &corev1.Service{}
	config.decode(t, "Service", configName, want)
	chart.decode(t, "Service", chartName, got)
	deployment := &appsv1.Deployment{}
	chart.decode(t, "Deployment", counterpartName(t, "Deployment", "whisperer-controller-manager"), deployment)
	if selector := labels.SelectorFromSet(got.Spec.Selector); got.Spec.Selector == nil || !selector.Matches(labels.Set(deployment.Spec.Template.Labels)) {
		t.Errorf("Service %s selects %v, which the operator's pods (%v) do not match", chartName, got.Spec.Selector, deployment.Spec.Template.Labels)
	}
	want.Spec.Selector, got.Spec.Selector = nil, nil
	if diff := cmp.Diff(want.Spec, got.Spec); diff != "" {
		t.Errorf("Service %s differs from %s (-config +chart):\n%s", chartName, configName, diff)
	}
}

// compareDeployments compares the whole Deployments, after removing what the chart changes by
// design: its replicas (two, with leader election), its labels and selector (the release's), the
// ServiceAccount's name (the release's), an image pull policy that config/ leaves to its default,
// and the order of the arguments.
func compareDeployments(t *testing.T, config, chart objects, configName, chartName string) {
	want, got := &appsv1.Deployment{}, &appsv1.Deployment{}
	config.decode(t, "Deployment", configName, want)
	chart.decode(t, "Deployment", chartName, got)
	if want.Spec.Template.Spec.ServiceAccountName != "" {
		want.Spec.Template.Spec.ServiceAccountName = counterpartName(t, "ServiceAccount", want.Spec.Template.Spec.ServiceAccountName)
	}
	if got.Spec.Replicas == nil || *got.Spec.Replicas != 2 {
		t.Errorf("the chart's default replicas: %v, want 2", got.Spec.Replicas)
	}
	for _, d := range []*appsv1.Deployment{want, got} {
		d.Spec.Replicas, d.Spec.Selector, d.Spec.Template.Labels = nil, nil, nil
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			slices.Sort(c.Args)
			if c.ImagePullPolicy == "" && !strings.HasSuffix(c.Image, ":latest") {
				c.ImagePullPolicy = corev1.PullIfNotPresent // what the API server sets
			}
		}
	}
	if !equality.Semantic.DeepEqual(want.Spec, got.Spec) {
		t.Errorf("the chart's Deployment differs from config/default's (-config +chart):\n%s", cmp.Diff(want.Spec, got.Spec))
	}
}

// TestMonitoringIsConfigPrometheus renders the ServiceMonitor and the PrometheusRule and compares
// them with config/prometheus: the same alerts (with their runbook links), and the same endpoint
// and job label, selecting the chart's metrics Service.
func TestMonitoringIsConfigPrometheus(t *testing.T) {
	chart, _ := render(t, "{metrics: {serviceMonitor: {enabled: true}}, prometheusRule: {enabled: true}}")

	rule := chart.get(t, "PrometheusRule", releaseName)
	want := readObject(t, "prometheus/alerts.yaml").Object["spec"]
	if diff := cmp.Diff(want, rule.Object["spec"]); diff != "" {
		t.Errorf("the PrometheusRule's spec differs from config/prometheus/alerts.yaml's (-config +chart):\n%s", diff)
	}
	runbooks := 0
	for _, group := range rule.Object["spec"].(map[string]any)["groups"].([]any) {
		for _, r := range group.(map[string]any)["rules"].([]any) {
			if url, _ := r.(map[string]any)["annotations"].(map[string]any)["runbook_url"].(string); strings.Contains(url, "docs/runbooks.md#") {
				runbooks++
			}
		}
	}
	if runbooks == 0 {
		t.Error("no alert of the PrometheusRule links its runbook")
	}

	monitor := chart.get(t, "ServiceMonitor", releaseName)
	wantSpec := readObject(t, "prometheus/monitor.yaml").Object["spec"].(map[string]any)
	gotSpec := monitor.Object["spec"].(map[string]any)
	service := chart.get(t, "Service", releaseName+"-metrics")
	var selector struct {
		MatchLabels map[string]string `json:"matchLabels"`
	}
	if err := convert(gotSpec["selector"], &selector); err != nil || len(selector.MatchLabels) == 0 ||
		!labels.SelectorFromSet(selector.MatchLabels).Matches(labels.Set(service.GetLabels())) {
		t.Errorf("the ServiceMonitor selects %v, which the metrics Service (%v) does not match (%v)", gotSpec["selector"], service.GetLabels(), err)
	}
	if monitor.GetNamespace() != service.GetNamespace() {
		t.Errorf("the ServiceMonitor is in %s, the Service in %s", monitor.GetNamespace(), service.GetNamespace())
	}
	delete(wantSpec, "selector")
	delete(gotSpec, "selector")
	if diff := cmp.Diff(wantSpec, gotSpec); diff != "" {
		t.Errorf("the ServiceMonitor's spec differs from config/prometheus/monitor.yaml's (-config +chart):\n%s", diff)
	}
	if job := service.GetLabels()[gotSpec["jobLabel"].(string)]; job != "whisperer" {
		t.Errorf("the metrics Service's %s label is %q: the alerts select job=\"whisperer\"", gotSpec["jobLabel"], job)
	}
}
