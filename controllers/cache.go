package controllers

// Caching, in one place.
//
// whisperer reads sources, mirrors and namespaces from informer caches, so that a reconcile costs
// no API request unless it writes, and a resync of a converged cluster costs none at all. A cache
// trades memory for API load; these choices keep the memory in proportion to the number of
// sources, mirrors and namespaces, and never to their size or to the cluster's other objects:
//
//   - Only labelled objects are cached: sources (mirror.SourceSelector) in the manager's cache,
//     mirrors (mirror.MirrorSelector) in a second cache of their own, since controller-runtime
//     allows one selector per type and cache. An informer on every Secret of the cluster would
//     hold every service account token and every Helm release.
//   - Metadata only: the caches watch sources and mirrors as PartialObjectMetadata, so neither
//     their data nor the decoding of it ever reaches whisperer through a watch, not even a
//     tenant's 1 MiB Secrets, refused or not. What planning compares of their content, a digest
//     of their data, is kept apart (contents), by resourceVersion: whisperer learns it from what
//     it writes, and reads an object (a source with one GET, a source's mirrors with one paged
//     LIST) only when its resourceVersion is one it has not seen, that is after someone else
//     changed it, or after a restart.
//   - No managedFields, and no kubectl last-applied annotation on sources (it holds their data).
//   - Namespaces as metadata too, without annotations, and without the kubernetes.io/metadata.name
//     label, which mirror.Namespace.LabelSet puts back.
//
// Reconciles read the informers' stores directly (mirrorStore, namespaceStore, sourceStore) rather
// than through the cache's List, which would copy every namespace and mirror of a
// 10,000-namespace cluster into a new slice for each reconcile. The stores' objects are shared
// with the cache: read them, never modify them.

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

const (
	// mirrorSourceIndex indexes cached mirrors by the "namespace/name" of the source they claim,
	// so that finding the mirrors of a source is a lookup, not a scan of every mirror.
	mirrorSourceIndex = "whisperer.mirrorSource"
	// sourceNameIndex indexes cached sources by name, to find the sources that compete for the
	// name of an object that went away.
	sourceNameIndex = "whisperer.sourceName"
)

// CacheOptions configures the manager's cache for the kinds whisperer mirrors: their sources,
// namespaces and, when whisperer attaches pull secrets, ServiceAccounts. ReaderFailOnMissingInformer
// makes a read of any other type fail rather than start a cluster-wide informer.
func CacheOptions(attachServiceAccounts bool, kinds ...Kind) cache.Options {
	byObject := map[client.Object]cache.ByObject{
		&corev1.Namespace{}: {Transform: slimNamespace},
	}
	if attachServiceAccounts {
		byObject[&corev1.ServiceAccount{}] = cache.ByObject{Transform: slimServiceAccount}
	}
	for _, k := range kinds {
		byObject[k.newObject()] = cache.ByObject{Label: mirror.SourceSelector(), Transform: slimSource}
	}
	return cache.Options{
		ReaderFailOnMissingInformer: true,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ByObject:                    byObject,
	}
}

