//go:build olm_e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// operator is bin/whisperer running with the credentials OLM gave it.
type operator struct {
	*process
	metricsPort int
}

// startOperator runs bin/whisperer as the Deployment OLM created would run it: with the
// environment of that Deployment (which carries the Subscription's spec.config.env), read from
// the cluster, and a token of the ServiceAccount OLM created, and only that: what it can do is
// what the CSV's permissions grant. It returns once whisperer is ready and holds the leader
// election Lease (which the CSV's Role allows).
func startOperator(t *testing.T, ctx context.Context, c client.Client) *operator {
	t.Helper()
	kubeconfig := tokenKubeconfig(t, operatorNamespace, serviceAccount)
	probePort, metricsPort := freePort(t), freePort(t)
	started := time.Now().Add(-time.Second)
	p := start(t, "whisperer", deploymentEnv(t, ctx, c), bin("whisperer"),
		"--kubeconfig="+kubeconfig,
		"--leader-elect", "--leader-election-namespace="+operatorNamespace,
		"--health-probe-bind-address="+loopback(probePort),
		"--metrics-bind-address="+loopback(metricsPort),
		"--zap-encoder=console",
		// As tests/kuttl/kuttl-test.yaml runs it: a short conflict retry.
		"--conflict-retry-interval=2s")
	waitFor(t, ctx, "whisperer is ready", func(ctx context.Context) (bool, string, error) {
		if !p.running() {
			return false, "", fmt.Errorf("whisperer exited; see %s", p.log)
		}
		status, _, err := get(ctx, "http://"+loopback(probePort)+"/readyz", "")
		return status == http.StatusOK, fmt.Sprintf("readyz: %d", status), err
	})
	waitFor(t, ctx, "whisperer holds the leader election Lease", func(ctx context.Context) (bool, string, error) {
		leases := &coordinationv1.LeaseList{}
		if err := c.List(ctx, leases, client.InNamespace(operatorNamespace)); err != nil {
			return false, "", err
		}
		for _, l := range leases.Items {
			if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(started) {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d leases, none renewed since the start", len(leases.Items)), nil
	})
	return &operator{process: p, metricsPort: metricsPort}
}

// deploymentEnv returns the environment of the manager container of the Deployment OLM
// created, as the kubelet would set it.
func deploymentEnv(t *testing.T, ctx context.Context, c client.Client) []string {
	t.Helper()
	dep := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "whisperer-controller-manager"}, dep); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, container := range dep.Spec.Template.Spec.Containers {
		if container.Name != "manager" {
			continue
		}
		for _, e := range container.Env {
			switch ref := e.ValueFrom; {
			case ref == nil:
				env = append(env, e.Name+"="+e.Value)
			case ref.ResourceFieldRef != nil:
				env = append(env, e.Name+"="+resourceValue(t, container, ref.ResourceFieldRef))
			default:
				t.Fatalf("the Deployment's %s comes from %+v, which the test cannot resolve", e.Name, ref)
			}
		}
	}
	t.Logf("the environment of the Deployment OLM created: %q", env)
	return env
}

// resourceValue is what the kubelet gives a resourceFieldRef: the container's limit or request,
// in units of the divisor.
func resourceValue(t *testing.T, container corev1.Container, ref *corev1.ResourceFieldSelector) string {
	t.Helper()
	list, name, _ := strings.Cut(ref.Resource, ".")
	quantities := map[string]corev1.ResourceList{"limits": container.Resources.Limits, "requests": container.Resources.Requests}[list]
	q, ok := quantities[corev1.ResourceName(name)]
	if !ok {
		t.Fatalf("the manager container has no %s", ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	return strconv.FormatInt(q.Value()/divisor.Value(), 10)
}

// checkSourcePolicy proves that the Subscription's WHISPERER_SOURCE_NAMESPACES reached the
// operator: a source in a namespace it allows is mirrored, one elsewhere is refused.
func checkSourcePolicy(t *testing.T, ctx context.Context, c client.Client) {
	allowed, tenant, target := "policy-source", "policy-tenant", "policy-target"
	for _, ns := range []string{allowed, tenant, target} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []struct{ namespace, name string }{{allowed, "allowed"}, {tenant, "pushed"}} {
		source := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Namespace: s.namespace,
				Labels:      map[string]string{"secret-syncer.jeffl.es/sync": "true"},
				Annotations: map[string]string{"secret-syncer.jeffl.es/namespaces": target}},
			StringData: map[string]string{"token": s.name},
		}
		if err := c.Create(ctx, source); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, ctx, "the allowed source's mirror", func(ctx context.Context) (bool, string, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: target, Name: "allowed"}, &corev1.Secret{})
		return err == nil, fmt.Sprint(err), client.IgnoreNotFound(err)
	})
	waitFor(t, ctx, "a Refused Event on the source outside "+sourceNamespacesPolicy, func(ctx context.Context) (bool, string, error) {
		events := &eventsv1.EventList{}
		if err := c.List(ctx, events, client.InNamespace(tenant)); err != nil {
			return false, "", err
		}
		for _, e := range events.Items {
			if e.Reason == "Refused" && e.Regarding.Name == "pushed" && strings.Contains(e.Note, sourceNamespacesPolicy) {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d Events in %s", len(events.Items), tenant), nil
	})
	if err := c.Get(ctx, client.ObjectKey{Namespace: target, Name: "pushed"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused source's mirror: %v, want none", err)
	}
}

// checkLeaseDenied proves, with the token OLM's ServiceAccount gets, that whisperer cannot renew
// someone else's Lease, such as a node heartbeat in kube-node-lease, even under the
// AllNamespaces install mode, in which OLM grants its Role's rules in every namespace.
func checkLeaseDenied(t *testing.T, ctx context.Context, c client.Client) {
	heartbeat := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "not-whisperers", Namespace: "kube-node-lease"}}
	if err := c.Create(ctx, heartbeat); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", tokenKubeconfig(t, operatorNamespace, serviceAccount))
	if err != nil {
		t.Fatal(err)
	}
	asOperator, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	heartbeat.Spec.HolderIdentity = ptr.To("whisperer")
	if err := asOperator.Update(ctx, heartbeat); !apierrors.IsForbidden(err) {
		t.Errorf("updating a Lease in kube-node-lease with the operator's token: %v, want Forbidden", err)
	}
	own := &coordinationv1.Lease{}
	if err := asOperator.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, own); err != nil {
		t.Errorf("reading its own Lease with the operator's token: %v", err)
	}
}

