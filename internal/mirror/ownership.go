package mirror

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// SourceOf returns the source that secret claims to mirror: the namespace in its namespace label
// and, since a mirror has its source's name, its own name. The claim alone does not make secret
// a mirror: see OwnedBy.
func SourceOf(secret *corev1.Secret) (types.NamespacedName, bool) {
	namespace := secret.Labels[LabelSourceNamespace]
	if namespace == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: namespace, Name: secret.Name}, true
}

// OwnedBy reports whether secret is a mirror of source, and so whether whisperer may update or
// delete it on that source's behalf: it has the source's name and carries the source's name and
// namespace labels. The mirror label is not required, so that a mirror whose mirror label was
// edited is repaired.
func OwnedBy(secret *corev1.Secret, source types.NamespacedName) bool {
	claimed, ok := SourceOf(secret)
	return ok && claimed == source && secret.Labels[LabelSourceName] == NameLabelValue(source.Name)
}

func hasLabel(secret *corev1.Secret, key string) bool {
	_, ok := secret.Labels[key]
	return ok
}
