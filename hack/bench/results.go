package main

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// row is one line of the results table.
type row struct {
	Phase string `json:"phase"`
	// phase is the phase's name without the run's unrelated objects.
	phase string
	N     int `json:"n"`
	// Unrelated are the unrelated objects in the cluster, if any.
	Unrelated *unrelatedObjects `json:"unrelated,omitempty"`
	// Seconds is the operator's median time over the rounds; for a new namespace phase, the
	// median over the namespaces, and P99Seconds their 99th percentile.
	Seconds      float64   `json:"seconds"`
	P99Seconds   float64   `json:"p99Seconds,omitempty"`
	RoundSeconds []float64 `json:"roundSeconds,omitempty"`
	// Raw is the same writes made by plain client-go, and Ratio is Seconds over its fastest.
	Raw   *rawResult `json:"raw,omitempty"`
	Ratio float64    `json:"ratio,omitempty"`
	// Writes are the operator's write requests in the phase by resource, as the API server
	// counted them; of a round whose writes were not as expected, if any.
	Writes     writeCounts `json:"writes"`
	Expected   string      `json:"expected"`
	AsExpected bool        `json:"asExpected"`
	Reconciles int         `json:"reconciles"`
	Operator   usage       `json:"operator"`
	// PeakAnonOverBaseMiB is, with unrelated objects, how much more the operator's peak
	// anonymous memory was than in the same phase at the same size without them.
	PeakAnonOverBaseMiB *float64 `json:"peakAnonOverBaseMiB,omitempty"`
	// CPU is what the other processes spent until the phase's result was seen.
	CPU cpuSplit `json:"cpu"`
}

// rawConcurrencies are the raw writers of the row's phase: at each concurrency, and the one that
// watches its writes.
func (r row) rawConcurrencies() []rawConcurrency {
	if r.Raw == nil {
		return nil
	}
	if r.Raw.Watching != nil {
		return append(slices.Clone(r.Raw.ByConcurrency), *r.Raw.Watching)
	}
	return r.Raw.ByConcurrency
}

// usage is what the operator process used in a phase: medians of the rounds for CPU, the
// highest of the rounds for memory.
type usage struct {
	// CPUSeconds is counted until it has been idle for a second, so that the writes that trail
	// the result (Events) are in.
	CPUSeconds float64 `json:"cpuSeconds"`
	// CPUPer1000Writes is CPUSeconds per 1,000 mirror writes, for phases that write mirrors.
	CPUPer1000Writes float64 `json:"cpuSecondsPer1000MirrorWrites,omitempty"`
	// PeakAnonMiB is the highest RssAnon sampled during the phase.
	PeakAnonMiB float64 `json:"peakAnonMiB"`
	// HeapInUseMiB is go_memstats_heap_inuse_bytes once the phase is over and the operator idle.
	HeapInUseMiB float64 `json:"heapInUseMiB"`
	// VmHWMMiB is the process's peak RSS since it started: anonymous and file pages.
	VmHWMMiB float64 `json:"vmHWMMiB"`
}

// expect is the writes a phase must cost the operator: exactly writes, by resource, exactly
// events Event writes unless it is anyEvents, and nothing else.
type expect struct {
	writes writeCounts
	events int
}

// anyEvents is for phases whose Event writes depend on timing: the Event recorder writes an Event
// that repeats within minutes as a series, counted by a later write or none.
const anyEvents = -1

// eventResources are the resources of Events, in the core group and events.k8s.io.
var eventResources = []string{"events", "events.events.k8s.io"}

// mirrorsOnly expects n writes of kind k's mirrors and events Events.
func mirrorsOnly(k kind, n, events int) expect {
	writes := writeCounts{}
	if n > 0 {
		writes[k.resource] = n
	}
	return expect{writes, events}
}

func (e expect) String() string {
	s := e.writes.String()
	if e.events != anyEvents {
		s += fmt.Sprintf(", events %d", e.events)
	}
	return s + ", nothing else"
}

func (e expect) met(writes writeCounts) bool {
	events := 0
	for resource, n := range writes {
		if slices.Contains(eventResources, resource) {
			events += n
		} else if n != e.writes[resource] {
			return false
		}
	}
	for resource, n := range e.writes {
		if writes[resource] != n {
			return false
		}
	}
	return e.events == anyEvents || events == e.events
}

// measured is one round of a phase.
type measured struct {
	took, p99  time.Duration
	writes     writeCounts
	reconciles int
	usage      usage
	cpu        cpuSplit
}

// merge makes one row of a phase's rounds: the median times, ratio and CPU times, the highest
// memory, and the writes of a round that was not as expected, else of the last.
func (r *run) merge(p phase, rounds []measured, raw *rawResult) row {
	last := rounds[len(rounds)-1]
	merged := row{Phase: r.label(p.name), phase: p.name, N: r.n, P99Seconds: last.p99.Seconds(), Raw: raw,
		Writes: last.writes, Expected: p.expect.String(), AsExpected: true, Reconciles: last.reconciles}
	for _, round := range rounds {
		if !p.expect.met(round.writes) {
			merged.Writes, merged.AsExpected = round.writes, false
		}
		merged.Reconciles = max(merged.Reconciles, round.reconciles)
		merged.Operator.PeakAnonMiB = max(merged.Operator.PeakAnonMiB, round.usage.PeakAnonMiB)
		merged.Operator.HeapInUseMiB = max(merged.Operator.HeapInUseMiB, round.usage.HeapInUseMiB)
		merged.Operator.VmHWMMiB = max(merged.Operator.VmHWMMiB, round.usage.VmHWMMiB)
	}
	merged.RoundSeconds = mapped(rounds, func(m measured) float64 { return m.took.Seconds() })
	merged.Seconds = median(merged.RoundSeconds)
	merged.Operator.CPUSeconds = median(mapped(rounds, func(m measured) float64 { return m.usage.CPUSeconds }))
	if mirrorWrites := merged.Writes.mirrors(); mirrorWrites > 0 {
		merged.Operator.CPUPer1000Writes = merged.Operator.CPUSeconds / float64(mirrorWrites) * 1000
	}
	merged.CPU = medianSplit(mapped(rounds, func(m measured) cpuSplit { return m.cpu }))
	if raw != nil {
		merged.Ratio = merged.Seconds / raw.Seconds
	}
	if len(rounds) == 1 {
		merged.RoundSeconds = nil
	}
	if r.unrelated.any() {
		merged.Unrelated = &r.unrelated
	}
	return merged
}

func mapped[T, V any](items []T, value func(T) V) []V {
	values := make([]V, len(items))
	for i, item := range items {
		values[i] = value(item)
	}
	return values
}

func medianSplit(splits []cpuSplit) cpuSplit {
	return cpuSplit{
		APIServer: median(mapped(splits, func(c cpuSplit) float64 { return c.APIServer })),
		Etcd:      median(mapped(splits, func(c cpuSplit) float64 { return c.Etcd })),
		Bench:     median(mapped(splits, func(c cpuSplit) float64 { return c.Bench })),
	}
}

func median(values []float64) float64 {
	sorted := slices.Sorted(slices.Values(values))
	if n := len(sorted); n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return sorted[len(sorted)/2]
}

// percentile returns the nearest-rank p-th percentile of durations: the smallest that at least
// p percent of them do not exceed.
func percentile(durations []time.Duration, p float64) time.Duration {
	sorted := slices.Sorted(slices.Values(durations))
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(0, rank-1)]
}
