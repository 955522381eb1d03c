package controllers

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/otel"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonv1 "go.opentelemetry.io/proto/otlp/common/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/whisperer-operator/whisperer/internal/mirror"
	"github.com/whisperer-operator/whisperer/internal/telemetry"
)

// otlpReceiver is an OTLP/HTTP endpoint that keeps the spans it is sent.
type otlpReceiver struct {
	mu       sync.Mutex
	spans    []*tracev1.Span
	resource map[string]string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body := io.Reader(req.Body)
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	export := &collectortrace.ExportTraceServiceRequest{}
	if err == nil {
		err = proto.Unmarshal(raw, export)
	}
	if req.URL.Path != "/v1/traces" || err != nil {
		http.Error(w, fmt.Sprintf("path %s, error %v", req.URL.Path, err), http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range export.ResourceSpans {
		o.resource = attributes(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

func (o *otlpReceiver) named(name string) []*tracev1.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(o.spans), func(s *tracev1.Span) bool { return s.Name != name })
}

func attributes(kvs []*commonv1.KeyValue) map[string]string {
	out := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonv1.AnyValue_StringValue:
			out[kv.Key] = v.StringValue
		case *commonv1.AnyValue_IntValue:
			out[kv.Key] = fmt.Sprint(v.IntValue)
		}
	}
	return out
}

// TestReconcileSpansReachAnOTLPReceiver configures tracing only through the standard OTEL_*
// variables, as a user would, and checks what an OTLP/HTTP collector receives.
func TestReconcileSpansReachAnOTLPReceiver(t *testing.T) {
	receiver := &otlpReceiver{}
	server := httptest.NewServer(receiver)
	defer server.Close()
	t.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.URL)
	t.Setenv("OTEL_SERVICE_NAME", "whisperer-under-test")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
	t.Setenv("OTEL_TRACES_SAMPLER", "always_on")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
	shutdown, err := telemetry.Setup(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { otel.SetTracerProvider(tracerProvider) })

	ns := names("source", "free", "taken")
	createNamespaces(t, ns...)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "traced", Namespace: ns[2]}})
	logs := &syncBuffer{}
	op := startOperator(t, withLogger(zap.New(zap.WriteTo(logs))))
	source := sourceSecret(ns[0], "traced", ns[1], ns[2])
	create(t, source)
	eventually(t, "mirror", func() error { return checkFaithful(source, getSecret(t, ns[1], "traced")) })
	waitForEvent(t, source, ReasonConflict)
	op.stop()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("flushing spans: %v", err)
	}

	reconcile := findSpan(t, receiver.named("Reconcile"), map[string]string{
		"whisperer.source.namespace": ns[0], "whisperer.source.name": "traced",
		"whisperer.targets": "2", "whisperer.mirrors.created": "1", "whisperer.outcome": "conflict",
	})
	writes := slices.DeleteFunc(receiver.named("WriteMirror"), func(s *tracev1.Span) bool {
		return !slices.Equal(s.ParentSpanId, reconcile.SpanId)
	})
	findSpan(t, writes, map[string]string{"k8s.namespace.name": ns[1], "whisperer.action": "create", "whisperer.result": "created"})
	findSpan(t, writes, map[string]string{"k8s.namespace.name": ns[2], "whisperer.action": "skip-conflict", "whisperer.result": "conflict"})
	if got := receiver.resource; got["service.name"] != "whisperer-under-test" || got["deployment.environment.name"] != "test" {
		t.Errorf("resource attributes %v, want those of OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES", got)
	}
	traceID := hex.EncodeToString(reconcile.TraceId)
	if !strings.Contains(logs.String(), `"traceID":"`+traceID+`"`) {
		t.Errorf("no log line of the traced reconcile carries its trace id %s", traceID)
	}
}

// findSpan returns the span with all of want among its attributes, failing the test if none has.
func findSpan(t *testing.T, spans []*tracev1.Span, want map[string]string) *tracev1.Span {
	t.Helper()
	var seen []map[string]string
	for _, s := range spans {
		got := attributes(s.Attributes)
		seen = append(seen, got)
		matches := true
		for k, v := range want {
			matches = matches && got[k] == v
		}
		if matches {
			return s
		}
	}
	t.Fatalf("no span with attributes %v among %v", want, seen)
	return nil
}

