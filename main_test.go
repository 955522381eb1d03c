package main

import (
	"runtime/debug"
	"testing"
)

func TestGCPercent(t *testing.T) {
	original := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(original) })

	t.Setenv("GOGC", "")
	if got := setGCPercent(); got != defaultGCPercent {
		t.Errorf("GOGC unset: setGCPercent() = %d, want %d", got, defaultGCPercent)
	}
	if inEffect := debug.SetGCPercent(100); inEffect != defaultGCPercent {
		t.Errorf("GOGC unset: the runtime's target is %d, want %d", inEffect, defaultGCPercent)
	}

	// The runtime reads GOGC when the process starts; setGCPercent must leave that value alone.
	t.Setenv("GOGC", "80")
	debug.SetGCPercent(80)
	if got := setGCPercent(); got != 80 {
		t.Errorf("GOGC=80: setGCPercent() = %d, want 80", got)
	}
	if inEffect := debug.SetGCPercent(100); inEffect != 80 {
		t.Errorf("GOGC=80: the runtime's target is %d, want 80", inEffect)
	}
}
