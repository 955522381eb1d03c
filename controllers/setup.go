package controllers

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

const (
	// mirrorSourceIndex indexes cached mirrors by the "namespace/name" of the source they claim,
	// so that finding the mirrors of a source is a lookup, not a scan of every mirror.
	mirrorSourceIndex = "whisperer.mirrorSource"
	// sourceNameIndex indexes cached sources by name, to find the sources that compete for the
	// name of a Secret that went away.
	sourceNameIndex = "whisperer.sourceName"
)

// CacheOptions configures the manager's cache: Secrets only when they are sources (never every
// Secret in the cluster), and no managedFields, which whisperer never reads.
func CacheOptions() cache.Options {
	return cache.Options{
		// A read of a type with no informer fails instead of starting a cluster-wide one.
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:    {Label: mirror.SourceSelector(), Transform: withoutLastApplied},
			&corev1.Namespace{}: {Transform: slimNamespace},
		},
	}
}

// The cache transforms keep only what whisperer reads, so that its memory follows the number of
// sources, mirrors and namespaces, not their size.

var stripManagedFields = cache.TransformStripManagedFields()

// withoutLastApplied drops kubectl's copy of a source, which holds its data a second time.
func withoutLastApplied(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if o, ok := obj.(client.Object); ok && o.GetAnnotations()[corev1.LastAppliedConfigAnnotation] != "" {
		annotations := maps.Clone(o.GetAnnotations())
		delete(annotations, corev1.LastAppliedConfigAnnotation)
		o.SetAnnotations(annotations)
	}
	return obj, err
}

// slimNamespace keeps of a namespace its name, labels and deletion timestamp (see mirror.SlimNamespace).
func slimNamespace(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if o, ok := obj.(client.Object); ok {
		mirror.SlimNamespace(o)
	}
	return obj, err
}

// withDataDigest replaces a mirror's data by its digest (see mirror.DigestData).
func withDataDigest(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if s, ok := obj.(*corev1.Secret); ok {
		mirror.DigestData(s)
	}
	return obj, err
}

// SetupWithManager registers the reconciler and its watches: sources (manager cache), mirrors
// (a second cache, filtered by the mirror label) and namespaces (metadata only).
func (r *SecretMirrorReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	mirrorCache, err := newMirrorCache(ctx, mgr)
	if err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Secret{}, sourceNameIndex, indexByName); err != nil {
		return fmt.Errorf("indexing sources: %w", err)
	}
	if r.mirrors, err = newMirrorStore(ctx, mirrorCache); err != nil {
		return err
	}
	if r.namespaces, err = newNamespaceStore(ctx, mgr.GetCache()); err != nil {
		return err
	}
	r.memory = newMemory()
	r.tracer = newTracer()
	if err := registerStateMetrics(r.memory); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("secretmirror").
		For(&corev1.Secret{}).
		Watches(&corev1.Secret{}, r.competitorsOnDelete()).
		WatchesRawSource(source.Kind(mirrorCache, client.Object(&corev1.Secret{}), r.mirrorEvents())).
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.namespaceToSources),
			builder.WithPredicates(namespaceAppearedOrRelabelled())).
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
			&corev1.Secret{}: {Label: mirror.MirrorSelector(), Transform: withDataDigest},
		},
		NewInformer: newMirrorInformer,
	})
	if err != nil {
		return nil, fmt.Errorf("creating mirror cache: %w", err)
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

func indexByName(obj client.Object) []string {
	return []string{obj.GetName()}
}
