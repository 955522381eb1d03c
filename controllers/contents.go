package controllers

import (
	"context"
	"fmt"
	"maps"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// contents knows what the metadata-only mirror cache does not hold: the content of each mirror,
// summarised (mirror.Content), at one resourceVersion. An entry is good only while the cached
// mirror has that resourceVersion: any other change of the mirror, by anyone, gives it another.
// whisperer records the content of each mirror it writes, and reads a mirror whose content it
// does not know (see learnMirrors), which happens after someone else changed it, and after a
// restart.
type contents struct {
	mu    sync.Mutex
	byKey map[types.NamespacedName]knownContent
}

type knownContent struct {
	resourceVersion string
	content         mirror.Content
}

func newContents() *contents {
	return &contents{byKey: map[types.NamespacedName]knownContent{}}
}

// of returns the content of obj at its resourceVersion, if it is known.
func (c *contents) of(obj metav1.Object) (mirror.Content, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	known, ok := c.byKey[types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}]
	return known.content, ok && known.resourceVersion == obj.GetResourceVersion()
}

// set records that obj, as written or read, has content.
func (c *contents) set(obj metav1.Object, content mirror.Content) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byKey[types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}] = knownContent{obj.GetResourceVersion(), content}
}

// forget drops what is known of an object that is gone.
func (c *contents) forget(obj metav1.Object) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byKey, types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()})
}

const (
	// maxReadOneByOne is how many mirrors of unknown content a reconcile reads with a GET each;
	// more are read with a LIST of the source's mirrors, in pages.
	maxReadOneByOne = 8
	// pageBytes bounds what one page of that LIST holds, so that the mirrors of a large source are
	// read a few at a time: mirrors are the size of their source.
	pageBytes = 4 << 20
	// maxPage is the most mirrors one page holds.
	maxPage = 500
)

// learnMirrors reads the mirrors of state's source whose content is not known, so that planning
// can compare them with the source. It reads only what planning compares: owned mirrors, not
// being deleted, of a source that is there.
func (r *MirrorReconciler) learnMirrors(ctx context.Context, state mirror.State) error {
	if state.Source == nil {
		return nil
	}
	var unknown []metav1.Object
	for _, m := range state.Mirrors {
		if mirror.OwnedBy(m, state.Key) && m.GetDeletionTimestamp() == nil {
			if _, known := r.contents.of(m); !known {
				unknown = append(unknown, m)
			}
		}
	}
	if len(unknown) <= maxReadOneByOne {
		for _, m := range unknown {
			if err := r.readMirror(ctx, types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()}); err != nil {
				return err
			}
		}
		return nil
	}
	return r.listMirrors(ctx, state)
}

func (r *MirrorReconciler) readMirror(ctx context.Context, key types.NamespacedName) error {
	live := r.Kind.newObject()
	switch err := r.APIReader.Get(ctx, key, live); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading the mirror in %s: %w", key.Namespace, err)
	}
	r.contents.set(live, contentOf(r.Kind, live))
	return nil
}

// listMirrors reads every mirror of state's source, in pages sized by the source's size.
func (r *MirrorReconciler) listMirrors(ctx context.Context, state mirror.State) error {
	page := int64(min(maxPage, max(1, pageBytes/max(1, state.Source.Content.Size))))
	selector := client.MatchingLabels{
		mirror.LabelSourceName:      mirror.NameLabelValue(state.Key.Name),
		mirror.LabelSourceNamespace: state.Key.Namespace,
	}
	for next := ""; ; {
		list := r.Kind.newList()
		if err := r.APIReader.List(ctx, list, selector, client.Limit(page), client.Continue(next)); err != nil {
			return fmt.Errorf("reading the mirrors: %w", err)
		}
		err := meta.EachListItem(list, func(item runtime.Object) error {
			if obj, ok := item.(client.Object); ok && obj.GetName() == state.Key.Name {
				r.contents.set(obj, contentOf(r.Kind, obj))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if next = list.GetContinue(); next == "" {
			return nil
		}
	}
}

// metadataOf returns the metadata of obj, without what whisperer does not read (managedFields)
// and without kubectl's copy of the whole object, which holds its data again.
func metadataOf(k Kind, obj client.Object) *metav1.PartialObjectMetadata {
	m := metadataObject(k)
	objectMeta(obj).DeepCopyInto(&m.ObjectMeta)
	m.ManagedFields = nil
	if _, ok := m.Annotations[corev1.LastAppliedConfigAnnotation]; ok {
		m.Annotations = maps.Clone(m.Annotations)
		delete(m.Annotations, corev1.LastAppliedConfigAnnotation)
	}
	return m
}
