package main

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// memorySampleInterval is how often the operator's anonymous memory is read during a phase. A
// peak shorter than this can be missed; VmHWM, which the kernel keeps, cannot, but it counts the
// pages of the executable too.
const memorySampleInterval = 10 * time.Millisecond

// procMemory is what /proc/<pid>/status says of a process's memory, in KiB.
type procMemory struct {
	// rssAnon is its anonymous resident memory: heap, stacks, the Go runtime. The kernel can
	// only reclaim it by swapping, and it is what a container's memory limit is spent on.
	rssAnon float64
	// vmHWM is its peak resident memory since it started: anonymous memory, and the pages of
	// files it maps (its executable), which are page cache that the kernel can drop.
	vmHWM float64
}

func readProcMemory(pid int) (procMemory, error) {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return procMemory{}, err
	}
	return parseProcMemory(string(status)), nil
}

func parseProcMemory(status string) procMemory {
	var m procMemory
	for _, line := range strings.Split(status, "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kib, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 64)
		switch name {
		case "RssAnon":
			m.rssAnon = kib
		case "VmHWM":
			m.vmHWM = kib
		}
	}
	return m
}

// anonPeak samples a process's anonymous memory until it exits and keeps the highest value
// since the last reset.
type anonPeak struct{ kib atomic.Int64 }

func (p *anonPeak) run(pid int, exited <-chan struct{}) {
	ticker := time.NewTicker(memorySampleInterval)
	defer ticker.Stop()
	for {
		if m, err := readProcMemory(pid); err == nil {
			p.observe(int64(m.rssAnon))
		}
		select {
		case <-exited:
			return
		case <-ticker.C:
		}
	}
}

func (p *anonPeak) observe(kib int64) {
	for {
		peak := p.kib.Load()
		if kib <= peak || p.kib.CompareAndSwap(peak, kib) {
			return
		}
	}
}

// reset forgets the peak so far: the next sample starts a new one.
func (p *anonPeak) reset() { p.kib.Store(0) }

func (p *anonPeak) mib() float64 { return float64(p.kib.Load()) / 1024 }
