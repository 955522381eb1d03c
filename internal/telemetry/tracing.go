// Package telemetry sets up OpenTelemetry tracing from the standard OTEL_* environment variables,
// through the contrib autoexport package: OTEL_TRACES_EXPORTER (otlp, console, none),
// OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL (http/protobuf, grpc),
// OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and OTEL_SDK_DISABLED.
//
// Tracing is off unless OTEL_TRACES_EXPORTER names an exporter: whisperer then runs with the
// no-op tracer provider, whose spans cost a few nanoseconds and allocate nothing.
package telemetry

import (
	"context"
	"os"
	"strconv"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace/noop"
)

// ServiceName is the service.name of whisperer's spans unless OTEL_SERVICE_NAME says otherwise.
const ServiceName = "whisperer"

// Setup installs the global tracer provider that the environment asks for and returns the
// function that flushes and stops it, to call before the process exits.
func Setup(ctx context.Context) (shutdown func(context.Context) error, err error) {
	off := func(context.Context) error { return nil }
	if sdkDisabled() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		return off, nil
	}
	// Unlike autoexport's own default (otlp), an unset OTEL_TRACES_EXPORTER means no tracing:
	// whisperer must not try to reach a collector nobody configured.
	exporter, err := autoexport.NewSpanExporter(ctx, autoexport.WithFallbackSpanExporter(
		func(context.Context) (sdktrace.SpanExporter, error) { return noneExporter{}, nil }))
	if err != nil {
		return off, err
	}
	if _, none := exporter.(noneExporter); none || autoexport.IsNoneSpanExporter(exporter) {
		otel.SetTracerProvider(noop.NewTracerProvider())
		return off, nil
	}
	// Defaults first: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (WithFromEnv) override them.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return off, err
	}
	// The sampler comes from OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, read by the SDK.
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(provider)
	return provider.Shutdown, nil
}

// sdkDisabled reads OTEL_SDK_DISABLED, which the Go SDK does not implement.
func sdkDisabled() bool {
	disabled, _ := strconv.ParseBool(os.Getenv("OTEL_SDK_DISABLED"))
	return disabled
}

// noneExporter stands for "no exporter configured".
type noneExporter struct{ sdktrace.SpanExporter }
