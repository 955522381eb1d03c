package mirror

import (
	"maps"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Content summarises what a mirror copies from its source: enough to tell whether a mirror is
// faithful without holding the data of either, which the controller does not keep.
type Content struct {
	// Type is a Secret's type; empty for kinds that have none.
	Type      string
	Immutable bool
	// Digest identifies the data: equal digests mean equal data.
	Digest string
	// Size is the data's size in bytes.
	Size int
}

// diff returns the write that gives a mirror whose content is existing the content c: Update,
// Recreate, or "" when it has it already. Type and immutability cannot change back in place, so
// those differences need a Recreate.
func (c Content) diff(existing Content) ActionKind {
	same := c.Digest == existing.Digest && c.Immutable == existing.Immutable
	switch {
	case c.Type != existing.Type:
		return Recreate
	case existing.Immutable && !same:
		return Recreate
	case !same:
		return Update
	}
	return ""
}

// sourceMarkers are the labels and annotations that make an object a source: a mirror never
// carries them, so that it never becomes a source itself.
var (
	sourceLabels      = []string{LabelSync}
	sourceAnnotations = []string{AnnotationNamespaces, AnnotationNamespaceSelector, AnnotationServiceAccounts, AnnotationCopyLabels, AnnotationCopyAnnotations}
)

// MirrorLabels returns the labels that mark an object as the mirror of source.
func MirrorLabels(source types.NamespacedName) map[string]string {
	return map[string]string{
		LabelMirror:          "true",
		LabelSourceName:      NameLabelValue(source.Name),
		LabelSourceNamespace: source.Namespace,
	}
}

// MirrorMetadata returns the labels and annotations a mirror of source must carry, given the
// ones it has: its own, which others may have added and are kept, with the keys it copied before
// (as its copied annotations record them) replaced by those in copied, the record updated, the
// mirror labels set and the source markers removed. It never modifies its arguments, which may be
// shared with a cache.
func MirrorMetadata(source types.NamespacedName, copied Copied, labels, annotations map[string]string) (map[string]string, map[string]string) {
	labels, annotations = maps.Clone(labels), maps.Clone(annotations)
	if labels == nil {
		labels = map[string]string{}
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	labelsBefore, annotationsBefore := annotations[AnnotationCopiedLabels], annotations[AnnotationCopiedAnnotations]
	recopy(labels, labelsBefore, copied.Labels)
	recopy(annotations, annotationsBefore, copied.Annotations)
	setOrDelete(annotations, AnnotationCopiedLabels, copied.labelKeys)
	setOrDelete(annotations, AnnotationCopiedAnnotations, copied.annotationKeys)
	maps.Copy(labels, MirrorLabels(source))
	for _, key := range sourceLabels {
		delete(labels, key)
	}
	for _, key := range sourceAnnotations {
		delete(annotations, key)
	}
	if len(annotations) == 0 {
		annotations = nil
	}
	return labels, annotations
}

// recopy removes from m the keys that before, a copied annotation's value, lists, then sets the
// ones copied now.
func recopy(m map[string]string, before string, now map[string]string) {
	for key := range strings.SplitSeq(before, ",") {
		delete(m, strings.TrimSpace(key))
	}
	maps.Copy(m, now)
}

func setOrDelete(m map[string]string, key, value string) {
	if value == "" {
		delete(m, key)
	} else {
		m[key] = value
	}
}

// owner tells the mirrors of one source from other objects. It computes the source's name label
// once: planning asks it about every mirror of the source.
type owner struct {
	source    types.NamespacedName
	nameLabel string
}

func newOwner(source types.NamespacedName) owner {
	return owner{source: source, nameLabel: NameLabelValue(source.Name)}
}

// owns is OwnedBy(obj, o.source).
func (o owner) owns(obj metav1.Object) bool {
	claimed, ok := SourceOf(obj)
	return ok && claimed == o.source && obj.GetLabels()[LabelSourceName] == o.nameLabel
}

// marks reports whether obj carries the mirror labels of o.source, what it copies of the source's
// labels and annotations (copied) and the record of it, and none of the source markers.
func (o owner) marks(obj metav1.Object, copied Copied) bool {
	labels, annotations := obj.GetLabels(), obj.GetAnnotations()
	if labels[LabelMirror] != "true" || labels[LabelSourceName] != o.nameLabel || labels[LabelSourceNamespace] != o.source.Namespace {
		return false
	}
	for _, key := range sourceLabels {
		if _, ok := labels[key]; ok {
			return false
		}
	}
	for _, key := range sourceAnnotations {
		if _, ok := annotations[key]; ok {
			return false
		}
	}
	return annotations[AnnotationCopiedLabels] == copied.labelKeys && annotations[AnnotationCopiedAnnotations] == copied.annotationKeys &&
		carries(labels, copied.Labels) && carries(annotations, copied.Annotations)
}

// carries reports whether m holds every entry of want.
func carries(m, want map[string]string) bool {
	for key, value := range want {
		if got, ok := m[key]; !ok || got != value {
			return false
		}
	}
	return true
}
