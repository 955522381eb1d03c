package main

import (
	"os"
	"runtime/debug"
)

// defaultGCPercent is the garbage collector's target when the GOGC environment variable is unset.
// Most of whisperer's heap is its caches, which live as long as the process, and it allocates
// mostly short-lived request and watch buffers. With Go's default of 100 the heap grows to twice
// the caches between collections; at 25 it grows by a quarter. In `make bench` at 5,000 mirrors
// that took the peak RSS after a create and an update from about 70 (GOGC=50) to 62 MiB. The
// price is more collections: at 1,000 mirrors the operator used up to a quarter more CPU time
// (a few tenths of a second per phase), and the times to converge did not change. GOGC, when
// set, wins, as for any Go program.
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
