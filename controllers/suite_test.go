package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/whisperer-operator/whisperer/internal/mirror"
	"github.com/whisperer-operator/whisperer/test/localcluster"
)

// The suite runs against one local control plane (etcd, kube-apiserver and
// kube-controller-manager, so that namespaces really delete). Each test starts its own operator
// and works in namespaces of its own.
var (
	cluster *localcluster.Cluster
	// k8s reads and writes directly, without a cache, as a user with kubectl does.
	k8s    client.Client
	scheme = runtime.NewScheme()
	// spans records the spans of every test operator: a test that checks that something did not
	// happen first waits for the reconcile that would have done it (waitReconciled).
	spans          = tracetest.NewSpanRecorder()
	tracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
)

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	otel.SetTracerProvider(tracerProvider)
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(testLogOutput())))
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: run the tests with `make test`, which builds the control plane")
		os.Exit(1)
	}
	var err error
	if cluster, err = localcluster.Start(localcluster.Options{}); err != nil {
		fmt.Fprintln(os.Stderr, "starting the control plane:", err)
		os.Exit(1)
	}
	if k8s, err = client.New(cluster.Config, client.Options{Scheme: scheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	os.Exit(code)
}

// testLogOutput sends the operator's logs to stderr when WHISPERER_TEST_LOG is set.
func testLogOutput() *os.File {
	if os.Getenv("WHISPERER_TEST_LOG") != "" {
		return os.Stderr
	}
	devNull, _ := os.Open(os.DevNull)
	return devNull
}

// operator is a running whisperer, wired as main.go wires it.
type operator struct {
	stop func()
	// writes records every write request the operator sent to the API server.
	writes *writeRecorder
}

// operatorSetup is how a test operator is set up: its manager, the settings of its reconcilers
// (one per kind) and the kinds it mirrors.
type operatorSetup struct {
	manager    ctrl.Options
	reconciler MirrorReconciler
	kinds      []Kind
}

// operatorOption changes how a test operator is set up.
type operatorOption func(*operatorSetup)

func withPolicy(p mirror.Policy) operatorOption {
	return func(s *operatorSetup) { s.reconciler.Policy = p }
}

func withResync(d time.Duration) operatorOption {
	return func(s *operatorSetup) { s.reconciler.ResyncPeriod = d }
}

func withConflictRetry(d time.Duration) operatorOption {
	return func(s *operatorSetup) { s.reconciler.ConflictRetryInterval = d }
}

func withConcurrentReconciles(n int) operatorOption {
	return func(s *operatorSetup) { s.reconciler.MaxConcurrentReconciles = n }
}

// withKinds makes the operator mirror kinds only, as --resources does.
func withKinds(kinds ...Kind) operatorOption {
	return func(s *operatorSetup) { s.kinds = kinds }
}

// withLogger sends the operator's logs to log.
func withLogger(log logr.Logger) operatorOption {
	return func(s *operatorSetup) { s.manager.Logger = log }
}

// withMetricsAt serves the operator's metrics over plain HTTP at addr.
func withMetricsAt(addr string) operatorOption {
	return func(s *operatorSetup) { s.manager.Metrics.BindAddress = addr }
}

// startOperator starts whisperer against the test cluster; it stops when the test ends or
// when stop is called.
func startOperator(t *testing.T, opts ...operatorOption) *operator {
	t.Helper()
	writes := &writeRecorder{}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Wrap(writes.wrap)
	setup := operatorSetup{
		manager: ctrl.Options{
			Logger:                 ctrl.Log,
			Scheme:                 scheme,
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
			// Each test runs its own manager with the same controller names in one process.
			Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		},
		reconciler: MirrorReconciler{WriteConcurrency: 4, ConflictRetryInterval: time.Minute, AttachServiceAccounts: true},
		kinds:      AllKinds,
	}
	for _, opt := range opts {
		opt(&setup)
	}
	setup.manager.Cache = CacheOptions(setup.reconciler.AttachServiceAccounts, setup.kinds...)
	mgr, err := ctrl.NewManager(cfg, setup.manager)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	for _, k := range setup.kinds {
		r := setup.reconciler // the settings; the rest is made by SetupWithManager
		r.Kind, r.Client, r.APIReader = k, mgr.GetClient(), mgr.GetAPIReader()
		if err := r.SetupWithManager(ctx, mgr); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	op := &operator{writes: writes, stop: func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("operator stopped with an error: %v", err)
			}
		})
	}}
	t.Cleanup(op.stop)
	return op
}

// names returns one namespace name per base name, unique to this test run, so that tests do not
// see each other's mirrors.
func names(bases ...string) []string {
	suffix := fmt.Sprintf("%04x", rand.N(1<<16)) //nolint:gosec // G404: keeps test runs apart; nobody gains by guessing it
	out := make([]string, len(bases))
	for i, base := range bases {
		out[i] = base + "-" + suffix
	}
	return out
}

// createNamespaces creates namespaces that are deleted when the test ends.
func createNamespaces(t *testing.T, names ...string) {
	t.Helper()
	for _, name := range names {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
		if err := k8s.Create(context.Background(), ns); err != nil {
			t.Fatalf("creating namespace %s: %v", name, err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), ns) })
	}
}

// sourceSecret returns a source Secret in namespace, named name, that asks for targets.
func sourceSecret(namespace, name string, targets ...string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: sourceMeta(namespace, name, targets...),
		Data:       map[string][]byte{"secret": []byte("totally a super duper secret")},
	}
}

func create(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Create(context.Background(), obj); err != nil {
		t.Fatalf("creating %s/%s: %v", obj.GetNamespace(), obj.GetName(), err)
	}
}

