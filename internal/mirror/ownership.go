package mirror

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// IsSource reports whether secret asks to be mirrored. It repeats SourceSelector for objects
// that did not come through the source cache.
func IsSource(secret *corev1.Secret) bool {
	return secret.Labels[LabelSync] == "true" && !hasLabel(secret, LabelMirror)
}

// SourceOf returns the source that secret claims to mirror, from its labels, and whether it
// names one at all. The claim alone does not make secret a mirror: see OwnedBy.
func SourceOf(secret *corev1.Secret) (types.NamespacedName, bool) {
	name, namespace := secret.Labels[LabelSourceName], secret.Labels[LabelSourceNamespace]
	if name == "" || namespace == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: namespace, Name: name}, true
}

// OwnedBy reports whether secret is a mirror of source, and so whether whisperer may update or
// delete it on that source's behalf. It must carry the source's name and namespace labels and
// the source's name: a Secret with copied labels under another name stays the user's. The
// mirror label is not required, so that a mirror whose mirror label was edited is repaired.
func OwnedBy(secret *corev1.Secret, source types.NamespacedName) bool {
	claimed, ok := SourceOf(secret)
	return ok && claimed == source && secret.Name == source.Name
}

func hasLabel(secret *corev1.Secret, key string) bool {
	_, ok := secret.Labels[key]
	return ok
}
