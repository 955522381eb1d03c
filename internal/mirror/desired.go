package mirror

import (
	"bytes"
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

// Refresh compares an existing mirror with its source. It returns the kind of write needed to make
// existing faithful again (Update, Recreate, or "" when it already is) and, for Update, the object
// to write: existing with the source's content, keeping the labels and annotations that others
// added. Type and immutability cannot change in place, so those differences need a Recreate.
func Refresh(source, existing *corev1.Secret) (ActionKind, *corev1.Secret) {
	contentDiffers := !sameData(source.Data, existing.Data) || isImmutable(source) != isImmutable(existing)
	switch {
	case source.Type != existing.Type:
		return Recreate, nil
	case isImmutable(existing) && contentDiffers:
		return Recreate, nil
	case !contentDiffers && hasMirrorMetadata(source, existing):
		return "", nil
	}
	updated := existing.DeepCopy()
	updated.Data = maps.Clone(source.Data)
	updated.Immutable = source.Immutable
	if updated.Labels == nil {
		updated.Labels = map[string]string{}
	}
	maps.Copy(updated.Labels, mirrorLabels(source))
	delete(updated.Labels, LabelSync)
	delete(updated.Annotations, AnnotationNamespaces)
	return Update, updated
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

func sameData(a, b map[string][]byte) bool {
	return maps.EqualFunc(a, b, bytes.Equal)
}

func isImmutable(secret *corev1.Secret) bool {
	return secret.Immutable != nil && *secret.Immutable
}
