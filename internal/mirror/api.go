// Package mirror holds whisperer's pure logic: which Secrets are sources, which namespaces a
// source asks for, what its mirrors must look like and which writes take the cluster there.
// Nothing here talks to the API server, so all of it is covered by table tests.
package mirror

import (
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// The public API, unchanged from whisperer.rs: users select sources and query mirrors with these.
const (
	// LabelSync marks a Secret as a source when its value is "true".
	LabelSync = "secret-syncer.jeffl.es/sync"
	// AnnotationNamespaces lists, comma-separated, the namespaces a source is mirrored into.
	AnnotationNamespaces = "secret-syncer.jeffl.es/namespaces"
	// LabelMirror marks every mirror with the value "true".
	LabelMirror = "secret-syncer.jeffl.es/mirror"
	// LabelSourceName holds the name of the source a mirror was copied from.
	LabelSourceName = "secret-syncer.jeffl.es/name"
	// LabelSourceNamespace holds the namespace of the source a mirror was copied from.
	LabelSourceNamespace = "secret-syncer.jeffl.es/namespace"
)

// SourceSelector selects the Secrets that can be sources: labelled sync=true and not a
// mirror, so that a mirror someone labels for sync is never copied onward.
func SourceSelector() labels.Selector {
	return labels.NewSelector().Add(
		mustRequirement(LabelSync, selection.Equals, "true"),
		mustRequirement(LabelMirror, selection.DoesNotExist),
	)
}

// MirrorSelector selects the Secrets that may be mirrors. A mirror whose mirror label was edited
// to another value stays selected, so the edit is seen and reverted.
func MirrorSelector() labels.Selector {
	return labels.NewSelector().Add(mustRequirement(LabelMirror, selection.Exists))
}

func mustRequirement(key string, op selection.Operator, values ...string) labels.Requirement {
	r, err := labels.NewRequirement(key, op, values)
	if err != nil {
		panic(err) // only reached with a malformed constant above
	}
	return *r
}
