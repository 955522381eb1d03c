package main

import (
	"runtime/debug"
	"testing"

	"go.uber.org/zap/zapcore"
)

func TestLogLevelFromEnvironment(t *testing.T) {
	tests := []struct {
		name      string
		env       string
		args      []string
		wantLevel zapcore.Level
		wantErr   bool
	}{
		{name: "environment sets the level", env: "debug", wantLevel: zapcore.DebugLevel},
		{name: "verbosity number", env: "3", wantLevel: zapcore.Level(-3)},
		{name: "flag wins over environment", env: "debug", args: []string{"--zap-log-level=error"}, wantLevel: zapcore.ErrorLevel},
		{name: "invalid value is an error", env: "loud", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("WHISPERER_LOG_LEVEL", tt.env)
			o, err := parseOptions(tt.args)
			if tt.wantErr {
				if err == nil {
					t.Fatal("parseOptions() succeeded, want an error naming WHISPERER_LOG_LEVEL")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.zap.Level == nil || !o.zap.Level.Enabled(tt.wantLevel) || o.zap.Level.Enabled(tt.wantLevel-1) {
				t.Errorf("level enables %v but not %v: want exactly %v", tt.wantLevel, tt.wantLevel-1, tt.wantLevel)
			}
		})
	}
}

func TestLogFormatFromEnvironment(t *testing.T) {
	t.Setenv("WHISPERER_LOG_FORMAT", "xml")
	if _, err := parseOptions(nil); err == nil {
		t.Fatal("WHISPERER_LOG_FORMAT=xml accepted, want an error")
	}
	t.Setenv("WHISPERER_LOG_FORMAT", "console")
	o, err := parseOptions(nil)
	if err != nil || o.zap.NewEncoder == nil {
		t.Fatalf("WHISPERER_LOG_FORMAT=console: encoder %v, err %v; want the console encoder set", o.zap.NewEncoder, err)
	}
}

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
