//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/whisperer-operator/whisperer/test/localcluster"
)

// runbookStep is one command of docs/runbooks.md and how it runs here. A command runs as it is
// written, its placeholders (<source>, <target>...) replaced by vars, unless as says what runs
// in its place, and why, or why alone says why nothing can: the local control plane has no
// kubelet, so nothing reached through one (a pod's logs, a port-forward) exists, and whisperer
// runs as a process on this machine instead of in the Deployment's pod. A step passes when its
// command exits 0 and its output holds every string of want; then, if set, checks what the
// command should have done.
type runbookStep struct {
	line string
	vars map[string]string
	as   string
	why  string
	want []string
	then func(t *testing.T, out string)
}

// Every command of the runbooks, run against the local control plane with whisperer deployed as
// `make deploy` deploys it (config/default with ../prometheus), its Deployment's pod created but
// never run (no kubelet), and the operator itself run as a process with that Deployment's
// ServiceAccount, flags and JSON logs, in the state the runbooks diagnose: a source mirrored, a
// conflict, a refused source, writes refused by a full quota. Each command must print what its
// runbook says it shows. A command added to the runbooks without a step here fails the test,
// and so does a step whose command the runbooks no longer have.
func TestRunbookCommands(t *testing.T) {
	e := newEnvWith(t, localcluster.Options{Controllers: append(slices.Clone(localcluster.DefaultControllers),
		"resourcequota", "deployment", "replicaset", "endpointslice")})
	runbook := readRunbooks(t, "../../docs/runbooks.md")

	// What make deploy applies with monitoring on, the Prometheus Operator's CRDs first, and the
	// ServiceAccount of a Prometheus (the runbooks' monitoring/prometheus-k8s).
	e.apply(monitoringCRDs(t))
	eventually(t, time.Minute, "the monitoring CRDs are served", func(ctx context.Context) error {
		_, err := runShell(t, ctx, "kubectl get servicemonitors,prometheusrules -A", e.shellEnv())
		return err
	})
	e.apply(renderWithMonitoring(t))
	e.createNamespaces("monitoring", "rb-src", "rb-other", "rb-x", "rb-q", "rb-t-0", "rb-t-1")
	if err := e.admin.Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: "prometheus-k8s"}}); err != nil {
		t.Fatal(err)
	}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "rb-x", Name: "registry"}, Data: map[string][]byte{"owner": []byte("someone else")}}
	if err := e.admin.Create(t.Context(), foreign); err != nil {
		t.Fatal(err)
	}
	e.fullSecretQuota("rb-q")

	pprof := freePort(t)
	op, _ := e.runAsServiceAccount("runbooks", types.NamespacedName{Namespace: "whisperer-system", Name: "whisperer-controller-manager"},
		append(deployedArgs(t), "--leader-election-namespace=whisperer-system", "--metrics-secure=true", "--zap-encoder=json",
			"--source-namespaces=rb-src", "--conflict-retry-interval=2s", "--pprof-bind-address=127.0.0.1:"+pprof)...)
	// A Prometheus of the test's own scrapes whisperer throughout, for the runbooks' queries.
	scraper := types.NamespacedName{Namespace: "monitoring", Name: "scraper"}
	e.apply(decodeYAML(t, []byte(`
apiVersion: v1
kind: ServiceAccount
metadata: {namespace: monitoring, name: scraper}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: scraper-whisperer-metrics}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: whisperer-metrics-reader}
subjects: [{kind: ServiceAccount, namespace: monitoring, name: scraper}]
`)))
	op.bearer = e.token(scraper)
	prom := e.startPrometheus()
	prom.scrape(op)
	prom.tick()

	source := types.NamespacedName{Namespace: "rb-src", Name: "registry"}
	// A pull secret, attached to the default ServiceAccounts of the namespaces that get it, and
	// a ConfigMap source, for the runbooks' ServiceAccount query and ConfigMap commands.
	e.createPullSecretSource(source, "rb-t-*, rb-x")
	settings := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "rb-src", Name: "settings",
		Labels: map[string]string{syncLabel: "true"}, Annotations: map[string]string{namespacesAnnotation: "rb-t-*"}},
		Data: map[string]string{"region": "eu"}}
	if err := e.admin.Create(t.Context(), settings); err != nil {
		t.Fatal(err)
	}
	// A source of its own for the quota: the retries of a source whose writes fail back off,
	// and would hold back the resolution of the other's conflict.
	blocked := types.NamespacedName{Namespace: "rb-src", Name: "blocked"}
	e.createSource(blocked.Namespace, blocked.Name, "rb-q", map[string][]byte{"k": []byte("v")})
	refused := e.createSource("rb-other", "pushed", "rb-t-*", map[string][]byte{"k": []byte("v")})
	e.waitMirrors(source, sets.New("rb-t-0", "rb-t-1"), time.Minute)
	eventually(t, time.Minute, "the pull secret attached to the default ServiceAccounts", func(ctx context.Context) error {
		if n := e.attachedIn(ctx, []string{"rb-t-0", "rb-t-1"}); n != 2 {
			return fmt.Errorf("attached in %d of 2 namespaces", n)
		}
		return nil
	})
	eventually(t, time.Minute, "a reconcile error in the log", func(context.Context) error {
		if !strings.Contains(op.logTail(), "Reconciler error") {
			return errors.New("none yet")
		}
		return nil
	})

	metricsPort := strings.TrimSuffix(strings.TrimPrefix(op.metrics, "https://127.0.0.1:"), "/metrics")
	fromLog := func(line string) string {
		return regexp.MustCompile(`kubectl -n whisperer-system logs deploy/whisperer-controller-manager( --since=1h)?`).
			ReplaceAllString(line, "cat "+op.logPath)
	}
	noKubelet := "no kubelet here: the API server cannot reach the pod's container (whisperer runs as a process, whose log is read instead)"
	var reconcilesBefore float64
	steps := []runbookStep{
		{line: "kubectl -n whisperer-system get pods -l control-plane=controller-manager -o wide", want: []string{"whisperer-controller-manager-", "Pending"}},
		{line: "kubectl -n whisperer-system get pods -l control-plane=controller-manager", want: []string{"whisperer-controller-manager-"}},
		{line: "kubectl -n whisperer-system describe pods -l control-plane=controller-manager", want: []string{"whisperer-controller-manager-", "Liveness:", "Readiness:", "Limits:", "Requests:"}},
		{
			line: "kubectl -n whisperer-system get deploy whisperer-controller-manager -o jsonpath='{.spec.template.spec.containers[0].args}'",
			want: []string{"--leader-elect", "--metrics-bind-address=:8443"},
		},
		{
			line: `kubectl -n whisperer-system logs deploy/whisperer-controller-manager --since=1h | grep '"Reconciler error"'`,
			as:   fromLog(`kubectl -n whisperer-system logs deploy/whisperer-controller-manager --since=1h | grep '"Reconciler error"'`),
			why:  noKubelet, want: []string{`"controller":"secretmirror","namespace":"rb-src","name":"blocked"`, "exceeded quota"},
		},
		{line: "kubectl -n whisperer-system logs deploy/whisperer-controller-manager --previous", why: noKubelet + "; and no container ever restarted"},
		{
			line: "kubectl -n whisperer-system logs deploy/whisperer-controller-manager | grep -i lease",
			as:   fromLog("kubectl -n whisperer-system logs deploy/whisperer-controller-manager | grep -i lease"),
			why:  noKubelet, want: []string{"lease"},
		},
		{line: "kubectl get secrets -A -l secret-syncer.jeffl.es/sync=true", want: []string{"rb-src", "registry", "blocked", "rb-other", "pushed"}},
		{line: "kubectl get secrets -A -l secret-syncer.jeffl.es/mirror=true", want: []string{"rb-t-0", "rb-t-1"}},
		{line: "kubectl get configmaps -A -l secret-syncer.jeffl.es/sync=true", want: []string{"rb-src", "settings"}},
		{line: "kubectl get configmaps -A -l secret-syncer.jeffl.es/mirror=true", want: []string{"rb-t-0", "rb-t-1", "settings"}},
		{line: "kubectl events -n <source-namespace> --for configmap/<source>", vars: map[string]string{"source": settings.Name, "source-namespace": settings.Namespace}, want: []string{"Mirrored", "ConfigMap/settings"}},
		{
			line: "kubectl get secrets -A -l secret-syncer.jeffl.es/name=<source>,secret-syncer.jeffl.es/namespace=<source-namespace>",
			vars: map[string]string{"source": source.Name, "source-namespace": source.Namespace}, want: []string{"rb-t-0", "rb-t-1"},
		},
		{line: "kubectl events -n <source-namespace> --for secret/<source>", vars: map[string]string{"source": source.Name, "source-namespace": source.Namespace}, want: []string{"Mirrored", "Conflict"}},
		{line: "kubectl get events -A --field-selector type=Warning,reason=Conflict", want: []string{"rb-src", "rb-x"}},
		{
			line: "kubectl get secret -n <target> <name> -o jsonpath='{.metadata.labels}{\"\\n\"}{.metadata.ownerReferences}{\"\\n\"}{.metadata.managedFields[*].manager}{\"\\n\"}'",
			vars: map[string]string{"target": "rb-x", "name": "registry"},
			then: func(t *testing.T, out string) {
				// No label: a Secret of its own; its writer in managedFields.
				if lines := strings.Split(out, "\n"); len(lines) < 3 || lines[0] != "" || lines[2] == "" {
					t.Errorf("want no labels, no owner and the writer's name; got %q", out)
				}
			},
		},
		{line: "kubectl get events -A --field-selector type=Warning,reason=Refused", want: []string{"rb-other", "Refused"}},
		{
			line: "kubectl get secrets -A -l secret-syncer.jeffl.es/sync=true -o custom-columns=NAMESPACE:.metadata.namespace,NAME:.metadata.name,TYPE:.type",
			want: []string{"NAMESPACE", "rb-other", "pushed", "Opaque"},
		},
		{line: "kubectl describe resourcequota -n <target>", vars: map[string]string{"target": "rb-q"}, want: []string{"count/secrets", "0"}},
		{line: "kubectl -n whisperer-system get deploy,pods,svc,servicemonitor", want: []string{
			"deployment.apps/whisperer-controller-manager", "pod/whisperer-controller-manager-",
			"service/whisperer-controller-manager-metrics-service", "servicemonitor.monitoring.coreos.com/whisperer-controller-manager-metrics-monitor",
		}},
		{line: "kubectl -n whisperer-system get endpointslices -l kubernetes.io/service-name=whisperer-controller-manager-metrics-service", want: []string{"whisperer-controller-manager-metrics-service-"}},
		{line: "kubectl -n whisperer-system get lease whisperer.secret-syncer.jeffl.es -o yaml", want: []string{"holderIdentity:", "leaseDurationSeconds: 15"}},
		// The metrics endpoint as Prometheus reaches it, before and after the runbook's fix.
		{line: "kubectl -n whisperer-system port-forward deploy/whisperer-controller-manager 8443 &", why: noKubelet + "; the curl below goes to the process's own address"},
		{
			line: `curl -sk -o /dev/null -w '%{http_code}\n' https://127.0.0.1:8443/metrics  -H "Authorization: Bearer $(kubectl -n monitoring create token prometheus-k8s)"`,
			as:   `curl -sk -o /dev/null -w '%{http_code}\n' https://127.0.0.1:` + metricsPort + `/metrics  -H "Authorization: Bearer $(kubectl -n monitoring create token prometheus-k8s)"`,
			why:  "the port-forward's local port is the process's own metrics address",
			want: []string{"403"},
			then: func(t *testing.T, _ string) {
				if out, err := runShell(t, t.Context(), `curl -sk -o /dev/null -w '%{http_code}\n' https://127.0.0.1:`+metricsPort+`/metrics`, e.shellEnv()); err != nil || !strings.Contains(out, "401") {
					t.Errorf("with no token: %q (%v); the runbook says 401", out, err)
				}
				if out, err := runShell(t, t.Context(), `curl -sk -o /dev/null -w '%{http_code}\n' https://127.0.0.1:`+metricsPort+`/metrics -H "Authorization: Bearer not-a-token"`, e.shellEnv()); err != nil || !strings.Contains(out, "500") {
					t.Errorf("with a token that is not valid: %q (%v); the runbook says 500", out, err)
				}
				if log, err := os.ReadFile(op.logPath); err != nil || !strings.Contains(string(log), "invalid bearer token") {
					t.Errorf("no \"invalid bearer token\" in the log; the runbook says it is there")
				}
			},
		},
		{
			line: "kubectl create clusterrolebinding whisperer-metrics-reader-prometheus --clusterrole=whisperer-metrics-reader --serviceaccount=monitoring:prometheus-k8s",
			want: []string{"created"},
			then: func(t *testing.T, _ string) {
				eventually(t, 30*time.Second, "the scrape with Prometheus's token is allowed", func(ctx context.Context) error {
					out, err := runShell(t, ctx, `curl -sk -o /dev/null -w '%{http_code}\n' https://127.0.0.1:`+metricsPort+`/metrics -H "Authorization: Bearer $(kubectl -n monitoring create token prometheus-k8s)"`, e.shellEnv())
					if err == nil && !strings.Contains(out, "200") {
						err = fmt.Errorf("answered %s", out)
					}
					return err
				})
				reconcilesBefore = float64(op.reconciles(t.Context()))
			},
		},
		{
			line: "kubectl annotate secret -n <ns> <source> whisperer-retry=$(date +%s) --overwrite",
			vars: map[string]string{"ns": blocked.Namespace, "source": blocked.Name}, want: []string{"annotated"},
			then: func(t *testing.T, _ string) {
				eventually(t, 10*time.Second, "a reconcile of the touched source", func(ctx context.Context) error {
					if n := float64(op.reconciles(ctx)); n <= reconcilesBefore {
						return fmt.Errorf("%v reconciles, as before", n)
					}
					return nil
				})
			},
		},
		{line: "kubectl -n whisperer-system rollout restart deploy/whisperer-controller-manager", want: []string{"restarted"}},
		{
			line: "kubectl delete secret -n <target> <name>", vars: map[string]string{"target": "rb-x", "name": "registry"}, want: []string{"deleted"},
			then: func(t *testing.T, _ string) {
				e.waitMirrors(source, sets.New("rb-t-0", "rb-t-1", "rb-x"), time.Minute)
			},
		},
		{
			line: "kubectl label secret -n <ns> <name> secret-syncer.jeffl.es/sync-", vars: map[string]string{"ns": refused.Namespace, "name": refused.Name},
			want: []string{"unlabeled"},
		},
		{line: "kubectl -n whisperer-system port-forward deploy/whisperer-controller-manager 6060 &", why: noKubelet + "; the curl below goes to the process's own address"},
		{
			line: "curl -s 'http://127.0.0.1:6060/debug/pprof/goroutine?debug=2' > goroutines.txt",
			as:   "curl -s 'http://127.0.0.1:" + pprof + "/debug/pprof/goroutine?debug=2' > goroutines.txt && cat goroutines.txt",
			why:  "the port-forward's local port is the process's own pprof address; the dump is printed to be checked",
			want: []string{"goroutine ", "controller-runtime"},
		},
	}

	ran := sets.New[string]()
	for _, step := range steps {
		t.Run(step.line, func(t *testing.T) {
			if !runbook.commands.Has(step.line) {
				t.Fatalf("the runbooks have no such command")
			}
			ran.Insert(step.line)
			command := step.as
			switch {
			case command == "" && step.why != "":
				t.Logf("cannot run here: %s", step.why)
				return
			case command == "":
				command = step.line
			default:
				t.Logf("runs as %q: %s", command, step.why)
			}
			for name, value := range step.vars {
				command = strings.ReplaceAll(command, "<"+name+">", value)
			}
			out, err := runShell(t, t.Context(), command, e.shellEnv())
			prom.tick()
			shown := out
			if len(shown) > 2000 {
				shown = shown[:2000] + "..."
			}
			t.Logf("$ %s\n%s", command, shown)
			if err != nil {
				t.Fatalf("%v", err)
			}
			for _, want := range step.want {
				if !strings.Contains(out, want) {
					t.Errorf("the output lacks %q", want)
				}
			}
			if step.then != nil {
				step.then(t, out)
			}
		})
	}
	if missing := runbook.commands.Difference(ran); missing.Len() > 0 {
		t.Errorf("commands of the runbooks that this test does not run: %q", sets.List(missing))
	}

	t.Run("queries", func(t *testing.T) {
		// The PromQL of the runbooks' diagnoses, on what whisperer exported meanwhile: each
		// answers what its runbook asks of it.
		nonEmpty := func(v promql.Vector) error {
			if len(v) == 0 {
				return errors.New("no series")
			}
			return nil
		}
		checks := map[string]func(promql.Vector) error{
			`sum by (operation) (increase(whisperer_mirror_errors_total{job="whisperer"}[1h]))`: func(v promql.Vector) error {
				for _, s := range v {
					if s.Metric.Get("operation") == "create" && s.F > 0 {
						return nil
					}
				}
				return errors.New("no failed create, with the quota refusing them")
			},
			`sum by (operation, result) (increase(whisperer_service_account_operations_total{job="whisperer"}[1h]))`: func(v promql.Vector) error {
				for _, s := range v {
					if s.Metric.Get("operation") == "attach" && s.Metric.Get("result") == "succeeded" && s.F > 0 {
						return nil
					}
				}
				return errors.New("no attach counted, with the pull secret attached to two ServiceAccounts")
			},
			`sum by (kind) (rate(whisperer_mirror_operations_total{job="whisperer"}[5m]))`: func(v promql.Vector) error {
				for _, s := range v {
					if s.Metric.Get("kind") == "Secret" {
						return nil
					}
				}
				return errors.New("no rate of Secret mirror writes, with Secrets mirrored")
			},
			`rate(controller_runtime_reconcile_total{job="whisperer"}[5m])`: nonEmpty,
		}
		for _, query := range runbook.queries {
			check, ok := checks[query]
			if !ok {
				t.Errorf("%s: a query of the runbooks that this test does not check", query)
				continue
			}
			delete(checks, query)
			vector, err := prom.query(query)
			if err == nil {
				err = check(vector)
			}
			t.Logf("%s: %v", query, vector)
			if err != nil {
				t.Errorf("%s: %v", query, err)
			}
		}
		for query := range checks {
			t.Errorf("%s: checked here, but no longer in the runbooks", query)
		}
	})
}

