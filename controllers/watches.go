package controllers

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// mirrorEvents maps a mirror event to the source the mirror claims (before and after an update),
// so that an edited or deleted mirror is repaired. A deleted mirror also wakes the other sources
// of its name (see competitorsOnDelete). One handler for both keeps one event buffer, not two, on
// an informer that may hold tens of thousands of mirrors.
func (r *SecretMirrorReconciler) mirrorEvents() handler.EventHandler {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueueClaimedSource(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueueClaimedSource(e.ObjectOld, q)
			enqueueClaimedSource(e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueueClaimedSource(e.Object, q)
			r.enqueueCompetitors(ctx, e.Object, q)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			enqueueClaimedSource(e.Object, q)
		},
	}
}

func enqueueClaimedSource(obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	if source, ok := mirror.SourceOf(obj.(*corev1.Secret)); ok {
		q.Add(reconcile.Request{NamespacedName: source})
	}
}

// competitorsOnDelete handles the deletion of a source: other sources of the same name may have
// been blocked by it (a conflict), and get another look at once instead of at their next retry.
func (r *SecretMirrorReconciler) competitorsOnDelete() handler.EventHandler {
	return handler.Funcs{
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.enqueueCompetitors(ctx, e.Object, q)
		},
	}
}

// enqueueCompetitors enqueues the sources named like gone, a deleted Secret, except gone itself.
func (r *SecretMirrorReconciler) enqueueCompetitors(ctx context.Context, gone client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	for _, req := range r.sourcesNamed(ctx, gone.GetName()) {
		if req.NamespacedName != client.ObjectKeyFromObject(gone) {
			q.Add(req)
		}
	}
}

func (r *SecretMirrorReconciler) sourcesNamed(ctx context.Context, name string) []reconcile.Request {
	sources := &corev1.SecretList{}
	if err := r.Client.List(ctx, sources, client.MatchingFields{sourceNameIndex: name}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Cannot list sources by name", "name", name)
		return nil
	}
	requests := make([]reconcile.Request, 0, len(sources.Items))
	for i := range sources.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sources.Items[i])})
	}
	return requests
}

// namespaceToSources maps a new or relabelled namespace to the sources that ask for it. A
// relabelling is mapped twice, before and after (EnqueueRequestsFromMapFunc), so the sources that
// no longer ask for it are reconciled too, and remove their mirrors. A mirror in a namespace that
// its source never asked for reaches the source through the mirror watch.
func (r *SecretMirrorReconciler) namespaceToSources(ctx context.Context, obj client.Object) []reconcile.Request {
	namespace := toNamespace(obj)
	sources := &corev1.SecretList{}
	if err := r.Client.List(ctx, sources, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Cannot list sources for a namespace", "namespace", namespace.Name)
		return nil
	}
	var requests []reconcile.Request
	for i := range sources.Items {
		source := &sources.Items[i]
		if source.Namespace != namespace.Name && mirror.TargetsOf(source).Matches(namespace) {
			requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(source)})
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
