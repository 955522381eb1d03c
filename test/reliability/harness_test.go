//go:build reliability

// Package reliability proves that whisperer survives faults. It runs the real operator binary
// (bin/whisperer) as separate processes against a local control plane (internal/localcluster),
// then kills them, restarts the API server, compacts etcd under it, injects 409 and 429
// responses, and checks what a user would see: the mirrors, the Secrets whisperer must not touch,
// and the API server's audit log of who wrote what. `make test-reliability` runs it; the build
// tag keeps it out of `go test ./...`.
//
// Each test starts its own control plane, whose kube-apiserver writes an audit log of every
// request made by an operator process (each process has a user of its own) to
// .local/reliability/<test>/audit.log, next to the processes' logs.
package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/whisperer-operator/whisperer/test/auditlog"
	"github.com/whisperer-operator/whisperer/test/localcluster"
)

// The contract as users see it (README, "How it works").
const (
	syncLabel            = "secret-syncer.jeffl.es/sync"
	namespacesAnnotation = "secret-syncer.jeffl.es/namespaces"
	mirrorLabel          = "secret-syncer.jeffl.es/mirror"
	sourceNameLabel      = "secret-syncer.jeffl.es/name"
	sourceNSLabel        = "secret-syncer.jeffl.es/namespace"
	// leaseName is the leader election Lease (main.go's LeaderElectionID).
	leaseName = "whisperer.secret-syncer.jeffl.es"
)

// operatorGroup is the group of every operator process's user; the audit policy records the
// requests of this group and of service accounts, nothing else.
const operatorGroup = "whisperer:reliability"

