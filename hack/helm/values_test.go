package helm

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	release "helm.sh/helm/v4/pkg/release/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

// valueCase sets a documented value and checks its effect on what the chart renders.
type valueCase struct {
	// path is the value, as README's table and the schema name it.
	path string
	// values are the values given to helm install, in YAML.
	values string
	check  func(t *testing.T, o objects, rel *release.Release)
}

func deployment(t *testing.T, o objects) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	o.decode(t, "Deployment", releaseName, d)
	return d
}

func manager(t *testing.T, o objects) corev1.Container {
	t.Helper()
	containers := deployment(t, o).Spec.Template.Spec.Containers
	if len(containers) != 1 || containers[0].Name != "manager" {
		t.Fatalf("containers %v, want the manager alone", containers)
	}
	return containers[0]
}

// hasArg checks that the manager has the argument want, and no other of the same flag.
func hasArg(want string) func(t *testing.T, o objects, _ *release.Release) {
	return func(t *testing.T, o objects, _ *release.Release) {
		t.Helper()
		flag, _, _ := strings.Cut(want, "=")
		var same []string
		for _, arg := range manager(t, o).Args {
			if strings.HasPrefix(arg, flag+"=") || arg == flag {
				same = append(same, arg)
			}
		}
		if !slices.Equal(same, []string{want}) {
			t.Errorf("args %v: want %s once", manager(t, o).Args, want)
		}
	}
}

// equal checks that what get returns from the rendered objects equals the value set, given in YAML.
func equal[T any](want string, get func(t *testing.T, o objects) T) func(t *testing.T, o objects, _ *release.Release) {
	return func(t *testing.T, o objects, _ *release.Release) {
		t.Helper()
		var w T
		if err := yaml.UnmarshalStrict([]byte(want), &w); err != nil {
			t.Fatal(err)
		}
		if got := get(t, o); !equality.Semantic.DeepEqual(w, got) {
			t.Errorf("rendered %s (-want +got):\n%s", want, cmp.Diff(w, got))
		}
	}
}

// passed checks that the value set at path is what get returns from the rendered objects: a value
// passed on as it is.
func passed[T any](path string, get func(t *testing.T, o objects) T) func(t *testing.T, o objects, rel *release.Release) {
	return func(t *testing.T, o objects, rel *release.Release) {
		t.Helper()
		var value any = rel.Config
		for _, key := range strings.Split(path, ".") {
			value = value.(map[string]any)[key]
		}
		var want T
		if err := convert(value, &want); err != nil {
			t.Fatal(err)
		}
		if got := get(t, o); !equality.Semantic.DeepEqual(want, got) {
			t.Errorf("%s rendered (-want +got):\n%s", path, cmp.Diff(want, got))
		}
	}
}

func podSpec(t *testing.T, o objects) corev1.PodSpec { return deployment(t, o).Spec.Template.Spec }

