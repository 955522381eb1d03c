package mirror

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// IsSource reports whether obj asks to be mirrored: labelled for sync, not a mirror (see
// SourceSelector, which it repeats for objects that did not come through the source cache), and
// not being deleted.
func IsSource(obj metav1.Object) bool {
	l := obj.GetLabels()
	_, mirrorLabel := l[LabelMirror]
	_, claims := l[LabelSourceNamespace]
	return l[LabelSync] == "true" && !mirrorLabel && !claims && obj.GetDeletionTimestamp() == nil
}

// SourceOf returns the source that obj claims to mirror: the namespace in its namespace label
// and, since a mirror has its source's name, its own name. The claim alone does not make obj a
// mirror: see OwnedBy.
func SourceOf(obj metav1.Object) (types.NamespacedName, bool) {
	namespace := obj.GetLabels()[LabelSourceNamespace]
	if namespace == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: namespace, Name: obj.GetName()}, true
}

// OwnedBy reports whether obj is a mirror of source, and so whether whisperer may update or
// delete it on that source's behalf: it has the source's name and carries the source's name and
// namespace labels. The mirror label is not required, so that a mirror whose mirror label was
// edited is repaired.
func OwnedBy(obj metav1.Object, source types.NamespacedName) bool {
	return newOwner(source).owns(obj)
}
