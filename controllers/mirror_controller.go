// Package controllers holds whisperer's reconciler: it mirrors source objects into the namespaces
// their annotations ask for. The decisions are made by internal/mirror; this package observes the
// cluster through its caches, writes what the plan says and records the outcome.
package controllers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// MirrorReconciler keeps the mirrors of each source of one Kind equal to it, in the namespaces
// its annotations ask for and the policy allows, and removes the mirrors no longer wanted.
type MirrorReconciler struct {
	// Kind is what it mirrors.
	Kind Kind
	// Client reads sources from the manager's cache and writes mirrors and Events.
	Client client.Client
	// APIReader reads what no cache holds: a source's data, the object that blocks a mirror, an
	// Event recorded before a restart.
	APIReader client.Reader
	// WriteConcurrency bounds the mirror writes of one reconcile that run at once.
	WriteConcurrency int
	// MaxConcurrentReconciles bounds the sources reconciled at once.
	MaxConcurrentReconciles int
	// ConflictRetryInterval is how often a source blocked by a conflict looks again, besides the
	// watch of the object that blocks it; zero means only the watch.
	ConflictRetryInterval time.Duration
	// ResyncPeriod is how often each source is reconciled without an event, as a safety net for
	// anything the watches missed; zero disables it.
	ResyncPeriod time.Duration
	// Policy is what the administrator allows.
	Policy mirror.Policy
	// AttachServiceAccounts attaches mirrored pull secrets to the ServiceAccounts their source
	// names (mirror.AnnotationServiceAccounts). Only for Secrets.
	AttachServiceAccounts bool
	// LeaderCurrent, when set, reports whether this replica renewed its leader election Lease
	// recently enough that no other can lead: the reconciler writes nothing otherwise.
	LeaderCurrent func() bool

	sources         sourceStore
	serviceAccounts *serviceAccountStore
	fights          *fights
	mirrors         mirrorStore
	namespaces      namespaceStore
	parsed          *parsedSources
	contents        *contents
	scopes          *scopes
	expectations    *expectations
	conflicts       *conflicts
	events          *eventRecorder
	stats           *stats
	tracer          trace.Tracer
}

// Reconcile converges the mirrors of the source named by req to what the source asks for now.
// It runs the same way whatever the event was, and for a source that no longer exists.
func (r *MirrorReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, err error) {
	ctx, span := r.tracer.Start(ctx, "Reconcile", trace.WithAttributes(attrKind.String(string(r.Kind.kind())),
		attrSourceNamespace.String(req.Namespace), attrSourceName.String(req.Name)))
	defer span.End()
	defer func() { recordError(span, err) }()
	ctx = withTraceIDs(ctx, span)

	key := req.NamespacedName
	if wait := r.expectations.wait(key); wait > 0 {
		// The cache does not show the last reconcile's writes yet; the events that show them
		// reconcile the source again.
		span.SetAttributes(attrOutcome.String("awaiting-cache"))
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	scope := r.scopes.take(key)
	if r.Policy.MaxTargetsPerSource > 0 {
		scope = nil // counting the source's targets takes every namespace
	}
	span.SetAttributes(attrScope.Int(scopeSize(scope)))
	seen, err := r.observe(ctx, key, scope)
	if err != nil {
		return ctrl.Result{}, err
	}
	state := seen.state
	if state.Source != nil {
		// Which version of the source this reconcile acted on.
		span.SetAttributes(attrSourceVersion.String(state.Source.Object.GetResourceVersion()))
	}
	plan := mirror.Plan(state)
	o := r.write(ctx, seen, plan)
	if !o.skipped {
		// A reconcile that skipped its writes learned nothing of the conflicts: forgetting
		// them would make the next one create before it reads, where the name is known taken.
		r.conflicts.set(key, scope, o.conflicts, o.failedIn)
	}
	switch {
	case state.Source == nil && scope == nil:
		r.forget(key)
	case scope == nil:
		r.stats.set(key, statsOf(plan, o))
	}
	r.record(ctx, state, plan, o)
	span.SetAttributes(attrTargets.Int(plan.Wanted), attrOutcome.String(o.summary(plan)),
		attrCreated.Int(o.created), attrUpdated.Int(o.updated), attrDeleted.Int(o.deleted),
		attrConflicts.Int(len(o.conflicts)))
	if err := o.err(); err != nil {
		return ctrl.Result{}, fmt.Errorf("writing mirrors of %s: %w", key, err)
	}
	return r.requeue(state, scope, plan, o), nil
}

// scopeSize is how many namespaces a reconcile looks at: -1 for all of them.
func scopeSize(scope sets.Set[string]) int {
	if scope == nil {
		return -1
	}
	return scope.Len()
}

// observation is what a reconcile knows of its source.
type observation struct {
	state mirror.State
	// live is the source as read with its data, when observing it had to read it.
	live client.Object
}

// observe reads everything planning needs for one source, in the namespaces of scope (nil: all):
// from the caches, and what they do not hold, the content of the source and of its mirrors, when
// it is not known yet.
func (r *MirrorReconciler) observe(ctx context.Context, key types.NamespacedName, scope sets.Set[string]) (observation, error) {
	seen := observation{state: mirror.State{Kind: r.Kind.kind(), Key: key, Policy: r.Policy, ContentOf: r.contents.of}}
	if r.serviceAccounts != nil {
		seen.state.ServiceAccountsIn = r.serviceAccounts.in
	}
	cached := metadataObject(r.Kind)
	switch err := r.Client.Get(ctx, key, cached); {
	case apierrors.IsNotFound(err):
		// Deleted, or no longer labelled for sync: it leaves the source cache either way.
	case err != nil:
		return seen, fmt.Errorf("reading source: %w", err)
	case mirror.IsSource(cached):
		source, contentKnown, _ := r.parsed.get(cached)
		if !contentKnown {
			if seen.live, err = r.readSource(ctx, key); err != nil || seen.live == nil {
				break
			}
			source = r.parsed.learn(seen.live)
		}
		seen.state.Source = source
	}
	if scope != nil {
		seen.state.Namespaces = r.namespaces.in(scope)
		seen.state.Mirrors = r.mirrors.in(key, scope)
		return seen, r.learnMirrors(ctx, seen.state)
	}
	seen.state.Namespaces = r.namespaces.list()
	var err error
	if seen.state.Mirrors, err = r.mirrors.ofSource(key); err != nil {
		return seen, err
	}
	return seen, r.learnMirrors(ctx, seen.state)
}

// readSource reads a source with its data. It returns nil when there is no such source any
// more: the cache has yet to see it go.
func (r *MirrorReconciler) readSource(ctx context.Context, key types.NamespacedName) (client.Object, error) {
	live := r.Kind.newObject()
	switch err := r.APIReader.Get(ctx, key, live); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the source: %w", err)
	case !mirror.IsSource(live):
		return nil, nil
	}
	return live, nil
}

