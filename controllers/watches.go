package controllers

import (
	"context"
	"maps"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// mirrorEvents maps a mirror event to the source the mirror claims (before and after an update),
// so that an edited or deleted mirror is repaired, after telling the expectations what the cache
// now shows. A deleted mirror also wakes the other sources of its name (competitorsOnDelete).
// One handler for all of it keeps one event buffer, not several, on an informer that may hold
// tens of thousands of mirrors.
func (r *MirrorReconciler) mirrorEvents() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q queue) {
			r.expectations.observe(e.Object, false)
			enqueueClaimedSource(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			r.expectations.observe(e.ObjectNew, false)
			if claimedSource(e.ObjectOld) != claimedSource(e.ObjectNew) {
				r.expectations.observe(e.ObjectOld, true) // it left the claims of that source
			}
			enqueueClaimedSource(e.ObjectOld, q)
			enqueueClaimedSource(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) {
			r.expectations.observe(e.Object, true)
			r.contents.forget(e.Object)
			enqueueClaimedSource(e.Object, q)
			r.enqueueCompetitors(e.Object, q)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q queue) {
			enqueueClaimedSource(e.Object, q)
		},
	}
}

func claimedSource(obj metav1.Object) types.NamespacedName {
	source, _ := mirror.SourceOf(obj)
	return source
}

func enqueueClaimedSource(obj metav1.Object, q queue) {
	if source, ok := mirror.SourceOf(obj); ok {
		q.Add(reconcile.Request{NamespacedName: source})
	}
}

// competitorsOnDelete handles the deletion of a source: other sources of the same name may have
// been blocked by it (a conflict), and get another look at once.
func (r *MirrorReconciler) competitorsOnDelete() handler.EventHandler {
	return handler.Funcs{
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) {
			r.enqueueCompetitors(e.Object, q)
		},
	}
}

// enqueueCompetitors enqueues the sources named like gone, a deleted object, except gone itself.
func (r *MirrorReconciler) enqueueCompetitors(gone client.Object, q queue) {
	named, err := r.sources.named(gone.GetName())
	if err != nil {
		ctrl.Log.Error(err, "Cannot find the sources named like a deleted object", "name", gone.GetName())
		return
	}
	for _, source := range named {
		if key := client.ObjectKeyFromObject(source); key != client.ObjectKeyFromObject(gone) {
			q.Add(reconcile.Request{NamespacedName: key})
		}
	}
}

// namespaceToSources maps a new or relabelled namespace to the sources that ask for it, from
// what was parsed of each source when it last changed; refused sources ask for nothing. It reads
// nothing: a source whose content is not known yet is refused only if its metadata says so. A
// relabelling is mapped twice, before and after (EnqueueRequestsFromMapFunc), so the sources
// that no longer ask for it are reconciled too, and remove their mirrors. A mirror in a
// namespace that its source never asked for reaches the source through the mirror watch.
func (r *MirrorReconciler) namespaceToSources(_ context.Context, obj client.Object) []reconcile.Request {
	namespace := toNamespace(obj)
	var requests []reconcile.Request
	for _, cached := range r.sources.list() {
		if cached.GetNamespace() == namespace.Name {
			continue
		}
		if source, _, refused := r.parsed.get(cached); !refused && source.Targets.Matches(namespace) {
			requests = append(requests, reconcile.Request{NamespacedName: source.Key()})
		}
	}
	return requests
}

// namespaceAppearedOrRelabelled passes the namespace events that can change which sources want
// it: creation and label changes. A deleted namespace takes its mirrors with it, and their
// deletion events reach the sources through the mirror watch.
func namespaceAppearedOrRelabelled() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool {
			return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels())
		},
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// sourceRequest is the event that reconciles source, sent on a channel (see conflicts).
func sourceRequest(source types.NamespacedName) event.GenericEvent {
	return event.GenericEvent{Object: &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: source.Namespace, Name: source.Name}}}
}
