// Package mirror holds whisperer's pure logic: which objects are sources, which namespaces a
// source asks for, what the administrator's policy allows, what its mirrors must look like and
// which writes take the cluster there. Nothing here talks to the API server or knows how the
// controller caches objects, so all of it is covered by table tests.
package mirror

import (
	"crypto/sha256"
	"encoding/hex"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/validation"
)

// The public API, unchanged from whisperer.rs: users select sources and query mirrors with these.
const (
	// LabelSync marks a Secret as a source when its value is "true".
	LabelSync = "secret-syncer.jeffl.es/sync"
	// AnnotationNamespaces lists, comma-separated, the namespaces a source is mirrored into.
	AnnotationNamespaces = "secret-syncer.jeffl.es/namespaces"
	// AnnotationNamespaceSelector optionally selects target namespaces by their labels, as a
	// label selector ("env=prod", "team in (a,b)").
	AnnotationNamespaceSelector = "secret-syncer.jeffl.es/namespace-selector"
	// LabelMirror marks every mirror with the value "true".
	LabelMirror = "secret-syncer.jeffl.es/mirror"
	// LabelSourceName holds the name of the source a mirror was copied from, as NameLabelValue
	// gives it: the name itself when it fits in a label value.
	LabelSourceName = "secret-syncer.jeffl.es/name"
	// LabelSourceNamespace holds the namespace of the source a mirror was copied from. An object
	// that carries it claims to be a mirror (see SourceOf), so it is never a source.
	LabelSourceNamespace = "secret-syncer.jeffl.es/namespace"
	// AnnotationServiceAccounts on a source of a pull secret type names, with the grammar of the
	// namespaces annotation, the ServiceAccounts that get its mirror in their imagePullSecrets,
	// in every namespace that holds the mirror.
	AnnotationServiceAccounts = "secret-syncer.jeffl.es/service-accounts"
	// AnnotationImagePullSecrets on a ServiceAccount lists, comma-separated, the imagePullSecrets
	// entries whisperer added, so that it removes only those.
	AnnotationImagePullSecrets = "secret-syncer.jeffl.es/image-pull-secrets" //nolint:gosec // G101: an annotation's name, not a credential
	// LabelIgnore on a namespace opts it out: with the value "true", whisperer mirrors nothing
	// into it, whatever a source asks, and removes its mirrors there.
	LabelIgnore = "secret-syncer.jeffl.es/ignore"
)

// maxLabelValue is the longest label value the API server accepts. Secret names may be longer.
const maxLabelValue = validation.LabelValueMaxLength

// NameLabelValue returns the value of the name label of a mirror of a source named name: the
// name itself when it fits in a label value, so that `kubectl get -l` finds it, and otherwise a
// prefix of it with a hash of the whole, which still tells sources apart. The mirror's own name
// is always the source's full name.
func NameLabelValue(name string) string {
	if len(name) <= maxLabelValue {
		return name
	}
	const hashLength = 10
	sum := sha256.Sum256([]byte(name))
	return name[:maxLabelValue-hashLength-1] + "-" + hex.EncodeToString(sum[:])[:hashLength]
}

// SourceSelector selects the objects that can be sources: labelled sync=true, and neither
// labelled as a mirror nor claiming a source, so that a mirror someone labels for sync (even after
// removing its mirror label) is repaired as a mirror and never copied onward. IsSource agrees.
func SourceSelector() labels.Selector {
	return labels.NewSelector().Add(
		mustRequirement(LabelSync, selection.Equals, "true"),
		mustRequirement(LabelMirror, selection.DoesNotExist),
		mustRequirement(LabelSourceNamespace, selection.DoesNotExist),
	)
}

// MirrorSelector selects the objects that claim a source (SourceOf): every mirror, including one
// whose mirror label was edited or removed, so that the edit is seen and reverted.
func MirrorSelector() labels.Selector {
	return labels.NewSelector().Add(mustRequirement(LabelSourceNamespace, selection.Exists))
}

func mustRequirement(key string, op selection.Operator, values ...string) labels.Requirement {
	r, err := labels.NewRequirement(key, op, values)
	if err != nil {
		panic(err) // only reached with a malformed constant above
	}
	return *r
}