// fullAfterScoped is how soon after a reconcile of some namespaces a source gets one of all of
// them, which counts its namespaces by state for the gauges. During a burst of new namespaces, it
// comes once per burst, not once per namespace.
const fullAfterScoped = 30 * time.Second

// requeue says when to look at a source again without an event: soon when it changed while its
// writes were planned or a mirror's content could not be read, when its fight over a
// ServiceAccount ends, at the conflict retry interval while it is blocked, and at the resync
// period otherwise; after a reconcile of some namespaces, within fullAfterScoped at the latest.
// The look a scoped reconcile asks for replaces the one asked for before (the queue holds one
// entry per source), so it must come no later than that one would have.
func (r *MirrorReconciler) requeue(state mirror.State, scope sets.Set[string], plan mirror.Result, o *outcome) ctrl.Result {
	if o.stale || plan.Unknown > 0 {
		return ctrl.Result{RequeueAfter: time.Second}
	}
	var after time.Duration
	switch {
	case len(o.contested) > 0:
		after = time.Until(o.contestedUntil)
	case r.conflicts.count(state.Key) > 0 && r.ConflictRetryInterval > 0:
		after = jitter(r.ConflictRetryInterval)
	case state.Source != nil && r.ResyncPeriod > 0:
		after = jitter(r.ResyncPeriod)
	}
	if scope != nil && state.Source != nil && (after == 0 || after > fullAfterScoped) {
		after = fullAfterScoped
	}
	return ctrl.Result{RequeueAfter: after}
}

// forget drops what is kept of a source that is gone.
func (r *MirrorReconciler) forget(key types.NamespacedName) {
	r.parsed.forget(key)
	r.stats.forget(key)
	r.events.forget(key)
	r.fights.forget(key)
}

// statsOf counts a source's namespaces by state for the gauges.
func statsOf(plan mirror.Result, o *outcome) sourceStats {
	return sourceStats{
		refusedSource: plan.Refusal != "",
		wanted:        plan.Wanted,
		refused:       plan.NotAllowed,
		failed:        o.failed,
	}
}

// record logs what a reconcile changed and records it as Events on the source: a Normal Event
// when mirrors were written, a Warning when a refusal, an invalid entry or a conflict starts or
// changes. A reconcile that changes nothing records nothing.
func (r *MirrorReconciler) record(ctx context.Context, state mirror.State, plan mirror.Result, o *outcome) {
	if o.changed() {
		ctrl.LoggerFrom(ctx).Info("Mirrors changed", "created", o.created, "updated", o.updated, "deleted", o.deleted,
			"attached", o.attached, "detached", o.detached)
	}
	if state.Source == nil {
		return
	}
	source := state.Source.Object
	if o.changed() {
		r.events.mirrored(ctx, source, o)
	}
	r.events.warn(ctx, source, ReasonRefused, plan.Refusal)
	r.events.warn(ctx, source, ReasonInvalidNamespaces, describeInvalid(plan.Invalid))
	r.events.warn(ctx, source, ReasonConflict, describeConflicts(state.Kind, r.conflicts.in(state.Key), state.Key.Name))
	r.events.warn(ctx, source, ReasonInvalidServiceAccounts, plan.InvalidServiceAccounts)
	r.events.warn(ctx, source, ReasonServiceAccountContested, describeContested(o.contested, state.Key.Name))
	r.events.warn(ctx, source, ReasonDeniedMetadata, describeDenied(plan.Copied.Denied))
	r.events.warn(ctx, source, ReasonInvalidMetadata, describeInvalidMetadata(plan.Copied.Invalid))
}

// recordError records err, if any, on span.
func recordError(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// jitter spreads the requeues of many sources over time, between d and 1.5 d.
func jitter(d time.Duration) time.Duration {
	return d + rand.N(d/2) //nolint:gosec // G404: spreads requeues over time; nobody gains by guessing it
}