// runbooks are the commands and PromQL queries of docs/runbooks.md.
type runbooks struct {
	commands sets.Set[string]
	queries  []string
}

// readRunbooks collects the commands of the runbooks: every line of their sh blocks (a line
// ending in \ continues on the next), and every inline code span that starts with kubectl; and
// the PromQL queries of their diagnoses: inline code spans that select job="whisperer" in the
// paragraphs between **Diagnose.** and **Resolve.**.
func readRunbooks(t *testing.T, path string) runbooks {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rb := runbooks{commands: sets.New[string]()}
	fenced := regexp.MustCompile("(?s)```sh\n(.*?)```")
	for _, block := range fenced.FindAllStringSubmatch(string(content), -1) {
		command := ""
		for _, line := range strings.Split(block[1], "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if continued, ok := strings.CutSuffix(line, `\`); ok {
				command += continued + " "
				continue
			}
			rb.commands.Insert(command + line)
			command = ""
		}
	}
	prose := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(string(content), "")
	for _, section := range strings.Split(prose, "\n## ") {
		diagnose := false
		for _, paragraph := range strings.Split(section, "\n\n") {
			switch {
			case strings.HasPrefix(paragraph, "**Diagnose.**"):
				diagnose = true
			case strings.HasPrefix(paragraph, "**Resolve.**"):
				diagnose = false
			}
			for _, span := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(paragraph, -1) {
				code := regexp.MustCompile(`\s*\n\s*`).ReplaceAllString(span[1], " ")
				switch {
				case strings.HasPrefix(code, "kubectl "):
					rb.commands.Insert(code)
				case diagnose && strings.Contains(code, `{job="whisperer"}`):
					if _, err := parser.NewParser(parser.Options{}).ParseExpr(code); err != nil {
						t.Errorf("runbooks: %q is not PromQL: %v", code, err)
						continue
					}
					if !slices.Contains(rb.queries, code) {
						rb.queries = append(rb.queries, code)
					}
				}
			}
		}
	}
	return rb
}

