package main

import (
	"maps"
	"strings"
	"testing"
	"time"
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

func TestExpectMet(t *testing.T) {
	create := mirrorsOnly(secretKind, 100, 1)
	for _, tc := range []struct {
		writes writeCounts
		e      expect
		want   bool
	}{
		{writeCounts{"secrets": 100, "events.events.k8s.io": 1}, create, true},
		{writeCounts{"secrets": 100, "events": 1}, create, true},
		{writeCounts{"secrets": 101, "events.events.k8s.io": 1}, create, false},
		{writeCounts{"secrets": 100}, create, false},
		{writeCounts{"events.events.k8s.io": 1}, create, false},
		{writeCounts{"secrets": 100, "events.events.k8s.io": 1, "configmaps": 1}, create, false},
		{writeCounts{"secrets": 100, "events.events.k8s.io": 3}, mirrorsOnly(secretKind, 100, anyEvents), true},
		{writeCounts{}, mirrorsOnly(secretKind, 0, 0), true},
		{writeCounts{"events.events.k8s.io": 1}, mirrorsOnly(secretKind, 0, 0), false},
		{writeCounts{"secrets": 100, "serviceaccounts": 100}, expect{writeCounts{"secrets": 100, "serviceaccounts": 100}, 0}, true},
		{writeCounts{"secrets": 100, "serviceaccounts": 99}, expect{writeCounts{"secrets": 100, "serviceaccounts": 100}, 0}, false},
	} {
		if got := tc.e.met(tc.writes); got != tc.want {
			t.Errorf("%v met by %v = %v, want %v", tc.e, tc.writes, got, tc.want)
		}
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var durations []time.Duration
	for i := 100; i >= 1; i-- {
		durations = append(durations, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(durations, 50); got != 50*time.Millisecond {
		t.Errorf("median of 1..100 ms = %v", got)
	}
	if got := percentile(durations, 99); got != 99*time.Millisecond {
		t.Errorf("p99 of 1..100 ms = %v", got)
	}
	if got := percentile(durations[:50], 99); got != 100*time.Millisecond {
		t.Errorf("p99 of 50 values is the largest, got %v", got)
	}
}

// The baseline of a phase is the concurrency with the lowest median, not the one with the
// fastest single round, whatever order the rounds came in.
func TestFastestIsTheLowestMedian(t *testing.T) {
	phase := func(c int, seconds float64) rawPhase {
		return rawPhase{concurrency: c, took: time.Duration(seconds * float64(time.Second)), cpu: cpuSplit{APIServer: seconds}}
	}
	stray := phase(32, 5)
	stray.others = writeCounts{"events": 1}
	got := fastest([]rawPhase{phase(8, 3), phase(32, 1), phase(8, 2), phase(32, 9), phase(8, 4), stray}, []int{8, 32})
	if got.Concurrency != 8 || got.Seconds != 3 || got.CPU.APIServer != 3 || len(got.ByConcurrency) != 2 || got.ByConcurrency[1].Seconds != 5 {
		t.Fatalf("fastest = %+v, want 8 at once, 3 s (32 at once: 5 s)", got)
	}
	if got.ByConcurrency[0].OtherWrites != nil || !maps.Equal(got.ByConcurrency[1].OtherWrites, writeCounts{"events": 1}) {
		t.Fatalf("other writes = %v and %v, want none at 8 and the stray Event at 32", got.ByConcurrency[0].OtherWrites, got.ByConcurrency[1].OtherWrites)
	}
	if fastest(nil, []int{8}) != nil {
		t.Fatal("no raw rounds: want no raw result")
	}
}

func TestParseProcMemory(t *testing.T) {
	const status = "Name:\twhisperer\nVmPeak:\t 1300000 kB\nVmHWM:\t   48900 kB\nVmRSS:\t   40000 kB\nRssAnon:\t   21100 kB\nRssFile:\t   18900 kB\n"
	if got := parseProcMemory(status); got != (procMemory{rssAnon: 21100, vmHWM: 48900}) {
		t.Fatalf("parseProcMemory = %+v", got)
	}
}
