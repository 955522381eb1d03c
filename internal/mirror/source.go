package mirror

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Source is a source as planning sees it: the object as the controller caches it and what is
// parsed from it, once per change of the object rather than once per use.
type Source struct {
	// Object is the source as cached, which may lack its data: read it, never modify it.
	Object  metav1.Object
	Content Content
	// Targets is what its annotations ask for.
	Targets Targets
}

// NewSource parses obj, a source whose content is content.
func NewSource(obj metav1.Object, content Content) *Source {
	return &Source{Object: obj, Content: content, Targets: TargetsOf(obj)}
}

// Key returns the source's namespace and name.
func (s *Source) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: s.Object.GetNamespace(), Name: s.Object.GetName()}
}
