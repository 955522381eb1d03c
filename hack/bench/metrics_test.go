package main

import (
	"maps"
	"strings"
	"testing"
)

// The API server's counters give every write request by resource, whatever its code; reads,
// dry runs and other metrics are not writes.
func TestRequestWritesCountsWriteVerbsByResource(t *testing.T) {
	const exposition = `# HELP apiserver_request_total [STABLE] Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 1000
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="PUT",version="v1"} 2
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="resource",subresource="",verb="DELETE",version="v1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="secrets",scope="cluster",subresource="",verb="LIST",version="v1"} 7
apiserver_request_total{code="201",component="apiserver",dry_run="All",group="",resource="secrets",scope="resource",subresource="",verb="POST",version="v1"} 3
apiserver_request_total{code="201",component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 4
# HELP apiserver_request_total_other not this one
# TYPE apiserver_request_total_other counter
apiserver_request_total_other{verb="POST",resource="secrets"} 99
`
	got, err := requestWrites(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := writeCounts{"secrets": 1007, "events.events.k8s.io": 1, "leases.coordination.k8s.io": 4}
	if !maps.Equal(got, want) {
		t.Fatalf("requestWrites = %v, want %v", got, want)
	}
}

func TestReadOperatorMetrics(t *testing.T) {
	const exposition = `# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="secretmirror",result="success"} 7
controller_runtime_reconcile_total{controller="secretmirror",result="error"} 1
controller_runtime_reconcile_total{controller="configmapmirror",result="success"} 2
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 2.097152e+07
`
	got, err := readOperatorMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if got != (operatorMetrics{reconciles: 10, heapInUse: 20 << 20}) {
		t.Fatalf("readOperatorMetrics = %+v", got)
	}
	if _, err := readOperatorMetrics(strings.NewReader("# TYPE controller_runtime_reconcile_total counter\n")); err == nil {
		t.Fatal("metrics without the heap: want an error, not a heap of 0")
	}
}

// The benchmark's own writes are subtracted from the API server's counts by the same names.
func TestPathResourceNamesAsTheAPIServer(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/namespaces/a/secrets":                     "secrets",
		"/api/v1/namespaces/a/secrets/s":                   "secrets",
		"/api/v1/namespaces":                               "namespaces",
		"/api/v1/namespaces/a":                             "namespaces",
		"/apis/events.k8s.io/v1/namespaces/a/events":       "events.events.k8s.io",
		"/apis/coordination.k8s.io/v1/namespaces/l/leases": "leases.coordination.k8s.io",
		"/api/v1/namespaces/a/configmaps/c":                "configmaps",
	} {
		if got := pathResource(path); got != want {
			t.Errorf("pathResource(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestWriteCountsMinusKeepsEveryChange(t *testing.T) {
	got := writeCounts{"secrets": 10, "events": 1}.minus(writeCounts{"secrets": 4, "namespaces": 2, "events": 1})
	if want := (writeCounts{"secrets": 6, "namespaces": -2}); !maps.Equal(got, want) {
		t.Fatalf("minus = %v, want %v", got, want)
	}
}

func TestParseProcMemory(t *testing.T) {
	const status = "Name:\twhisperer\nVmPeak:\t 1300000 kB\nVmHWM:\t   48900 kB\nVmRSS:\t   40000 kB\nRssAnon:\t   21100 kB\nRssFile:\t   18900 kB\n"
	if got := parseProcMemory(status); got != (procMemory{rssAnon: 21100, vmHWM: 48900}) {
		t.Fatalf("parseProcMemory = %+v", got)
	}
}