var (
	whispererBin string
	kustomizeBin string
	artifacts    string
	scheme       = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	// Only the harness's own clients log through controller-runtime; the operators log to files.
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run `make test-reliability`, which builds the control plane")
		os.Exit(1)
	}
	var err error
	whispererBin, err = existing("WHISPERER", "../../bin/whisperer", "make build")
	if err == nil {
		kustomizeBin, err = existing("KUSTOMIZE", "../../bin/kustomize", "make bin/kustomize")
	}
	if err == nil {
		artifacts, err = filepath.Abs(envOr("RELIABILITY_ARTIFACTS", "../../.local/reliability"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

// existing returns the absolute path of the binary named by $env, else fallback, and fails
// with how to build it when it is not there.
func existing(env, fallback, build string) (string, error) {
	path, err := filepath.Abs(envOr(env, fallback))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s: %w (set %s or run `%s`)", path, err, env, build)
	}
	return path, nil
}

// env is one test's control plane.
type env struct {
	t   *testing.T
	dir string
	// cluster is etcd, kube-apiserver (with an audit log) and kube-controller-manager.
	cluster *localcluster.Cluster
	// admin reads and writes directly, without a cache, as kubectl does.
	admin     client.Client
	clientset *kubernetes.Clientset
	audit     *auditLog
	// operatorUsers are the users of the operator processes started, whose watches are checked
	// when the test ends (checkWatches).
	operatorUsers []string
}

// newEnv starts a control plane for t; it stops when t ends, after every operator t started.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, localcluster.Options{})
}

// newEnvWith starts a control plane for t with opts, to which it adds its audit log and output.
func newEnvWith(t *testing.T, opts localcluster.Options) *env {
	t.Helper()
	dir := filepath.Join(artifacts, t.Name())
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	flags, auditPath, err := auditlog.APIServerFlags(dir, operatorGroup, "system:serviceaccounts")
	if err != nil {
		t.Fatal(err)
	}
	// On SIGTERM, end the watches in flight instead of waiting up to a minute for them: the
	// API server then stops in seconds, as StopAPIServer expects.
	flags["shutdown-watch-termination-grace-period"] = "2s"
	logFile, err := os.Create(filepath.Join(dir, "controlplane.log"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dir: dir, audit: &auditLog{path: auditPath}}
	started := time.Now()
	if opts.APIServerFlags == nil {
		opts.APIServerFlags = map[string]string{}
	}
	maps.Copy(opts.APIServerFlags, flags)
	opts.Output = logFile
	e.cluster, err = localcluster.Start(opts)
	if err != nil {
		t.Fatalf("starting the control plane: %v", errors.Join(err, logFile.Close()))
	}
	t.Cleanup(func() {
		if err := e.cluster.Stop(); err != nil {
			t.Errorf("stopping the control plane: %v", err)
		}
		if err := logFile.Close(); err != nil {
			t.Errorf("control plane log: %v", err)
		}
	})
	// Run before the control plane stops and after every operator has: cleanups run in reverse.
	t.Cleanup(e.checkWatches)
	t.Logf("control plane started in %s; logs in %s", since(started), dir)
	admin := rest.CopyConfig(e.cluster.Config)
	admin.QPS, admin.Burst = 500, 1000
	if e.admin, err = client.New(admin, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	if e.clientset, err = kubernetes.NewForConfig(admin); err != nil {
		t.Fatal(err)
	}
	return e
}

func since(t time.Time) time.Duration { return time.Since(t).Round(10 * time.Millisecond) }

// createNamespaces creates the namespaces, several at once.
func (e *env) createNamespaces(names ...string) {
	e.t.Helper()
	errs := make([]error, len(names))
	slots := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i, name := range names {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs[i] = e.admin.Create(e.t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		e.t.Fatal(err)
	}
}

// names returns prefix-000 ... prefix-(n-1), zero-padded to width digits.
func names(prefix string, n, width int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%0*d", prefix, width, i)
	}
	return out
}

// createSource creates a source Secret mirrored into targets (the annotation's value).
func (e *env) createSource(namespace, name, targets string, data map[string][]byte) *corev1.Secret {
	e.t.Helper()
	src := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   namespace,
			Name:        name,
			Labels:      map[string]string{syncLabel: "true"},
			Annotations: map[string]string{namespacesAnnotation: targets},
		},
		Data: data,
	}
	if err := e.admin.Create(e.t.Context(), src); err != nil {
		e.t.Fatal(err)
	}
	return src
}

// updateSource changes a source with edit, retrying on conflicts as kubectl edit would.
func (e *env) updateSource(key types.NamespacedName, edit func(*corev1.Secret)) {
	e.t.Helper()
	for {
		src := &corev1.Secret{}
		if err := e.admin.Get(e.t.Context(), key, src); err != nil {
			e.t.Fatal(err)
		}
		edit(src)
		err := e.admin.Update(e.t.Context(), src)
		if err == nil {
			return
		}
		if !apierrors.IsConflict(err) {
			e.t.Fatal(err)
		}
	}
}

func (e *env) deleteSecret(namespace, name string) {
	e.t.Helper()
	err := e.admin.Delete(e.t.Context(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
	if err != nil {
		e.t.Fatal(err)
	}
}

// mirrorsOf lists, cluster-wide, the Secrets whose labels claim source.
func (e *env) mirrorsOf(ctx context.Context, source types.NamespacedName) ([]corev1.Secret, error) {
	list := &corev1.SecretList{}
	err := e.admin.List(ctx, list, client.MatchingLabels{sourceNameLabel: source.Name, sourceNSLabel: source.Namespace})
	return list.Items, err
}

// checkMirrors returns nil when source has exactly one mirror in each namespace of want, with
// the source's type and data and the three mirror labels, and no mirror anywhere else. A
// deleted source must have none.
func (e *env) checkMirrors(ctx context.Context, source types.NamespacedName, want sets.Set[string]) error {
	src := &corev1.Secret{}
	switch err := e.admin.Get(ctx, source, src); {
	case apierrors.IsNotFound(err):
		src = nil
	case err != nil:
		return err
	}
	mirrors, err := e.mirrorsOf(ctx, source)
	if err != nil {
		return err
	}
	seen := sets.New[string]()
	var problems []string
	for _, m := range mirrors {
		switch {
		case m.Name != source.Name:
			problems = append(problems, fmt.Sprintf("%s/%s claims the source but has another name", m.Namespace, m.Name))
		case !want.Has(m.Namespace):
			problems = append(problems, fmt.Sprintf("orphan mirror in %s", m.Namespace))
		case m.Labels[mirrorLabel] != "true":
			problems = append(problems, fmt.Sprintf("mirror in %s lacks the mirror label", m.Namespace))
		case src != nil && (m.Type != src.Type || !maps.EqualFunc(m.Data, src.Data, bytes.Equal)):
			problems = append(problems, fmt.Sprintf("mirror in %s differs from the source", m.Namespace))
		}
		seen.Insert(m.Namespace)
	}
	if missing := want.Difference(seen); missing.Len() > 0 {
		problems = append(problems, fmt.Sprintf("%d mirrors missing, e.g. in %s", missing.Len(), sets.List(missing)[0]))
	}
	if len(problems) > 0 {
		if len(problems) > 5 {
			problems = append(problems[:5], fmt.Sprintf("and %d more", len(problems)-5))
		}
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// waitMirrors waits until checkMirrors passes and returns how long that took.
func (e *env) waitMirrors(source types.NamespacedName, want sets.Set[string], timeout time.Duration) time.Duration {
	e.t.Helper()
	return eventually(e.t, timeout, "mirrors of "+source.String(), func(ctx context.Context) error {
		return e.checkMirrors(ctx, source, want)
	})
}

// eventually calls check every 100 ms until it returns nil and returns how long that took; it
// fails the test with check's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, check func(context.Context) error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := check(ctx)
		cancel()
		if err == nil {
			return since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaseHolder returns the leader election Lease's holder, or "" when there is none.
func (e *env) leaseHolder(ctx context.Context, namespace string) (string, error) {
	l, err := e.clientset.CoordinationV1().Leases(namespace).Get(ctx, leaseName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", nil
	case err != nil:
		return "", err
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

// operator is a whisperer process.
type operator struct {
	t *testing.T
	// name names its log and kubeconfig files; user is the name the API server knows it by, in
	// the audit log.
	name    string
	user    string
	cmd     *exec.Cmd
	exited  chan struct{}
	metrics string
	// bearer, when set, is the token sent with scrapes of a secure metrics endpoint.
	bearer  string
	logPath string
	// pprof is the base URL of its pprof endpoint, when it serves one.
	pprof string
}

// startOperator runs bin/whisperer as a new user named whisperer-<name> in system:masters,
// with metrics on a free loopback port and args; it is stopped when the test ends.
func (e *env) startOperator(name string, args ...string) *operator {
	e.t.Helper()
	user := "whisperer-" + name
	_, kubeconfig, err := e.cluster.AddUser(user, "system:masters", operatorGroup)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.runOperator(name, user, kubeconfig, args...)
}

// runOperator runs bin/whisperer with the kubeconfig, known to the API server as user. Its
// metrics are served over HTTP on a free loopback port, or over HTTPS, to callers the API server
// authorizes, when args say --metrics-secure=true.
func (e *env) runOperator(name, user string, kubeconfig []byte, args ...string) *operator {
	e.t.Helper()
	scheme := "http"
	if slices.Contains(args, "--metrics-secure=true") {
		scheme = "https"
	}
	kubeconfigPath := filepath.Join(e.dir, name+".kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		e.t.Fatal(err)
	}
	port := freePort(e.t)
	o := &operator{
		t:       e.t,
		name:    name,
		user:    user,
		exited:  make(chan struct{}),
		metrics: scheme + "://127.0.0.1:" + port + "/metrics",
		logPath: filepath.Join(e.dir, name+".log"),
	}
	logFile, err := os.OpenFile(o.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	o.cmd = exec.Command(whispererBin, append([]string{ //nolint:noctx // stopped by o.stop, gracefully or with SIGKILL as a test needs
		"--kubeconfig=" + kubeconfigPath,
		"--metrics-bind-address=127.0.0.1:" + port,
		"--metrics-secure=false",
		"--health-probe-bind-address=0",
		"--zap-encoder=console",
	}, args...)...)
	o.cmd.Stdout, o.cmd.Stderr = logFile, logFile
	// Signals from the harness only, to this process only; and gone with the harness should it
	// die without running its cleanups (go test -timeout).
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := o.cmd.Start(); err != nil {
		e.t.Fatal(errors.Join(err, logFile.Close()))
	}
	go func() {
		_ = o.cmd.Wait()
		close(o.exited)
	}()
	e.t.Cleanup(o.stop)
	e.operatorUsers = append(e.operatorUsers, user)
	// The process has its own descriptor of the log: this one is not needed any more.
	if err := logFile.Close(); err != nil {
		e.t.Fatal(err)
	}
	eventually(e.t, 30*time.Second, user+" serves metrics", func(ctx context.Context) error {
		if !o.running() {
			e.t.Fatalf("%s exited at start: %s", user, o.logTail())
		}
		resp, err := o.getMetrics(ctx)
		if err == nil {
			resp.Body.Close() // any answer: a secure endpoint refuses callers without a token
		}
		return err
	})
	return o
}

// kubeconfig writes a kubeconfig that reaches cluster as user.
func kubeconfig(t *testing.T, cluster *clientcmdapi.Cluster, user *clientcmdapi.AuthInfo) []byte {
	t.Helper()
	config := clientcmdapi.NewConfig()
	config.Clusters["cluster"] = cluster
	config.AuthInfos["user"] = user
	config.Contexts["cluster"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "user"}
	config.CurrentContext = "cluster"
	content, err := clientcmd.Write(*config)
	if err != nil {
		t.Fatal(err)
	}
	return content
}

func freePort(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

func (o *operator) running() bool {
	select {
	case <-o.exited:
		return false
	default:
		return true
	}
}

// requireRunning fails the test when the process has exited: it was meant to survive.
func (o *operator) requireRunning() {
	o.t.Helper()
	if !o.running() {
		o.t.Fatalf("%s exited (%v): %s", o.user, o.cmd.ProcessState, o.logTail())
	}
}

// kill sends SIGKILL, as kill -9 does, and waits for the process to be gone.
func (o *operator) kill() {
	_ = o.cmd.Process.Signal(syscall.SIGKILL)
	<-o.exited
}

// stop stops the process as Kubernetes stops a pod: SIGTERM, then SIGKILL after a grace period.
func (o *operator) stop() {
	if !o.running() {
		return
	}
	_ = o.cmd.Process.Signal(syscall.SIGCONT)
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.exited:
	case <-time.After(15 * time.Second):
		o.t.Errorf("%s did not stop within 15s of SIGTERM; killed", o.user)
		o.kill()
	}
}

// pause freezes the process (SIGSTOP); resume lets it run on (SIGCONT).
func (o *operator) pause()  { _ = o.cmd.Process.Signal(syscall.SIGSTOP) }
func (o *operator) resume() { _ = o.cmd.Process.Signal(syscall.SIGCONT) }

func (o *operator) logTail() string {
	content, _ := os.ReadFile(o.logPath)
	if len(content) > 4000 {
		content = content[len(content)-4000:]
	}
	return string(content)
}

// scrape reads the process's Prometheus metrics.
func (o *operator) scrape(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	body, err := o.metricsText(ctx)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bytes.NewReader(body))
}

// metricsText reads the process's metrics endpoint, in the text exposition format.
func (o *operator) metricsText(ctx context.Context) ([]byte, error) {
	resp, err := o.getMetrics(ctx)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", o.metrics, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// metricsClient trusts the certificate whisperer signs itself for its secure metrics endpoint,
// as the ServiceMonitor does (insecureSkipVerify).
var metricsClient = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // G402: a process of the test's own on 127.0.0.1, with a certificate nothing could verify

func (o *operator) getMetrics(ctx context.Context) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.metrics, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	if o.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+o.bearer)
	}
	return metricsClient.Do(req)
}

// metric sums the samples of the counter or gauge name whose labels include match.
func (o *operator) metric(ctx context.Context, name string, match map[string]string) float64 {
	o.t.Helper()
	families, err := o.scrape(ctx)
	if err != nil {
		o.t.Fatalf("scraping %s: %v", o.user, err)
	}
	return sumSamples(families[name], match)
}

func sumSamples(family *dto.MetricFamily, match map[string]string) float64 {
	if family == nil {
		return 0
	}
	var sum float64
	for _, m := range family.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		matches := true
		for k, v := range match {
			matches = matches && labels[k] == v
		}
		if matches {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// reconciles is how many times the operator has reconciled a source, whatever the result.
func (o *operator) reconciles(ctx context.Context) int {
	return int(o.metric(ctx, "controller_runtime_reconcile_total", map[string]string{"controller": "secretmirror"}))
}

// pprofPage reads a page of an operator's pprof endpoint, as `curl` does in the runbooks.
func pprofPage(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", url, err)
	}
	return string(page)
}

// auditLog reads the API server's audit log.
type auditLog struct{ path string }

// auditEvent is one request in the audit log.
type auditEvent = auditlog.Event

// events returns the completed requests (and the watches that started) that keep says to keep.
func (a *auditLog) events(t *testing.T, keep func(auditEvent) bool) []auditEvent {
	t.Helper()
	events, err := auditlog.Read(a.path, keep)
	if err != nil {
		t.Fatal(err)
	}
	return events
}

// by keeps the requests of user received in [from, to); a zero to means no end.
func by(user string, from, to time.Time) func(auditEvent) bool {
	return func(ev auditEvent) bool {
		return ev.User.Username == user && !ev.Received.Before(from) && (to.IsZero() || ev.Received.Before(to))
	}
}

func and(filters ...func(auditEvent) bool) func(auditEvent) bool {
	return func(ev auditEvent) bool {
		for _, f := range filters {
			if !f(ev) {
				return false
			}
		}
		return true
	}
}

func writes(ev auditEvent) bool { return ev.IsWrite() }

// succeeded keeps the requests that the API server carried out.
func succeeded(ev auditEvent) bool { return ev.Code() >= 200 && ev.Code() < 300 }

func on(resource string) func(auditEvent) bool {
	return func(ev auditEvent) bool { return ev.Resource() == resource }
}

// writeCounts sums up successful Secret writes by verb, for example "create 10, update 0, delete 0".
type writeCounts struct{ create, update, patch, delete, other int }

func (w writeCounts) String() string {
	return fmt.Sprintf("create %d, update %d, patch %d, delete %d, other %d", w.create, w.update, w.patch, w.delete, w.other)
}

func countSecretWrites(events []auditEvent) writeCounts {
	var w writeCounts
	for _, ev := range events {
		if !ev.IsWrite() || !succeeded(ev) || ev.Resource() != "secrets" {
			continue
		}
		switch ev.Verb {
		case "create":
			w.create++
		case "update":
			w.update++
		case "patch":
			w.patch++
		case "delete":
			w.delete++
		default:
			w.other++
		}
	}
	return w
}

// secretWrites returns the successful Secret writes of user in [from, to).
func (e *env) secretWrites(user string, from, to time.Time) writeCounts {
	e.t.Helper()
	return countSecretWrites(e.audit.events(e.t, by(user, from, to)))
}

// settle waits for requests in flight to reach the audit log before it is read.
func settle() { time.Sleep(time.Second) }

// describe lists up to ten events, for failure messages.
func describe(events []auditEvent) string {
	lines := make([]string, 0, 10)
	for _, ev := range events[:min(10, len(events))] {
		lines = append(lines, ev.String())
	}
	return strings.Join(lines, "\n")
}

// sortedKeys is for stable messages.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