// valueCases cover every value of values.yaml: TestEveryDocumentedValue fails when one has no case.
var valueCases = []valueCase{
	{"policy.sourceNamespaces", "policy: {sourceNamespaces: [secrets-admin, team-*]}", hasArg("--source-namespaces=secrets-admin,team-*")},
	{"policy.excludeNamespaces", "policy: {excludeNamespaces: [kube-*, monitoring]}", hasArg("--exclude-namespaces=kube-*,monitoring")},
	// An explicit empty list clears the operator's default exclusions.
	{"policy.excludeNamespaces", "policy: {excludeNamespaces: []}", hasArg("--exclude-namespaces=")},
	{"policy.requireTargetLabel", "policy: {requireTargetLabel: secret-syncer.jeffl.es/allow-mirrors=true}",
		hasArg("--require-target-label=secret-syncer.jeffl.es/allow-mirrors=true")},
	{"policy.denyMetadata", "policy: {denyMetadata: [example.com/owner, billing.example.com/*]}",
		hasArg("--deny-metadata=example.com/owner,billing.example.com/*")},
	// Helm reads numbers as float64: a million must not render as 1e+06.
	{"policy.maxSourceSize", "policy: {maxSourceSize: 1000000}", hasArg("--max-source-size=1000000")},
	{"policy.maxTargetsPerSource", "policy: {maxTargetsPerSource: 2000}", hasArg("--max-targets-per-source=2000")},
	// Each feature off, alone and with the others the operator allows off: narrows checks the
	// argument and the ClusterRole; testdata/mistakes.yaml has the combinations it refuses.
	{"features.mirrorConfigMaps", "features: {mirrorConfigMaps: false}", narrows("secrets,serviceaccounts", "configmaps")},
	{"features.attachPullSecrets", "features: {attachPullSecrets: false}", narrows("secrets,configmaps", "serviceaccounts")},
	{"features.attachPullSecrets", "features: {mirrorConfigMaps: false, attachPullSecrets: false}", narrows("secrets", "configmaps", "serviceaccounts")},
	{"features.mirrorSecrets", "features: {mirrorSecrets: false, attachPullSecrets: false}", narrows("configmaps", "secrets", "serviceaccounts")},
	{"replicaCount", "replicaCount: 3", passed("replicaCount", func(t *testing.T, o objects) int32 { return *deployment(t, o).Spec.Replicas })},
	{"image.repository", "image: {repository: registry.example.com/whisperer}",
		equal("registry.example.com/whisperer:v0.1.0", func(t *testing.T, o objects) string { return manager(t, o).Image })},
	{"image.tag", "image: {tag: v9.9.9}",
		equal("ghcr.io/whisperer-operator/whisperer:v9.9.9", func(t *testing.T, o objects) string { return manager(t, o).Image })},
	{"image.pullPolicy", "image: {pullPolicy: Always}",
		passed("image.pullPolicy", func(t *testing.T, o objects) corev1.PullPolicy { return manager(t, o).ImagePullPolicy })},
	{"imagePullSecrets", "imagePullSecrets: [{name: registry-credentials}]",
		passed("imagePullSecrets", func(t *testing.T, o objects) []corev1.LocalObjectReference { return podSpec(t, o).ImagePullSecrets })},
	{"serviceAccount.create", "serviceAccount: {create: false, name: existing}", func(t *testing.T, o objects, _ *release.Release) {
		if sa, ok := o["ServiceAccount/existing"]; ok {
			t.Errorf("the chart created ServiceAccount %s", sa.GetName())
		}
		checkServiceAccount(t, o, "existing")
	}},
	{"serviceAccount.name", "serviceAccount: {name: mirror-bot}", func(t *testing.T, o objects, _ *release.Release) {
		o.get(t, "ServiceAccount", "mirror-bot")
		checkServiceAccount(t, o, "mirror-bot")
	}},
	{"serviceAccount.annotations", "serviceAccount: {annotations: {eks.amazonaws.com/role-arn: 'arn:aws:iam::1:role/whisperer'}}",
		passed("serviceAccount.annotations", func(t *testing.T, o objects) map[string]string {
			return o.get(t, "ServiceAccount", releaseName).GetAnnotations()
		})},
	{"resources", "resources: {limits: {cpu: '1', memory: 256Mi}, requests: {cpu: 50m, memory: 128Mi}}", func(t *testing.T, o objects, r *release.Release) {
		passed("resources", func(t *testing.T, o objects) corev1.ResourceRequirements { return manager(t, o).Resources })(t, o, r)
		// GOMEMLIMIT follows the limit: it is read from it.
		equal("[{name: GOMEMLIMIT, valueFrom: {resourceFieldRef: {containerName: manager, resource: limits.memory}}}]",
			func(t *testing.T, o objects) []corev1.EnvVar { return manager(t, o).Env })(t, o, r)
	}},
	// Helm merges a map given with the default: null removes a default, as README says.
	{"resources", "resources: {limits: {cpu: null}}",
		equal("{limits: {memory: 128Mi}, requests: {cpu: 10m, memory: 64Mi}}", func(t *testing.T, o objects) corev1.ResourceRequirements {
			return manager(t, o).Resources
		})},
	{"podSecurityContext", "podSecurityContext: {runAsNonRoot: true, runAsUser: 1000, fsGroup: 2000, seccompProfile: {type: RuntimeDefault}}",
		passed("podSecurityContext", func(t *testing.T, o objects) *corev1.PodSecurityContext { return podSpec(t, o).SecurityContext })},
	{"securityContext", "securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsUser: 1001, capabilities: {drop: [ALL]}}",
		passed("securityContext", func(t *testing.T, o objects) *corev1.SecurityContext { return manager(t, o).SecurityContext })},
	{"nodeSelector", "nodeSelector: {kubernetes.io/os: linux}",
		passed("nodeSelector", func(t *testing.T, o objects) map[string]string { return podSpec(t, o).NodeSelector })},
	{"tolerations", "tolerations: [{key: dedicated, operator: Equal, value: infra, effect: NoSchedule}]",
		passed("tolerations", func(t *testing.T, o objects) []corev1.Toleration { return podSpec(t, o).Tolerations })},
	{"affinity", "affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: [{weight: 100, podAffinityTerm: {topologyKey: kubernetes.io/hostname, labelSelector: {matchLabels: {app.kubernetes.io/name: whisperer}}}}]}}",
		passed("affinity", func(t *testing.T, o objects) *corev1.Affinity { return podSpec(t, o).Affinity })},
	{"topologySpreadConstraints", "topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app.kubernetes.io/name: whisperer}}}]",
		passed("topologySpreadConstraints", func(t *testing.T, o objects) []corev1.TopologySpreadConstraint {
			return podSpec(t, o).TopologySpreadConstraints
		})},
	{"priorityClassName", "priorityClassName: system-cluster-critical",
		passed("priorityClassName", func(t *testing.T, o objects) string { return podSpec(t, o).PriorityClassName })},
	{"podAnnotations", "podAnnotations: {example.com/team: platform, kubectl.kubernetes.io/default-container: other}",
		equal("{example.com/team: platform, kubectl.kubernetes.io/default-container: manager}",
			func(t *testing.T, o objects) map[string]string { return deployment(t, o).Spec.Template.Annotations })},
	// A label of the selector given again keeps the selector's value: the pods must stay selected.
	{"podLabels", "podLabels: {example.com/team: platform, app.kubernetes.io/name: other}", func(t *testing.T, o objects, _ *release.Release) {
		d := deployment(t, o)
		want := map[string]string{"example.com/team": "platform", "app.kubernetes.io/name": "whisperer", "app.kubernetes.io/instance": releaseName}
		if !maps.Equal(d.Spec.Template.Labels, want) {
			t.Errorf("pod labels %v, want %v", d.Spec.Template.Labels, want)
		}
		if _, ok := d.Spec.Selector.MatchLabels["example.com/team"]; ok {
			t.Errorf("the selector %v has the pod label: changing it would orphan the pods", d.Spec.Selector.MatchLabels)
		}
	}},
	{"extraArgs", "extraArgs: [--resync-period=30m, --zap-log-level=debug]", func(t *testing.T, o objects, _ *release.Release) {
		if args := manager(t, o).Args; !slices.Equal(args[len(args)-2:], []string{"--resync-period=30m", "--zap-log-level=debug"}) {
			t.Errorf("args %v: want --resync-period=30m --zap-log-level=debug last", args)
		}
	}},
	{"extraEnv", "extraEnv: [{name: OTEL_TRACES_EXPORTER, value: otlp}, {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]",
		equal("[{name: GOMEMLIMIT, valueFrom: {resourceFieldRef: {containerName: manager, resource: limits.memory}}}, {name: OTEL_TRACES_EXPORTER, value: otlp}, {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]",
			func(t *testing.T, o objects) []corev1.EnvVar { return manager(t, o).Env })},
	{"metrics.enabled", "metrics: {enabled: false}", func(t *testing.T, o objects, _ *release.Release) {
		for _, key := range []string{"Service/whisperer-metrics", "ClusterRole/whisperer-metrics-auth", "ClusterRoleBinding/whisperer-metrics-auth", "ClusterRole/whisperer-metrics-reader"} {
			if _, ok := o[key]; ok {
				t.Errorf("%s rendered without metrics", key)
			}
		}
		if args := manager(t, o).Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--metrics-bind-address") }) {
			t.Errorf("args %v: the metrics endpoint is on", args)
		}
	}},
	{"metrics.serviceMonitor.enabled", "metrics: {serviceMonitor: {enabled: true}}", func(t *testing.T, o objects, _ *release.Release) {
		o.get(t, "ServiceMonitor", releaseName) // TestMonitoringIsConfigPrometheus checks what it holds
	}},
	{"metrics.serviceMonitor.labels", "metrics: {serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}}",
		equal("kube-prometheus-stack", func(t *testing.T, o objects) string {
			return o.get(t, "ServiceMonitor", releaseName).GetLabels()["release"]
		})},
	{"metrics.serviceMonitor.interval", "metrics: {serviceMonitor: {enabled: true, interval: 30s}}",
		equal("[{port: https, scheme: https, path: /metrics, interval: 30s, bearerTokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token, tlsConfig: {insecureSkipVerify: true}}]",
			func(t *testing.T, o objects) []map[string]any {
				var endpoints []map[string]any
				if err := convert(o.get(t, "ServiceMonitor", releaseName).Object["spec"].(map[string]any)["endpoints"], &endpoints); err != nil {
					t.Fatal(err)
				}
				return endpoints
			})},
	{"prometheusRule.enabled", "prometheusRule: {enabled: true}", func(t *testing.T, o objects, _ *release.Release) {
		o.get(t, "PrometheusRule", releaseName) // TestMonitoringIsConfigPrometheus checks what it holds
	}},
	{"prometheusRule.labels", "prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}",
		equal("kube-prometheus-stack", func(t *testing.T, o objects) string {
			return o.get(t, "PrometheusRule", releaseName).GetLabels()["release"]
		})},
}