// getSecret reads a Secret live; it returns nil when there is none.
func getSecret(t *testing.T, namespace, name string) *corev1.Secret {
	t.Helper()
	if obj := getObject(t, secretKindT, namespace, name); obj != nil {
		return obj.(*corev1.Secret)
	}
	return nil
}

// waitReconciled waits until a reconcile of obj, a source, has planned from it as it is now (its
// current resourceVersion) and ended: what that reconcile did not do, it will not do.
func waitReconciled(t *testing.T, obj client.Object) {
	t.Helper()
	live := getObject(t, kindOf(obj), obj.GetNamespace(), obj.GetName())
	if live == nil {
		t.Fatalf("%s/%s is gone", obj.GetNamespace(), obj.GetName())
	}
	want := map[attribute.Key]string{
		attrKind: kindOf(obj).name, attrSourceNamespace: obj.GetNamespace(), attrSourceName: obj.GetName(),
		attrSourceVersion: live.GetResourceVersion(),
	}
	eventually(t, fmt.Sprintf("a reconcile of %s at resourceVersion %s", obj.GetName(), live.GetResourceVersion()), func() error {
		if len(reconcileSpans(want)) == 0 {
			return fmt.Errorf("none ended yet")
		}
		return nil
	})
}

// reconcileSpans returns the ended Reconcile spans whose attributes include want.
func reconcileSpans(want map[attribute.Key]string) []sdktrace.ReadOnlySpan {
	var found []sdktrace.ReadOnlySpan
	for _, span := range spans.Ended() {
		if span.Name() != "Reconcile" {
			continue
		}
		got := map[attribute.Key]string{}
		for _, kv := range span.Attributes() {
			got[kv.Key] = kv.Value.String()
		}
		matches := true
		for k, v := range want {
			matches = matches && got[k] == v
		}
		if matches {
			found = append(found, span)
		}
	}
	return found
}

// eventually retries check until it returns nil, failing the test with its last error after timeout.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	eventuallyWithin(t, 30*time.Second, what, check)
}

// eventuallyWithin is eventually, with a timeout of its own.
func eventuallyWithin(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	const interval = 100 * time.Millisecond
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not true after %s: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

// writeRecorder records the requests that pass through a client's transport: mirror writes,
// Events, Leases, reads and watches alike.
type writeRecorder struct {
	mu       sync.Mutex
	requests []string // "METHOD path?query"
	// writeDelay, when set, holds each write of a Secret or ConfigMap this long before sending
	// it, so that writes made in parallel are seen to overlap, and a test can act in between.
	writeDelay atomic.Int64
	// inFlight and maxInFlight count the Secret and ConfigMap writes sent and not yet answered.
	inFlight, maxInFlight int
	// intercept, when set, sees each request before it is sent; when it returns an error
	// status, the request is answered with it instead.
	intercept atomic.Pointer[func(*http.Request) *metav1.Status]
}

func (w *writeRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		w.mu.Lock()
		w.requests = append(w.requests, req.Method+" "+req.URL.RequestURI())
		w.mu.Unlock()
		if intercept := w.intercept.Load(); intercept != nil {
			if status := (*intercept)(req); status != nil {
				return statusResponse(req, status), nil
			}
		}
		if req.Method == http.MethodGet || !strings.Contains(req.URL.Path, "/secrets") && !strings.Contains(req.URL.Path, "/configmaps") {
			return rt.RoundTrip(req)
		}
		w.track(+1)
		defer w.track(-1)
		time.Sleep(time.Duration(w.writeDelay.Load()))
		return rt.RoundTrip(req)
	})
}

// statusResponse answers req with status, as the API server answers a request it fails.
func statusResponse(req *http.Request, status *metav1.Status) *http.Response {
	status.Kind, status.APIVersion, status.Status = "Status", "v1", metav1.StatusFailure
	body, _ := json.Marshal(status) //nolint:errchkjson // a Status always encodes
	return &http.Response{
		StatusCode: int(status.Code), Request: req, Body: io.NopCloser(bytes.NewReader(body)),
		Header: http.Header{"Content-Type": []string{"application/json"}},
	}
}

func (w *writeRecorder) track(delta int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight += delta
	w.maxInFlight = max(w.maxInFlight, w.inFlight)
}

// mostInFlight returns the most writes that were in flight at once.
func (w *writeRecorder) mostInFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxInFlight
}

// waitInFlight waits until a write is in flight.
func (w *writeRecorder) waitInFlight(t *testing.T) {
	t.Helper()
	eventually(t, "a write in flight", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.inFlight == 0 {
			return fmt.Errorf("none")
		}
		return nil
	})
}

// in returns the recorded writes (anything but get, list and watch) to objects in any of
// namespaces.
func (w *writeRecorder) in(namespaces ...string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var found []string
	for _, r := range w.requests {
		if strings.HasPrefix(r, http.MethodGet+" ") {
			continue
		}
		for _, ns := range namespaces {
			if strings.Contains(r, "/namespaces/"+ns+"/") {
				found = append(found, r)
				break
			}
		}
	}
	return found
}

// reads counts the recorded reads of the object at path (its namespace, resource and name).
func (w *writeRecorder) reads(path string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range w.requests {
		if method, uri, _ := strings.Cut(r, " "); method == http.MethodGet && strings.HasSuffix(uri, path) {
			n++
		}
	}
	return n
}

// of returns every recorded request, read or write, of resource (secrets, configmaps).
func (w *writeRecorder) of(resource string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var found []string
	for _, r := range w.requests {
		if path, _, _ := strings.Cut(r, "?"); strings.Contains(path, "/"+resource) {
			found = append(found, r)
		}
	}
	return found
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
