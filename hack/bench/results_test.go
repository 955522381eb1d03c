package main

import (
	"maps"
	"testing"
	"time"
)

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

// The writer that watches its own writes is reported beside the baseline, never as it, even
// when it is faster.
func TestWatchingWriterIsNotTheBaseline(t *testing.T) {
	phase := func(c int, seconds float64, watching bool) rawPhase {
		return rawPhase{concurrency: c, watching: watching, took: time.Duration(seconds * float64(time.Second))}
	}
	got := fastest([]rawPhase{phase(8, 3, false), phase(8, 1, true), phase(8, 2, true), phase(8, 4, true)}, []int{8})
	if got.Concurrency != 8 || got.Seconds != 3 || len(got.ByConcurrency) != 1 {
		t.Fatalf("fastest = %+v, want the plain writer at 8: 3 s", got)
	}
	if got.Watching == nil || got.Watching.Seconds != 2 || len(got.Watching.RoundSeconds) != 3 {
		t.Fatalf("watching = %+v, want the median of its 3 rounds, 2 s", got.Watching)
	}
	if rows := (row{Raw: got}).rawConcurrencies(); len(rows) != 2 {
		t.Fatalf("rawConcurrencies = %+v, want the plain and the watching writer, whose other writes are checked too", rows)
	}
}

// A phase with unrelated objects is compared with the same phase at the same size without them.
func TestCompareUnrelated(t *testing.T) {
	some := &unrelatedObjects{Secrets: 1}
	rows := []row{
		{phase: "create Secret", N: 100, Operator: usage{PeakAnonMiB: 20}},
		{phase: "create Secret", N: 1000, Operator: usage{PeakAnonMiB: 30}},
		{phase: "update Secret", N: 1000, Operator: usage{PeakAnonMiB: 31}},
		{phase: "create Secret", N: 1000, Unrelated: some, Operator: usage{PeakAnonMiB: 31.5}},
		{phase: "restart", N: 1000, Unrelated: some, Operator: usage{PeakAnonMiB: 25}},
	}
	compareUnrelated(rows)
	if got := rows[3].PeakAnonOverBaseMiB; got == nil || *got != 1.5 {
		t.Fatalf("create with unrelated objects: %v over the run without them, want +1.5", got)
	}
	for _, i := range []int{0, 1, 2, 4} {
		if rows[i].PeakAnonOverBaseMiB != nil {
			t.Errorf("row %d (%s) compared: %v", i, rows[i].phase, *rows[i].PeakAnonOverBaseMiB)
		}
	}
}
