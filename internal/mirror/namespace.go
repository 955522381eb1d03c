package mirror

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Namespace is what planning needs to know of a namespace.
type Namespace struct {
	Name string
	// Labels may lack kubernetes.io/metadata.name: see LabelSet.
	Labels map[string]string
	// Terminating namespaces get no new mirror, and their mirrors are left to the namespace's deletion.
	Terminating bool
}

// LabelSet returns the namespace's labels for selectors, with kubernetes.io/metadata.name, which
// the API server sets to the name on every namespace: Labels may lack it, since a cache that
// keeps thousands of namespaces need not store a map for that label alone.
func (ns Namespace) LabelSet() labels.Labels {
	return namespaceLabels(ns)
}

type namespaceLabels Namespace

func (l namespaceLabels) Has(key string) bool {
	_, ok := l.Lookup(key)
	return ok
}

func (l namespaceLabels) Get(key string) string {
	value, _ := l.Lookup(key)
	return value
}

func (l namespaceLabels) Lookup(key string) (string, bool) {
	if key == corev1.LabelMetadataName {
		return l.Name, true
	}
	value, ok := l.Labels[key]
	return value, ok
}