// runKuttl runs the kuttl suite against the running whisperer, which logs to operatorLog;
// kuttl itself is admin.
func runKuttl(t *testing.T, ctx context.Context, operatorLog string) {
	cmd := exec.CommandContext(ctx, bin("kubectl-kuttl"), "test", "--config", "tests/kuttl/kuttl-olm.yaml")
	cmd.Dir = repoDir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+adminKubeconfig,
		"PATH="+bin("k8s")+string(os.PathListSeparator)+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	logPath := filepath.Join(workDir, "kuttl.log")
	_ = os.WriteFile(logPath, out.Bytes(), 0o644)
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "--- PASS") || strings.Contains(line, "--- FAIL") || strings.HasPrefix(line, "PASS") || strings.HasPrefix(line, "FAIL") {
			t.Log(strings.TrimSpace(line))
		}
	}
	if err != nil {
		// CI keeps only this test's output: why each step failed, and what whisperer said.
		t.Logf("kuttl's reasons:\n%s", linesWith(out.String(), "case.go:", 40))
		operatorOutput := readFile(operatorLog)
		t.Logf("whisperer's errors and leader election:\n%s", linesWith(operatorOutput, "ERROR", 20)+
			linesWith(operatorOutput, "leader", 20))
		t.Fatalf("kuttl failed (%v) with whisperer running as %s; log %s", err, serviceAccount, logPath)
	}
}

// linesWith returns the last max lines of text that contain substr.
func linesWith(text, substr string, max int) string {
	var found []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, substr) {
			found = append(found, line)
		}
	}
	return strings.Join(found[len(found)-min(max, len(found)):], "")
}

// readFile returns the content of path, or why it cannot be read.
func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error() + "\n"
	}
	return string(b)
}

// checkMetrics scrapes whisperer's metrics endpoint as a ServiceAccount bound to the bundle's
// metrics reader ClusterRole, which whisperer authorizes through the API server, and checks
// that it refuses anonymous and unauthorized callers.
func checkMetrics(t *testing.T, ctx context.Context, c client.Client, port int) {
	const ns = "whisperer-e2e-monitoring"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"scraper", "stranger"} {
		if err := c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "whisperer-e2e-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "whisperer-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "scraper", Namespace: ns}},
	}); err != nil {
		t.Fatal(err)
	}
	url := "https://" + loopback(port) + "/metrics"
	scraper, stranger := createToken(t, ns, "scraper"), createToken(t, ns, "stranger")
	var body string
	waitFor(t, ctx, "the metrics reader scrapes whisperer's metrics", func(ctx context.Context) (bool, string, error) {
		status, b, err := get(ctx, url, scraper)
		body = b
		return status == http.StatusOK, fmt.Sprintf("status %d", status), err
	})
	if !strings.Contains(body, "controller_runtime_reconcile_total") {
		t.Errorf("the metrics have no controller_runtime_reconcile_total:\n%.2000s", body)
	}
	for who, token := range map[string]string{"an anonymous caller": "", "a ServiceAccount without the metrics reader role": stranger} {
		status, _, err := get(ctx, url, token)
		if err != nil {
			t.Fatal(err)
		}
		if status != http.StatusUnauthorized && status != http.StatusForbidden {
			t.Errorf("%s got status %d from the metrics endpoint, want 401 or 403", who, status)
		}
	}
}

// get fetches url, with a bearer token unless empty. whisperer's metrics certificate is
// self-signed, so it is not verified.
func get(ctx context.Context, url, token string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	httpClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := httpClient.Do(req)
	if err != nil {
		// Not serving (yet): status 0, which no caller accepts; the waits poll again.
		return 0, "", nil
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// createToken returns a token of a ServiceAccount, as README tells: kubectl create token.
func createToken(t *testing.T, namespace, name string) string {
	t.Helper()
	cmd := exec.Command(bin("k8s", "kubectl"), "create", "token", name, "-n", namespace, "--duration=1h")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+adminKubeconfig)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl create token %s -n %s: %v: %s", name, namespace, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// tokenKubeconfig writes a kubeconfig that reaches the cluster as the ServiceAccount, and
// nothing else: the admin kubeconfig's server and CA, and a token of the ServiceAccount.
func tokenKubeconfig(t *testing.T, namespace, name string) string {
	t.Helper()
	admin, err := clientcmd.LoadFromFile(adminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cluster := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: cluster.Server, CertificateAuthorityData: cluster.CertificateAuthorityData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: createToken(t, namespace, name)}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name, Namespace: namespace}
	cfg.CurrentContext = "default"
	path := filepath.Join(workDir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
