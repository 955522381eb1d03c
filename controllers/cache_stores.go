package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// A reconcile reads every namespace and every mirror of its source. At 10,000 namespaces, a
// cache List would copy each of them into a new slice even without deep copies, so whisperer
// reads the informers' stores directly. Their objects are shared with the cache: read, never
// change them.

// mirrorStore reads the cached mirrors, indexed by the source they claim.
type mirrorStore struct{ indexer toolscache.Indexer }

func newMirrorStore(ctx context.Context, mirrors cache.Cache) (mirrorStore, error) {
	informer, err := sharedInformer(ctx, mirrors, &corev1.Secret{})
	if err != nil {
		return mirrorStore{}, err
	}
	return mirrorStore{indexer: informer.GetIndexer()}, nil
}

// newMirrorInformer makes the mirror cache's informer, indexed by source only. controller-runtime's
// default would also index each mirror under its namespace: one more set per namespace, for a
// query whisperer does not make (see namespaceToSources).
func newMirrorInformer(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, _ toolscache.Indexers) toolscache.SharedIndexInformer {
	return toolscache.NewSharedIndexInformer(lw, obj, resync, toolscache.Indexers{mirrorSourceIndex: indexBySource})
}

// indexBySource keys a cached mirror by the "namespace/name" of the source it claims.
func indexBySource(obj any) ([]string, error) {
	if secret, ok := obj.(*corev1.Secret); ok {
		if source, ok := mirror.SourceOf(secret); ok {
			return []string{source.String()}, nil
		}
	}
	return nil, nil
}

// ofSource returns the cached mirrors that claim source.
func (s mirrorStore) ofSource(source types.NamespacedName) ([]*corev1.Secret, error) {
	objects, err := s.indexer.ByIndex(mirrorSourceIndex, source.String())
	if err != nil {
		return nil, fmt.Errorf("reading cached mirrors: %w", err)
	}
	mirrors := make([]*corev1.Secret, 0, len(objects))
	for _, obj := range objects {
		if secret, ok := obj.(*corev1.Secret); ok {
			mirrors = append(mirrors, secret)
		}
	}
	return mirrors, nil
}

// get returns the cached mirror at key, if there is one.
func (s mirrorStore) get(key types.NamespacedName) (*corev1.Secret, bool) {
	obj, exists, err := s.indexer.GetByKey(key.String())
	secret, ok := obj.(*corev1.Secret)
	return secret, exists && err == nil && ok
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
