// Package controllers holds whisperer's reconciler: it mirrors source Secrets into the
// namespaces their annotation lists. The decisions are made by internal/mirror; this package
// observes the cluster, writes what the plan says and reports the outcome.
package controllers

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// FieldOwner is the field manager of every write whisperer makes, shown in managedFields.
const FieldOwner = "whisperer"

// DefaultConflictRetryInterval is how often a source whose mirror is blocked by someone else's
// Secret looks again: that Secret is in no cache, so its removal raises no event.
const DefaultConflictRetryInterval = time.Minute

// SecretMirrorReconciler keeps the mirrors of one source Secret at a time equal to it, in the
// namespaces its annotation lists, and removes the mirrors that are no longer wanted.
type SecretMirrorReconciler struct {
	// Client reads sources and namespaces from the manager's label-filtered cache and writes mirrors.
	Client client.Client
	// APIReader reads a Secret that blocks a mirror: such Secrets are in no cache.
	APIReader client.Reader
	// Recorder records Events on sources.
	Recorder recorder.EventRecorder
	// WriteConcurrency bounds the mirror writes of one reconcile that run at once.
	WriteConcurrency int
	// MaxConcurrentReconciles bounds the sources reconciled at once.
	MaxConcurrentReconciles int
	// ConflictRetryInterval is how often a source blocked by a conflict looks again; zero means
	// DefaultConflictRetryInterval.
	ConflictRetryInterval time.Duration
	// ResyncPeriod is how often each source is reconciled without an event, as a safety net for
	// anything the watches missed; zero disables it.
	ResyncPeriod time.Duration
	// Policy is what the administrator allows: source namespaces, excluded target namespaces.
	Policy mirror.Policy

	// mirrors reads mirrors from their own label-filtered cache, indexed by source.
	mirrors mirrorStore
	// namespaces reads the cached namespaces.
	namespaces namespaceStore
	memory     *memory
	tracer     trace.Tracer
}

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile converges the mirrors of the source named by req to what the source asks for now.
// It runs the same way whatever the event was, and for a source that no longer exists.
func (r *SecretMirrorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, err error) {
	ctx, span := r.tracer.Start(ctx, "Reconcile", trace.WithAttributes(
		attrSourceNamespace.String(req.Namespace), attrSourceName.String(req.Name)))
	defer func() { endSpan(span, err) }()
	ctx = withTraceIDs(ctx, span)

	state, err := r.observe(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	actions, wanted := mirror.Plan(state)
	outcome := r.write(ctx, state, actions)
	r.awaitCache(ctx, state, wanted, outcome.written)
	r.report(ctx, state, len(wanted), outcome)
	span.SetAttributes(attrTargets.Int(len(wanted)), attrOutcome.String(outcome.summary(state)),
		attrCreated.Int(outcome.created), attrUpdated.Int(outcome.updated), attrDeleted.Int(outcome.deleted),
		attrConflicts.Int(len(outcome.conflicts)))
	if err := outcome.err(); err != nil {
		return ctrl.Result{}, fmt.Errorf("writing mirrors of %s: %w", req.NamespacedName, err)
	}
	switch {
	case len(outcome.conflicts) > 0:
		return ctrl.Result{RequeueAfter: jitter(cmp.Or(r.ConflictRetryInterval, DefaultConflictRetryInterval))}, nil
	case state.Secret != nil && r.ResyncPeriod > 0:
		return ctrl.Result{RequeueAfter: jitter(r.ResyncPeriod)}, nil
	}
	return ctrl.Result{}, nil
}

// observe reads, from the caches, everything planning needs for one source.
func (r *SecretMirrorReconciler) observe(ctx context.Context, key types.NamespacedName) (mirror.State, error) {
	state := mirror.State{Source: key, Policy: r.Policy}
	source := &corev1.Secret{}
	switch err := r.Client.Get(ctx, key, source); {
	case apierrors.IsNotFound(err):
		// Deleted, or no longer labelled for sync: it leaves the source cache either way.
	case err != nil:
		return state, fmt.Errorf("reading source: %w", err)
	case mirror.IsSource(source):
		state.Secret = source
		state.Targets = mirror.TargetsOf(source)
		state.Refusal = r.Policy.Refusal(source)
	}
	state.Namespaces = r.namespaces.list()
	var err error
	state.Mirrors, err = r.mirrors.ofSource(key)
	return state, err
}

func toNamespace(ns client.Object) mirror.Namespace {
	return mirror.Namespace{Name: ns.GetName(), Labels: ns.GetLabels(), Terminating: ns.GetDeletionTimestamp() != nil}
}

// endSpan records err, if any, on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// jitter spreads the requeues of many sources over time, between d and 1.5 d.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/2)
}