// checkServiceAccount checks that the operator runs as name, and that every binding binds it.
func checkServiceAccount(t *testing.T, o objects, name string) {
	t.Helper()
	if got := podSpec(t, o).ServiceAccountName; got != name {
		t.Errorf("the operator runs as %s, want %s", got, name)
	}
	for _, key := range o.keys() {
		kind, bindingName, _ := strings.Cut(key, "/")
		if kind != "ClusterRoleBinding" && kind != "RoleBinding" {
			continue
		}
		b := &rbacv1.ClusterRoleBinding{}
		o.decode(t, kind, bindingName, b)
		want := []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: releaseNamespace}}
		if !slices.Equal(b.Subjects, want) {
			t.Errorf("%s binds %v, want %v", key, b.Subjects, want)
		}
	}
}

// TestEveryDocumentedValue renders the chart once with each case's values, checks the value's
// effect, and lints the chart with them: no error, no warning. The values it covers must be
// exactly those of values.yaml, of the schema and of the chart's README.
func TestEveryDocumentedValue(t *testing.T) {
	schemaValues, defaults := documentedValues(t)
	var covered []string
	for _, c := range valueCases {
		covered = append(covered, c.path)
	}
	slices.Sort(covered)
	covered = slices.Compact(covered)
	if !slices.Equal(covered, schemaValues) {
		t.Errorf("the cases cover %v, values.schema.json documents %v", covered, schemaValues)
	}
	if !slices.Equal(defaults, schemaValues) {
		t.Errorf("values.yaml has %v, values.schema.json documents %v", defaults, schemaValues)
	}
	if readme := readmeValues(t); !slices.Equal(readme, schemaValues) {
		t.Errorf("charts/whisperer/README.md documents %v, values.schema.json %v", readme, schemaValues)
	}

	_, defaultRelease := render(t, "")
	for _, c := range valueCases {
		t.Run(c.path+"="+c.values, func(t *testing.T) {
			o, rel := render(t, c.values)
			if rel.Manifest == defaultRelease.Manifest {
				t.Fatalf("%s renders what the defaults render", c.values)
			}
			c.check(t, o, rel)
			lintClean(t, parseValues(t, c.values))
		})
	}
}

