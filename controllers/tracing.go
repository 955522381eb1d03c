package controllers

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	ctrl "sigs.k8s.io/controller-runtime"
)

// tracerName names whisperer's spans' instrumentation scope.
const tracerName = "github.com/whisperer-operator/whisperer/controllers"

// newTracer makes a span per reconcile and a child span per mirror write, from the global tracer
// provider that internal/telemetry set up. With tracing off (the default) it is the no-op tracer,
// whose spans cost nothing.
func newTracer() trace.Tracer {
	return otel.GetTracerProvider().Tracer(tracerName)
}

// Span attributes, named under whisperer's own namespace except the OpenTelemetry standard one
// for a Kubernetes namespace.
const (
	attrKind            = attribute.Key("whisperer.kind")
	attrSourceNamespace = attribute.Key("whisperer.source.namespace")
	attrSourceName      = attribute.Key("whisperer.source.name")
	attrSourceVersion   = attribute.Key("whisperer.source.resource_version")
	attrTargets         = attribute.Key("whisperer.targets")
	attrScope           = attribute.Key("whisperer.scope")
	attrOutcome         = attribute.Key("whisperer.outcome")
	attrCreated         = attribute.Key("whisperer.mirrors.created")
	attrUpdated         = attribute.Key("whisperer.mirrors.updated")
	attrDeleted         = attribute.Key("whisperer.mirrors.deleted")
	attrConflicts       = attribute.Key("whisperer.mirrors.conflicts")
	attrTargetNamespace = attribute.Key("k8s.namespace.name")
	attrAction          = attribute.Key("whisperer.action")
	attrResult          = attribute.Key("whisperer.result")
)

// withTraceIDs adds the trace and span ids of a recorded span to the logger of ctx, so that the
// log lines of a traced reconcile lead to its trace.
func withTraceIDs(ctx context.Context, span trace.Span) context.Context {
	sc := span.SpanContext()
	if !sc.IsValid() {
		return ctx
	}
	return ctrl.LoggerInto(ctx, ctrl.LoggerFrom(ctx).WithValues("traceID", sc.TraceID().String(), "spanID", sc.SpanID().String()))
}
