package mirror

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Build returns the mirror of source in namespace, as it is created: the source's name, type,
// data and immutability, and the mirror labels. Nothing else of the source is copied, so a
// mirror never carries the sync label or the namespaces annotation and never becomes a source.
func Build(source *corev1.Secret, namespace string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      source.Name,
			Namespace: namespace,
			Labels:    mirrorLabels(source),
		},
		Type:      source.Type,
		Data:      maps.Clone(source.Data),
		Immutable: source.Immutable,
	}
}

// Diff compares an existing mirror with its source and returns the write that makes existing
// faithful again: Update, Recreate, or "" when it already is. Type and immutability cannot change
// back in place, so those differences need a Recreate.
func Diff(source, existing *corev1.Secret) ActionKind {
	return NewComparer(source).Diff(existing)
}

// Comparer compares mirrors with one source. It computes the digest of the source's data once,
// when a cached mirror first needs it: a reconcile compares every mirror of its source, so a
// digest per comparison would hash the source's data once per namespace. It is meant for one
// goroutine: the digest is kept without a lock.
type Comparer struct {
	source *corev1.Secret
	digest string
}

// NewComparer returns a Comparer for the mirrors of source, which may be nil as long as nothing
// is compared.
func NewComparer(source *corev1.Secret) *Comparer {
	return &Comparer{source: source}
}

// Diff is Diff(source, existing) for c's source.
func (c *Comparer) Diff(existing *corev1.Secret) ActionKind {
	source := c.source
	contentDiffers := !c.sameData(existing) || isImmutable(source) != isImmutable(existing)
	switch {
	case source.Type != existing.Type:
		return Recreate
	case isImmutable(existing) && contentDiffers:
		return Recreate
	case contentDiffers || !hasMirrorMetadata(source, existing):
		return Update
	}
	return ""
}

// Updated returns the object that updates existing to a faithful mirror of source: existing with
// the source's content and the mirror labels, keeping the labels and annotations others added.
// It never modifies existing, which may be shared with the cache.
func Updated(source, existing *corev1.Secret) *corev1.Secret {
	updated := existing.DeepCopy()
	updated.Data = maps.Clone(source.Data)
	updated.Immutable = source.Immutable
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	maps.Copy(updated.Labels, mirrorLabels(source))
	delete(updated.Labels, LabelSync)
	delete(updated.Labels, digestLabel)
	delete(updated.Annotations, AnnotationNamespaces)
	return updated
}

func mirrorLabels(source *corev1.Secret) map[string]string {
	return map[string]string{
		LabelMirror:          "true",
		LabelSourceName:      NameLabelValue(source.Name),
		LabelSourceNamespace: source.Namespace,
	}
}

// hasMirrorMetadata reports whether existing carries the mirror labels of source and nothing
// that would make it a source.
func hasMirrorMetadata(source, existing *corev1.Secret) bool {
	for key, value := range mirrorLabels(source) {
		if existing.Labels[key] != value {
			return false
		}
	}
	_, annotated := existing.Annotations[AnnotationNamespaces]
	return !hasLabel(existing, LabelSync) && !annotated
}

func isImmutable(secret *corev1.Secret) bool {
	return secret.Immutable != nil && *secret.Immutable
}