// documentedValues returns the values the schema documents, sorted: the paths of its properties
// down to those that have none of their own (a list, a string, a Kubernetes object passed as it
// is); and those of them that values.yaml sets (a default, possibly null), which must be all.
// values.yaml has no other: helm lint validates it against the schema, which allows no other.
func documentedValues(t *testing.T) (schemaPaths, valuesPaths []string) {
	t.Helper()
	type schemaNode struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	var walkSchema func(prefix string, raw json.RawMessage)
	walkSchema = func(prefix string, raw json.RawMessage) {
		var n schemaNode
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatal(err)
		}
		if len(n.Properties) == 0 {
			schemaPaths = append(schemaPaths, prefix)
			return
		}
		for name, child := range n.Properties {
			walkSchema(strings.TrimPrefix(prefix+"."+name, "."), child)
		}
	}
	schema, err := os.ReadFile(chartDir + "/values.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	walkSchema("", schema)
	slices.Sort(schemaPaths)

	values := parseValues(t, readString(t, chartDir+"/values.yaml"))
	for _, path := range schemaPaths {
		if hasPath(values, path) {
			valuesPaths = append(valuesPaths, path)
		}
	}
	return schemaPaths, valuesPaths
}

// hasPath reports whether the dotted path is a key of values (its value may be null).
func hasPath(values map[string]any, path string) bool {
	keys := strings.Split(path, ".")
	for i, key := range keys {
		v, ok := values[key]
		if !ok {
			return false
		}
		if i == len(keys)-1 {
			return true
		}
		if values, ok = v.(map[string]any); !ok {
			return false
		}
	}
	return false
}