// TestMetricsAfterTheSeedFlows scrapes the metrics endpoint, as Prometheus does, after sources
// in each state.
func TestMetricsAfterTheSeedFlows(t *testing.T) {
	// The state gauges count every source in the cluster: wait for the other tests' to be gone.
	eventually(t, "no source left by other tests", func() error {
		for _, k := range testKinds {
			sources := k.newList()
			if err := k8s.List(context.Background(), sources, client.MatchingLabels{mirror.LabelSync: "true"}); err != nil {
				return err
			}
			if n := meta.LenList(sources); n > 0 {
				return fmt.Errorf("%d %s sources", n, k.name)
			}
		}
		return nil
	})
	ns := names("source", "target", "target2", "taken", "excluded")
	createNamespaces(t, ns...)
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "measured", Namespace: ns[3]}})
	addr := freeAddr(t)
	startOperator(t, withMetricsAt(addr), withPolicy(mirror.Policy{ExcludedNamespaces: mirror.Patterns{ns[4]}}))
	var before map[string]float64
	eventually(t, "metrics endpoint up", func() (err error) {
		before, err = scrape(t.Context(), addr)
		return err
	})

	source := sourceSecret(ns[0], "measured", ns[1:]...)
	token := sourceSecret(ns[0], "bootstrap-token-abcdef", ns[1])
	token.Type = corev1.SecretTypeBootstrapToken
	create(t, source)
	create(t, token)
	waitForEvent(t, source, ReasonConflict)
	waitForEvent(t, token, ReasonRefused)
	eventually(t, "gauges after the flows", func() error {
		return expectMetrics(t.Context(), addr, before, map[string]float64{
			`whisperer_sources{kind="Secret",state="active"}`:                       1,
			`whisperer_sources{kind="Secret",state="refused"}`:                      1,
			`whisperer_mirrors{kind="Secret",state="in_sync"}`:                      2,
			`whisperer_mirrors{kind="Secret",state="conflict"}`:                     1,
			`whisperer_mirrors{kind="Secret",state="refused"}`:                      2, // the excluded namespace, the token's target
			`whisperer_mirrors{kind="Secret",state="failed"}`:                       0,
			`whisperer_sources{kind="ConfigMap",state="active"}`:                    0,
			`whisperer_mirrors{kind="ConfigMap",state="in_sync"}`:                   0,
			`Δ whisperer_mirror_operations_total{kind="Secret",operation="create"}`: 2,
			`Δ whisperer_mirror_errors_total{kind="Secret",operation="create"}`:     0,
		})
	})

	// The reconcile that follows the blocker's deletion looks at its namespace only; the gauges
	// count the conflict's end at once, not at the full reconcile that comes fullAfterScoped later.
	deleteObject(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "measured", Namespace: ns[3]}})
	eventuallyWithin(t, fullAfterScoped/3, "gauges after the conflict ends", func() error {
		return expectMetrics(t.Context(), addr, before, map[string]float64{
			`whisperer_mirrors{kind="Secret",state="in_sync"}`:  3,
			`whisperer_mirrors{kind="Secret",state="conflict"}`: 0,
		})
	})

	deleteObject(t, source)
	eventually(t, "gauges after the source is deleted", func() error {
		return expectMetrics(t.Context(), addr, before, map[string]float64{
			`whisperer_sources{kind="Secret",state="active"}`:                       0,
			`whisperer_mirrors{kind="Secret",state="in_sync"}`:                      0,
			`whisperer_mirrors{kind="Secret",state="conflict"}`:                     0,
			`Δ whisperer_mirror_operations_total{kind="Secret",operation="delete"}`: 3,
		})
	})
}

// expectMetrics scrapes addr and compares the samples with want; a key starting with "Δ " is
// compared as the change since before.
func expectMetrics(ctx context.Context, addr string, before map[string]float64, want map[string]float64) error {
	now, err := scrape(ctx, addr)
	if err != nil {
		return err
	}
	var wrong []string
	for key, value := range want {
		got := now[strings.TrimPrefix(key, "Δ ")]
		if strings.HasPrefix(key, "Δ ") {
			got -= before[strings.TrimPrefix(key, "Δ ")]
		}
		if got != value {
			wrong = append(wrong, fmt.Sprintf("%s = %v, want %v", key, got, value))
		}
	}
	if len(wrong) > 0 {
		slices.Sort(wrong)
		return fmt.Errorf("%s", strings.Join(wrong, "; "))
	}
	return nil
}

// scrape reads the metrics endpoint into "name{label=value,...}" → value, for whisperer's metrics.
// It gives up after 10 seconds, so that the eventually that calls it tries again.
func scrape(ctx context.Context, addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	samples := map[string]float64{}
	for name, family := range families {
		if !strings.HasPrefix(name, "whisperer_") {
			continue
		}
		for _, m := range family.GetMetric() {
			samples[sampleKey(name, m)] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return samples, nil
}

func sampleKey(name string, m *dto.Metric) string {
	var labels []string
	for _, l := range m.GetLabel() {
		labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	return name + "{" + strings.Join(labels, ",") + "}"
}

func freeAddr(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	l, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
