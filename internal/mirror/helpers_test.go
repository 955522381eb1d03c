package mirror

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var sourceKey = types.NamespacedName{Namespace: "source", Name: "sync"}

// cached is an object as the controller's caches hold it: metadata and a content summary.
type cached struct {
	metav1.ObjectMeta
	content Content
}

func contentOf(obj metav1.Object) (Content, bool) {
	c := obj.(*cached)
	return c.content, c.content != unknown
}

// unknown is the content of a mirror whose content the controller does not know.
var unknown = Content{Digest: "unknown"}

var opaque = Content{Type: string(corev1.SecretTypeOpaque), Digest: "digest-1", Size: 6}

// source returns the source of sourceKey asking for annotation, with content opaque.
func source(annotation string, edits ...func(*cached)) *Source {
	obj := &cached{
		ObjectMeta: metav1.ObjectMeta{
			Name: sourceKey.Name, Namespace: sourceKey.Namespace,
			Labels:      map[string]string{LabelSync: "true", "app": "registry"},
			Annotations: map[string]string{AnnotationNamespaces: annotation, "note": "kept on the source"},
		},
		content: opaque,
	}
	for _, edit := range edits {
		edit(obj)
	}
	return NewSource(obj, obj.content)
}

func withSelector(selector string) func(*cached) {
	return func(c *cached) { c.Annotations[AnnotationNamespaceSelector] = selector }
}

func withContent(content Content) func(*cached) {
	return func(c *cached) { c.content = content }
}

// mirrorIn returns a faithful mirror of sourceKey in namespace, edited by edits.
func mirrorIn(namespace string, edits ...func(*cached)) *cached {
	m := &cached{
		ObjectMeta: metav1.ObjectMeta{Name: sourceKey.Name, Namespace: namespace, Labels: MirrorLabels(sourceKey),
			UID: types.UID("uid-" + namespace), ResourceVersion: "1"},
		content: opaque,
	}
	for _, edit := range edits {
		edit(m)
	}
	return m
}

func namespaces(names ...string) []Namespace {
	var out []Namespace
	for _, name := range names {
		out = append(out, Namespace{Name: name})
	}
	return out
}

// summary renders actions as "kind/namespace" for compact comparisons.
func summary(actions []Action) []string {
	var out []string
	for _, a := range actions {
		out = append(out, fmt.Sprintf("%s/%s", a.Kind, a.Namespace))
	}
	return out
}
