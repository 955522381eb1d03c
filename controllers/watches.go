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

// sourceEvents reconciles a source whose object changed, over every namespace, and, when it is
// deleted, the other sources of its name: they may have been blocked by its mirrors.
func (r *MirrorReconciler) sourceEvents() handler.EventHandler {
	all := func(obj metav1.Object, q queue) {
		key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
		r.scopes.all(key)
		q.Add(reconcile.Request{NamespacedName: key})
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q queue) { all(e.Object, q) },
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) { all(e.ObjectNew, q) },
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) {
			all(e.Object, q)
			r.enqueueCompetitors(e.Object, q)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q queue) { all(e.Object, q) },
	}
}

// mirrorEvents maps a mirror event to the source the mirror claims (before and after an update),
// in the mirror's namespace, so that an edited or deleted mirror is repaired, after telling the
// expectations what the cache now shows. An event that only shows a write as whisperer made it
// reconciles nothing. A deleted mirror also wakes the other sources of its name. One handler for
// all of it keeps one event buffer, not several, on an informer that may hold tens of thousands
// of mirrors.
func (r *MirrorReconciler) mirrorEvents() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q queue) {
			r.mirrorChanged(e.Object, false, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			if claimedSource(e.ObjectOld) != claimedSource(e.ObjectNew) {
				r.mirrorChanged(e.ObjectOld, true, q) // it left the claims of that source
			}
			r.mirrorChanged(e.ObjectNew, false, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) {
			r.mirrorChanged(e.Object, true, q)
			r.contents.forget(e.Object)
			r.enqueueCompetitors(e.Object, q)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q queue) {
			r.mirrorChanged(e.Object, false, q)
		},
	}
}

// mirrorChanged reconciles, in obj's namespace, the source obj claims, unless obj is as
// whisperer wrote it: a write it expected, which it made.
func (r *MirrorReconciler) mirrorChanged(obj metav1.Object, gone bool, q queue) {
	source, ok := mirror.SourceOf(obj)
	if !ok {
		return
	}
	satisfied, release := r.expectations.observe(obj, gone)
	_, written := r.contents.of(obj)
	if release {
		q.Add(reconcile.Request{NamespacedName: source})
	}
	if satisfied && (gone || written) {
		return
	}
	r.scopes.add(source, obj.GetNamespace())
	q.Add(reconcile.Request{NamespacedName: source})
}

func claimedSource(obj metav1.Object) types.NamespacedName {
	source, _ := mirror.SourceOf(obj)
	return source
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
			r.scopes.all(key)
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
			r.scopes.add(source.Key(), namespace.Name)
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