// shellEnv is the environment of the commands: kubectl (the control plane's, first in PATH)
// reaches the local control plane as an administrator.
func (e *env) shellEnv() []string {
	e.t.Helper()
	path := filepath.Join(e.dir, "admin.kubeconfig")
	if _, err := os.Stat(path); err != nil {
		if err := os.WriteFile(path, e.cluster.Kubeconfig, 0o600); err != nil {
			e.t.Fatal(err)
		}
	}
	return append(os.Environ(), "KUBECONFIG="+path, "PATH="+os.Getenv("KUBEBUILDER_ASSETS")+":"+os.Getenv("PATH"))
}

// runShell runs command with bash in a directory of its own, pipefail set, and returns its
// output (stdout, then stderr) and an error when it exits non-zero. It kills it when ctx is done,
// or after a minute.
func runShell(t *testing.T, ctx context.Context, command string, env []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", command)
	cmd.Dir = t.TempDir()
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	out := stdout.String() + stderr.String()
	if err != nil {
		return out, fmt.Errorf("%q: %w: %s", command, err, out)
	}
	return out, nil
}

// renderWithMonitoring renders config/default with its ../prometheus line uncommented, as the
// runbooks assume: the ServiceMonitor and the alerts deployed with whisperer.
func renderWithMonitoring(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../../config")); err != nil {
		t.Fatal(err)
	}
	kustomization := filepath.Join(dir, "default", "kustomization.yaml")
	content, err := os.ReadFile(kustomization)
	if err != nil {
		t.Fatal(err)
	}
	enabled := bytes.Replace(content, []byte("#- ../prometheus"), []byte("- ../prometheus"), 1)
	if bytes.Equal(enabled, content) {
		t.Fatal("config/default/kustomization.yaml has no #- ../prometheus line to uncomment")
	}
	if err := os.WriteFile(kustomization, enabled, 0o600); err != nil {
		t.Fatal(err)
	}
	return renderKustomize(t, filepath.Join(dir, "default"))
}

// deployedArgs are the arguments of the manager container that config/default renders, but the
// addresses, which a process on this machine must choose itself.
func deployedArgs(t *testing.T) []string {
	t.Helper()
	for _, obj := range renderKustomize(t, "../../config/default") {
		if obj.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			container, _ := c.(map[string]any)
			if container["name"] != "manager" {
				continue
			}
			args, _, _ := unstructured.NestedStringSlice(container, "args")
			return slices.DeleteFunc(args, func(arg string) bool { return strings.Contains(arg, "-bind-address=") })
		}
	}
	t.Fatal("config/default renders no Deployment with a manager container")
	return nil
}

// monitoringCRDs are the Prometheus Operator's ServiceMonitor and PrometheusRule, reduced to their
// names: enough for kubectl to list them and for the API server to store config/prometheus.
func monitoringCRDs(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		plural := strings.ToLower(kind) + "s"
		out = append(out, decodeYAML(t, []byte(fmt.Sprintf(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: %[1]s.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: %[2]s, listKind: %[2]sList, plural: %[1]s, singular: %[3]s}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`, plural, kind, strings.ToLower(kind))))...)
	}
	return out
}
