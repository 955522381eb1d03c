//go:build reliability

package reliability

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// secretPath matches the paths of Secret and ServiceAccount requests and captures the
// namespace and the resource.
var secretPath = regexp.MustCompile(`^/api/v1/namespaces/([^/]+)/(secrets|serviceaccounts)(/[^/]+)?$`)

// fault is what the proxy answers instead of passing a request on.
type fault int

const (
	pass     fault = iota
	conflict       // 409 Conflict, as for a stale resourceVersion
	throttle       // 429 Too Many Requests, Retry-After: 1
	hang           // no answer until releaseHung, then passed on, as an admission webhook that hangs
)

// faultProxy is a reverse proxy on 127.0.0.1 between one operator and the API server. It
// authenticates to the API server as its user, and answers Secret writes with the faults that
// inject chooses, given the write's sequence number and namespace.
type faultProxy struct {
	server *httptest.Server
	user   string

	mu     sync.Mutex
	inject func(n int, namespace, resource string) fault
	writes []proxiedWrite
	// released is closed by releaseHung, to let the hung writes through.
	released chan struct{}
}

// proxiedWrite is one Secret write the proxy saw.
type proxiedWrite struct {
	at           time.Time
	method, path string
	namespace    string
	fault        fault
}

// startFaultProxy starts a proxy that reaches the API server as a new user; it stops when the
// test ends.
func (e *env) startFaultProxy(name string) *faultProxy {
	e.t.Helper()
	p := &faultProxy{user: "whisperer-" + name, inject: func(int, string, string) fault { return pass }, released: make(chan struct{})}
	cfg, _, err := e.cluster.AddUser(p.user, "system:masters", operatorGroup)
	if err != nil {
		e.t.Fatal(err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	upstream, err := url.Parse(cfg.Host)
	if err != nil {
		e.t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		Transport:     transport,
		FlushInterval: -1, // watches stream
	}
	p.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.intercept(w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	e.t.Cleanup(func() {
		p.server.CloseClientConnections()
		p.server.Close()
	})
	return p
}

// setFaults replaces the fault schedule.
func (p *faultProxy) setFaults(inject func(n int, namespace, resource string) fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.inject = inject
}

// intercept answers r with a fault when the schedule says so, and reports whether it did.
func (p *faultProxy) intercept(w http.ResponseWriter, r *http.Request) bool {
	match := secretPath.FindStringSubmatch(r.URL.Path)
	if match == nil || r.Method == http.MethodGet {
		return false
	}
	p.mu.Lock()
	f := p.inject(len(p.writes), match[1], match[2])
	p.writes = append(p.writes, proxiedWrite{at: time.Now(), method: r.Method, path: r.URL.Path, namespace: match[1], fault: f})
	released := p.released
	p.mu.Unlock()
	var status *apierrors.StatusError
	switch f {
	case hang:
		select {
		case <-released:
		case <-r.Context().Done():
		}
		return false
	case conflict:
		status = apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, "injected", errInjected)
	case throttle:
		status = apierrors.NewTooManyRequests("injected throttling", 1)
		w.Header().Set("Retry-After", strconv.Itoa(1))
	default:
		return false
	}
	body, _ := json.Marshal(withKind(status.ErrStatus))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(status.ErrStatus.Code))
	_, _ = w.Write(body)
	return true
}

type injectedError struct{}

func (injectedError) Error() string { return "injected by the fault proxy" }

var errInjected = injectedError{}

func withKind(status metav1.Status) metav1.Status {
	status.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
	return status
}

// releaseHung lets the writes that hang through, and those that would hang from now on.
func (p *faultProxy) releaseHung() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.released)
	p.inject = func(int, string, string) fault { return pass }
}

// seen returns a copy of the Secret writes seen so far.
func (p *faultProxy) seen() []proxiedWrite {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]proxiedWrite(nil), p.writes...)
}

// kubeconfig points at the proxy, without credentials: the proxy adds its own.
func (p *faultProxy) kubeconfig(t *testing.T) []byte {
	return kubeconfig(t, &clientcmdapi.Cluster{Server: p.server.URL}, &clientcmdapi.AuthInfo{})
}
