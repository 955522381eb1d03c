package telemetry

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
)

// The tests set the global tracer provider: they must not run in parallel.

func TestSetupFromEnvironment(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		recording bool
		wantErr   bool
	}{
		{name: "nothing set: off", env: map[string]string{}, recording: false},
		{name: "none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none"}, recording: false},
		{name: "console", env: map[string]string{"OTEL_TRACES_EXPORTER": "console"}, recording: true},
		{name: "otlp over http", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, recording: true},
		{name: "otlp over grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, recording: true},
		{name: "SDK disabled wins", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, recording: false},
		{name: "sampler from the environment", env: map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER": "always_off"}, recording: false},
		{name: "unknown exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "carrier-pigeon"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, name := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_TRACES_SAMPLER"} {
				t.Setenv(name, tt.env[name])
			}
			shutdown, err := Setup(context.Background())
			if tt.wantErr {
				if err == nil {
					t.Fatal("Setup() succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				// Nothing listens at the OTLP endpoints: do not wait for the flush.
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				_ = shutdown(ctx)
			}()
			_, span := otel.Tracer("test").Start(context.Background(), "probe")
			defer span.End()
			if span.IsRecording() != tt.recording {
				t.Errorf("span recording = %v, want %v", span.IsRecording(), tt.recording)
			}
		})
	}
}

// TestSpansCostNothingWhenOff holds the promise that tracing off costs nothing measurable: a
// span then records nothing and allocates only the context that carries it (BenchmarkSpanWhenOff:
// about 200 ns, against milliseconds for the API request of a mirror write). A recording span
// allocates several times and records.
func TestSpansCostNothingWhenOff(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	if _, err := Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	tracer := otel.Tracer("test")
	ctx := context.Background()
	var recording bool
	allocs := testing.AllocsPerRun(1000, func() {
		_, span := tracer.Start(ctx, "Reconcile")
		recording = recording || span.IsRecording()
		span.End()
	})
	if allocs > 1 || recording {
		t.Errorf("with tracing off a span allocates %v times (want at most 1, its context) and records: %v", allocs, recording)
	}
}

func BenchmarkSpanWhenOff(b *testing.B) {
	b.Setenv("OTEL_TRACES_EXPORTER", "")
	if _, err := Setup(context.Background()); err != nil {
		b.Fatal(err)
	}
	tracer := otel.Tracer("bench")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, span := tracer.Start(ctx, "Reconcile")
		span.End()
	}
}
