package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

	"github.com/whisperer-operator/whisperer/internal/localcluster"
	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// The suite runs against one local control plane (etcd, kube-apiserver and
// kube-controller-manager, so that namespaces really delete). Each test starts its own operator
// and works in namespaces of its own.
var (
	cluster *localcluster.Cluster
	// k8s reads and writes directly, without a cache, as a user with kubectl does.
	k8s    client.Client
	scheme = runtime.NewScheme()
)

func TestMain(m *testing.M) {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
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

// operatorOption changes how a test operator is set up: its manager or its reconciler.
type operatorOption func(*ctrl.Options, *MirrorReconciler)

func withPolicy(p mirror.Policy) operatorOption {
	return func(_ *ctrl.Options, r *MirrorReconciler) { r.Policy = p }
}

func withResync(d time.Duration) operatorOption {
	return func(_ *ctrl.Options, r *MirrorReconciler) { r.ResyncPeriod = d }
}

func withConflictRetry(d time.Duration) operatorOption {
	return func(_ *ctrl.Options, r *MirrorReconciler) { r.ConflictRetryInterval = d }
}

// withLogger sends the operator's logs to log.
func withLogger(log logr.Logger) operatorOption {
	return func(o *ctrl.Options, _ *MirrorReconciler) { o.Logger = log }
}

// withMetricsAt serves the operator's metrics over plain HTTP at addr.
func withMetricsAt(addr string) operatorOption {
	return func(o *ctrl.Options, _ *MirrorReconciler) { o.Metrics.BindAddress = addr }
}

// startOperator starts whisperer against the test cluster; it stops when the test ends or
// when stop is called.
func startOperator(t *testing.T, opts ...operatorOption) *operator {
	t.Helper()
	writes := &writeRecorder{}
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Wrap(writes.wrap)
	options := ctrl.Options{
		Logger:                 ctrl.Log,
		Scheme:                 scheme,
		Cache:                  CacheOptions(Secrets),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Each test runs its own manager with the same controller name in one process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	r := &MirrorReconciler{Kind: Secrets, WriteConcurrency: 4, ConflictRetryInterval: time.Minute}
	for _, opt := range opts {
		opt(&options, r)
	}
	mgr, err := ctrl.NewManager(cfg, options)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.Client, r.APIReader = mgr.GetClient(), mgr.GetAPIReader()
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
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
	suffix := fmt.Sprintf("%04x", rand.N(1<<16))
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

// sourceSecret returns a source in namespace, named name, that asks for targets.
func sourceSecret(namespace, name string, targets ...string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: namespace,
			Labels:      map[string]string{mirror.LabelSync: "true"},
			Annotations: map[string]string{mirror.AnnotationNamespaces: strings.Join(targets, ",")},
		},
		Data: map[string][]byte{"secret": []byte("totally a super duper secret")},
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
	s := &corev1.Secret{}
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, s)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading Secret %s/%s: %v", namespace, name, err)
	}
	return s
}

// mirrorsOf lists, live, the namespaces holding a Secret labelled as a mirror of source, as the
// seed's `kubectl get secrets -l secret-syncer.jeffl.es/name=...,secret-syncer.jeffl.es/namespace=...` does.
func mirrorsOf(t *testing.T, source *corev1.Secret) []string {
	t.Helper()
	list := &corev1.SecretList{}
	err := k8s.List(context.Background(), list, client.MatchingLabels{
		mirror.LabelSourceName: source.Name, mirror.LabelSourceNamespace: source.Namespace,
	})
	if err != nil {
		t.Fatal(err)
	}
	var namespaces []string
	for _, s := range list.Items {
		namespaces = append(namespaces, s.Namespace)
	}
	return namespaces
}

// eventually retries check until it returns nil, failing the test with its last error after timeout.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	const timeout, interval = 30 * time.Second, 100 * time.Millisecond
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

// writeRecorder records the write requests (anything but get, list and watch) that pass through
// a client's transport: mirror writes, Events, Leases alike.
type writeRecorder struct {
	mu       sync.Mutex
	requests []string // "METHOD path"
	// secretWriteDelay, when set, holds each Secret write this long before sending it, so
	// that writes made in parallel are seen to overlap.
	secretWriteDelay atomic.Int64
	// inFlight and maxInFlight count the Secret writes sent and not yet answered.
	inFlight, maxInFlight int
}

func (w *writeRecorder) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodGet {
			return rt.RoundTrip(req)
		}
		w.mu.Lock()
		w.requests = append(w.requests, req.Method+" "+req.URL.Path)
		w.mu.Unlock()
		if !strings.Contains(req.URL.Path, "/secrets") {
			return rt.RoundTrip(req)
		}
		w.track(+1)
		defer w.track(-1)
		time.Sleep(time.Duration(w.secretWriteDelay.Load()))
		return rt.RoundTrip(req)
	})
}

func (w *writeRecorder) track(delta int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inFlight += delta
	w.maxInFlight = max(w.maxInFlight, w.inFlight)
}

// mostInFlight returns the most Secret writes that were in flight at once.
func (w *writeRecorder) mostInFlight() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxInFlight
}

// in returns the recorded writes to objects in any of namespaces.
func (w *writeRecorder) in(namespaces ...string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var found []string
	for _, r := range w.requests {
		for _, ns := range namespaces {
			if strings.Contains(r, "/namespaces/"+ns+"/") {
				found = append(found, r)
				break
			}
		}
	}
	return found
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
