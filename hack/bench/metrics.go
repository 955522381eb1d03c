package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// writeCounts counts write requests by resource ("secrets", "events", "leases.coordination.k8s.io").
type writeCounts map[string]int

func (w writeCounts) minus(before writeCounts) writeCounts {
	out := writeCounts{}
	for k, v := range w {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	for k, v := range before {
		if _, ok := w[k]; !ok && v != 0 {
			out[k] = -v
		}
	}
	return out
}

// mirrors returns the writes of the kinds whisperer mirrors: Secrets and ConfigMaps.
func (w writeCounts) mirrors() int {
	n := 0
	for _, k := range kinds {
		n += w[k.resource]
	}
	return n
}

func (w writeCounts) String() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, w[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// writeVerbs are the values of apiserver_request_total's verb label that change state.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "APPLY": true, "DELETE": true, "DELETECOLLECTION": true}

// resourceName names a resource as writeCounts does: "secrets", or "leases.coordination.k8s.io".
func resourceName(resource, group string) string {
	if group == "" {
		return resource
	}
	return resource + "." + group
}

// requestWrites reads the write requests the API server has served so far, by resource, from its
// apiserver_request_total counter in the metrics text exposition (whatever the response code).
func requestWrites(metrics io.Reader) (writeCounts, error) {
	families, err := parseFamilies(metrics, "apiserver_request_total")
	if err != nil {
		return nil, err
	}
	counts := writeCounts{}
	for _, m := range families["apiserver_request_total"].GetMetric() {
		l := labels(m)
		if writeVerbs[l["verb"]] && l["dry_run"] == "" {
			counts[resourceName(l["resource"], l["group"])] += int(m.GetCounter().GetValue())
		}
	}
	return counts, nil
}

// parseFamilies parses the named metric families of a text exposition; it skips the others
// before parsing, since the API server's exposition runs to megabytes.
func parseFamilies(metrics io.Reader, names ...string) (map[string]*dto.MetricFamily, error) {
	var kept bytes.Buffer
	scanner := bufio.NewScanner(metrics)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		for _, want := range names {
			if rest, ok := strings.CutPrefix(name, want); ok && (rest == "" || rest[0] == ' ' || rest[0] == '{') {
				kept.WriteString(line)
				kept.WriteByte('\n')
				break
			}
		}
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(&kept)
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// operatorMetrics is what the benchmark reads from the operator's metrics endpoint.
type operatorMetrics struct {
	// reconciles counts the reconciles of all its controllers.
	reconciles float64
	// heapInUse is the bytes of the Go heap's spans in use: live objects, and the garbage and
	// fragmentation of the spans that hold them.
	heapInUse float64
}

func readOperatorMetrics(metrics io.Reader) (operatorMetrics, error) {
	families, err := parseFamilies(metrics, "controller_runtime_reconcile_total", "go_memstats_heap_inuse_bytes")
	if err != nil {
		return operatorMetrics{}, err
	}
	var m operatorMetrics
	for _, metric := range families["controller_runtime_reconcile_total"].GetMetric() {
		m.reconciles += metric.GetCounter().GetValue()
	}
	heap := families["go_memstats_heap_inuse_bytes"].GetMetric()
	if len(heap) != 1 {
		return operatorMetrics{}, fmt.Errorf("the operator's metrics have no go_memstats_heap_inuse_bytes")
	}
	m.heapInUse = heap[0].GetGauge().GetValue()
	return m, nil
}

// writeCounter counts the write requests that pass through a client, by resource: the
// benchmark's own writes, which the API server's counters include.
type writeCounter struct {
	mu     sync.Mutex
	counts writeCounts
}

func (c *writeCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if writeMethods[req.Method] {
			c.mu.Lock()
			c.counts[pathResource(req.URL.Path)]++
			c.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (c *writeCounter) snapshot() writeCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts)
}

var writeMethods = map[string]bool{http.MethodPost: true, http.MethodPut: true, http.MethodPatch: true, http.MethodDelete: true}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// pathResource names the resource of an API path as writeCounts does:
// /api/v1/namespaces/a/secrets/s is "secrets", /api/v1/namespaces/a is "namespaces",
// /apis/events.k8s.io/v1/namespaces/a/events is "events.events.k8s.io".
func pathResource(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return path
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	return resourceName(parts[0], group)
}