func readString(t *testing.T, path string) string {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(content)
}

// readmeValues returns the values the chart's README documents: the first cell of each row of its
// tables, when it is a value's path in backquotes.
func readmeValues(t *testing.T) []string {
	t.Helper()
	row := regexp.MustCompile("(?m)^\\| `([a-zA-Z.]+)` \\|")
	var out []string
	for _, m := range row.FindAllStringSubmatch(readString(t, chartDir+"/README.md"), -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// lintClean runs helm lint --strict on the chart with vals: it must find no error and no warning.
func lintClean(t *testing.T, vals map[string]any) {
	t.Helper()
	l := action.NewLint()
	l.Strict, l.Namespace = true, releaseNamespace
	kv, err := common.ParseKubeVersion(minKubeVersion(t))
	if err != nil {
		t.Fatal(err)
	}
	l.KubeVersion = kv
	result := l.Run([]string{chartDir}, vals)
	if result.TotalChartsLinted != 1 {
		t.Fatalf("linted %d charts: %v", result.TotalChartsLinted, result.Errors)
	}
	for _, m := range result.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		} else {
			t.Logf("helm lint: %s", m)
		}
	}
	if len(result.Errors) > 0 {
		t.Errorf("helm lint: %v", result.Errors)
	}
}

func TestLintDefaults(t *testing.T) {
	lintClean(t, nil)
}

// TestSchemaRefusesMistakes gives helm install the misspelt, mistyped and contradictory values of
// testdata/mistakes.yaml: each must fail, with a message that says what the file says.
func TestSchemaRefusesMistakes(t *testing.T) {
	var mistakes []struct {
		Values map[string]any `json:"values"`
		Says   []string       `json:"says"`
	}
	if err := yaml.UnmarshalStrict([]byte(readString(t, "testdata/mistakes.yaml")), &mistakes); err != nil {
		t.Fatal(err)
	}
	for _, m := range mistakes {
		given, err := yaml.Marshal(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(strings.TrimSpace(string(given)), func(t *testing.T) {
			_, err := install(loadChart(t), m.Values, minKubeVersion(t))
			if err == nil {
				t.Fatalf("helm install accepted %s", given)
			}
			for _, want := range m.Says {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("helm install refused %s with %q, which does not say %q", given, err, want)
				}
			}
		})
	}
}

// TestKubeVersionIsTheBundles checks that the chart installs on the oldest Kubernetes the OLM
// bundle supports (minKubeVersion), and refuses older ones, as OLM does.
func TestKubeVersionIsTheBundles(t *testing.T) {
	oldest := minKubeVersion(t)
	if _, err := install(loadChart(t), nil, oldest); err != nil {
		t.Errorf("the chart does not install on Kubernetes %s, the bundle's minKubeVersion: %v", oldest, err)
	}
	v, err := semver.NewVersion(oldest)
	if err != nil {
		t.Fatal(err)
	}
	older := fmt.Sprintf("%d.%d.99", v.Major(), v.Minor()-1)
	if _, err := install(loadChart(t), nil, older); err == nil || !strings.Contains(err.Error(), "kubeVersion") {
		t.Errorf("the chart installs on Kubernetes %s, older than the bundle's minKubeVersion %s (%v)", older, oldest, err)
	}
}
