package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// mirrorSourceIndex indexes cached mirrors by the "namespace/name" of the source they claim, so
// that finding the mirrors of a source is a lookup, not a scan of every mirror.
const mirrorSourceIndex = "whisperer.mirrorSource"

// CacheOptions configures the manager's cache: Secrets only when they are sources (never every
// Secret in the cluster), and no managedFields, which whisperer never reads.
func CacheOptions() cache.Options {
	return cache.Options{
		// A read of a type with no informer fails instead of starting a cluster-wide one.
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: mirror.SourceSelector()},
		},
	}
}

// SetupWithManager registers the reconciler and its watches: sources (manager cache), mirrors
// (a second cache, filtered by the mirror label) and namespaces (metadata only).
func (r *SecretMirrorReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	mirrorCache, err := newMirrorCache(ctx, mgr)
	if err != nil {
		return err
	}
	r.mirrors = mirrorCache
	r.notes = newWarningNotes()
	return ctrl.NewControllerManagedBy(mgr).
		Named("secretmirror").
		For(&corev1.Secret{}).
		WatchesRawSource(source.Kind(mirrorCache, client.Object(&corev1.Secret{}),
			handler.EnqueueRequestsFromMapFunc(mirrorToSource))).
		WatchesMetadata(&corev1.Namespace{},
			handler.EnqueueRequestsFromMapFunc(r.namespaceToSources),
			builder.WithPredicates(namespaceAppeared())).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Complete(r)
}

func newMirrorCache(ctx context.Context, mgr ctrl.Manager) (cache.Cache, error) {
	mirrorCache, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient:                  mgr.GetHTTPClient(),
		Scheme:                      mgr.GetScheme(),
		Mapper:                      mgr.GetRESTMapper(),
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {Label: mirror.MirrorSelector()},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating mirror cache: %w", err)
	}
	if err := mirrorCache.IndexField(ctx, &corev1.Secret{}, mirrorSourceIndex, indexBySource); err != nil {
		return nil, fmt.Errorf("indexing mirrors: %w", err)
	}
	if err := mgr.Add(startedWithCaches{mirrorCache}); err != nil {
		return nil, fmt.Errorf("adding mirror cache: %w", err)
	}
	return mirrorCache, nil
}

// startedWithCaches makes the manager start a cache with its own, before leader election, so a
// standby replica is warm when it takes over.
type startedWithCaches struct{ cache.Cache }

func (c startedWithCaches) GetCache() cache.Cache { return c.Cache }

func indexBySource(obj client.Object) []string {
	if source, ok := mirror.SourceOf(obj.(*corev1.Secret)); ok {
		return []string{source.String()}
	}
	return nil
}

// mirrorToSource maps a mirror event to the source the mirror claims, so that an edited or
// deleted mirror is repaired.
func mirrorToSource(_ context.Context, obj client.Object) []reconcile.Request {
	if source, ok := mirror.SourceOf(obj.(*corev1.Secret)); ok {
		return []reconcile.Request{{NamespacedName: source}}
	}
	return nil
}

// namespaceToSources maps a new namespace to the sources that ask for it.
func (r *SecretMirrorReconciler) namespaceToSources(ctx context.Context, ns client.Object) []reconcile.Request {
	sources := &corev1.SecretList{}
	if err := r.Client.List(ctx, sources, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Cannot list sources for a new namespace", "namespace", ns.GetName())
		return nil
	}
	var requests []reconcile.Request
	for i := range sources.Items {
		src := &sources.Items[i]
		if src.Namespace != ns.GetName() && mirror.ParseTargets(src.Annotations[mirror.AnnotationNamespaces]).Matches(ns.GetName()) {
			requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(src)})
		}
	}
	return requests
}

// namespaceAppeared passes namespace creations only: a deleted namespace takes its mirrors with
// it, and their deletion events reach the sources through the mirror watch.
func namespaceAppeared() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return true },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return false },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}