// newMirrorCache makes the cache of the mirrors of k, started by the manager with its own cache.
func newMirrorCache(mgr ctrl.Manager, k Kind) (cache.Cache, error) {
	mirrors, err := cache.New(mgr.GetConfig(), cache.Options{
		HTTPClient:                  mgr.GetHTTPClient(),
		Scheme:                      mgr.GetScheme(),
		Mapper:                      mgr.GetRESTMapper(),
		ReaderFailOnMissingInformer: true,
		ByObject: map[client.Object]cache.ByObject{
			k.newObject(): {Label: mirror.MirrorSelector(), Transform: stripManagedFields},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the %s mirror cache: %w", k.kind(), err)
	}
	if err := mgr.Add(startedWithCaches{mirrors}); err != nil {
		return nil, fmt.Errorf("adding the %s mirror cache: %w", k.kind(), err)
	}
	return mirrors, nil
}

// startedWithCaches makes the manager start a cache with its own, before leader election, so that
// a standby replica is warm when it takes over.
type startedWithCaches struct{ cache.Cache }

func (c startedWithCaches) GetCache() cache.Cache { return c.Cache }

var stripManagedFields = cache.TransformStripManagedFields()

// slimSource is the source cache's transform: no managedFields, no kubectl copy of the data.
func slimSource(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if o, ok := obj.(client.Object); ok {
		if annotations := o.GetAnnotations(); annotations[corev1.LastAppliedConfigAnnotation] != "" {
			annotations = maps.Clone(annotations)
			delete(annotations, corev1.LastAppliedConfigAnnotation)
			o.SetAnnotations(annotations)
		}
	}
	return obj, err
}

// slimNamespace keeps of a namespace its name, labels and deletion timestamp: the namespace
// cache holds every namespace of the cluster.
func slimNamespace(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if ns, ok := obj.(client.Object); ok {
		ns.SetAnnotations(nil)
		if l := ns.GetLabels(); l[corev1.LabelMetadataName] == ns.GetName() {
			l = maps.Clone(l)
			delete(l, corev1.LabelMetadataName)
			if len(l) == 0 {
				l = nil
			}
			ns.SetLabels(l)
		}
	}
	return obj, err
}

// mirrorStore reads the cached mirrors of one kind, indexed by the source they claim.
type mirrorStore struct{ indexer toolscache.Indexer }

// newMirrorStore indexes the mirror cache's informer by source. controller-runtime's own
// indexes (by namespace) stay, so that the cache's List(InNamespace) keeps working.
func newMirrorStore(ctx context.Context, mirrors cache.Cache, k Kind) (mirrorStore, error) {
	informer, err := sharedInformer(ctx, mirrors, metadataObject(k))
	if err != nil {
		return mirrorStore{}, err
	}
	if err := informer.AddIndexers(toolscache.Indexers{mirrorSourceIndex: indexBySource}); err != nil {
		return mirrorStore{}, fmt.Errorf("indexing %s mirrors by source: %w", k.kind(), err)
	}
	return mirrorStore{indexer: informer.GetIndexer()}, nil
}

// indexBySource keys a cached mirror by the "namespace/name" of the source it claims.
func indexBySource(obj any) ([]string, error) {
	if o, ok := obj.(metav1.Object); ok {
		if source, ok := mirror.SourceOf(o); ok {
			return []string{source.String()}, nil
		}
	}
	return nil, nil
}

// ofSource returns the cached objects that claim source.
func (s mirrorStore) ofSource(source types.NamespacedName) ([]metav1.Object, error) {
	objects, err := s.indexer.ByIndex(mirrorSourceIndex, source.String())
	if err != nil {
		return nil, fmt.Errorf("reading cached mirrors: %w", err)
	}
	mirrors := make([]metav1.Object, 0, len(objects))
	for _, obj := range objects {
		if o, ok := obj.(metav1.Object); ok {
			mirrors = append(mirrors, o)
		}
	}
	return mirrors, nil
}

// sourceStore reads the cached sources of one kind, indexed by name.
type sourceStore struct{ indexer toolscache.Indexer }

func newSourceStore(ctx context.Context, c cache.Cache, k Kind) (sourceStore, error) {
	informer, err := sharedInformer(ctx, c, metadataObject(k))
	if err != nil {
		return sourceStore{}, err
	}
	if err := informer.AddIndexers(toolscache.Indexers{sourceNameIndex: indexByName}); err != nil {
		return sourceStore{}, fmt.Errorf("indexing %s sources by name: %w", k.kind(), err)
	}
	return sourceStore{indexer: informer.GetIndexer()}, nil
}

func indexByName(obj any) ([]string, error) {
	if o, ok := obj.(metav1.Object); ok {
		return []string{o.GetName()}, nil
	}
	return nil, nil
}

// list returns every cached source.
func (s sourceStore) list() []client.Object {
	return objects(s.indexer.List())
}

// named returns the cached sources named name.
func (s sourceStore) named(name string) ([]client.Object, error) {
	found, err := s.indexer.ByIndex(sourceNameIndex, name)
	if err != nil {
		return nil, fmt.Errorf("reading cached sources: %w", err)
	}
	return objects(found), nil
}

func objects(items []any) []client.Object {
	out := make([]client.Object, 0, len(items))
	for _, item := range items {
		if o, ok := item.(client.Object); ok {
			out = append(out, o)
		}
	}
	return out
}

// in returns the cached mirrors of source in the namespaces of scope.
func (s mirrorStore) in(source types.NamespacedName, scope sets.Set[string]) []metav1.Object {
	var mirrors []metav1.Object
	for namespace := range scope {
		obj, exists, err := s.indexer.GetByKey(namespace + "/" + source.Name)
		if o, ok := obj.(metav1.Object); ok && exists && err == nil {
			if claimed, ok := mirror.SourceOf(o); ok && claimed == source {
				mirrors = append(mirrors, o)
			}
		}
	}
	return mirrors
}

// namespaceStore reads the cached namespaces (metadata only).
type namespaceStore struct{ indexer toolscache.Indexer }

func newNamespaceStore(ctx context.Context, c cache.Cache) (namespaceStore, error) {
	namespace := &metav1.PartialObjectMetadata{}
	namespace.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	informer, err := sharedInformer(ctx, c, namespace)
	if err != nil {
		return namespaceStore{}, err
	}
	return namespaceStore{indexer: informer.GetIndexer()}, nil
}

// list returns every cached namespace.
func (s namespaceStore) list() []mirror.Namespace {
	objects := s.indexer.List()
	namespaces := make([]mirror.Namespace, 0, len(objects))
	for _, obj := range objects {
		if ns, ok := obj.(client.Object); ok {
			namespaces = append(namespaces, toNamespace(ns))
		}
	}
	return namespaces
}

// in returns the cached namespaces of scope that exist.
func (s namespaceStore) in(scope sets.Set[string]) []mirror.Namespace {
	namespaces := make([]mirror.Namespace, 0, scope.Len())
	for name := range scope {
		obj, exists, err := s.indexer.GetByKey(name)
		if ns, ok := obj.(client.Object); ok && exists && err == nil {
			namespaces = append(namespaces, toNamespace(ns))
		}
	}
	return namespaces
}

func toNamespace(ns client.Object) mirror.Namespace {
	return mirror.Namespace{Name: ns.GetName(), Labels: ns.GetLabels(), Terminating: ns.GetDeletionTimestamp() != nil}
}

// sharedInformer returns c's informer for obj's kind, creating it if needed (it starts with c).
func sharedInformer(ctx context.Context, c cache.Cache, obj client.Object) (toolscache.SharedIndexInformer, error) {
	informer, err := c.GetInformer(ctx, obj)
	if err != nil {
		return nil, fmt.Errorf("getting the informer for %T: %w", obj, err)
	}
	shared, ok := informer.(toolscache.SharedIndexInformer)
	if !ok {
		return nil, fmt.Errorf("the informer for %T is a %T, not a client-go SharedIndexInformer", obj, informer)
	}
	return shared, nil
}
