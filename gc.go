package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is the garbage collector's target when the GOGC environment variable is unset.
// Most of whisperer's heap is its caches, which live as long as the process, and it allocates
// mostly short-lived request and watch buffers. With Go's default of 100 the heap grows to twice
// the caches between collections; at 25 it grows by a quarter. In `make bench` at 5,000 mirrors,
// one round each, the peak RSS was 54.1 MiB at 25, 58.1 at 50 and 62.9 at 100, against a target
// of 64. The price is more collections: the operator used 3.4-3.7 s of CPU per phase at 25,
// 2.5-2.8 at 50 and 2.4-2.5 at 100, and at 1,000 mirrors the times to converge did not change
// measurably. GOGC, when set, wins, as for any Go program.
const defaultGCPercent = 25

// setGCPercent applies defaultGCPercent unless GOGC is set, and returns the target in effect.
func setGCPercent() int {
	if os.Getenv("GOGC") != "" {
		current := debug.SetGCPercent(100)
		debug.SetGCPercent(current)
		return current
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}
