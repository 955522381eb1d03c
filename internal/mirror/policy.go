package mirror

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// LabelIgnore on a namespace opts it out: with the value "true", whisperer mirrors nothing into
// it, whatever a source asks, and removes its mirrors there.
const LabelIgnore = "secret-syncer.jeffl.es/ignore"

// Policy is what the cluster administrator allows, from the operator's flags. The zero Policy
// allows everything, as whisperer.rs did.
type Policy struct {
	// SourceNamespaces are the namespaces whose Secrets may be sources; empty means all.
	SourceNamespaces Patterns
	// ExcludedNamespaces never receive a mirror.
	ExcludedNamespaces Patterns
	// TargetSelector, when set, must match the labels of every namespace that receives a mirror.
	TargetSelector labels.Selector
}

// Refusal returns why source must not be mirrored at all, or "" when it may be: its namespace
// may not hold sources, or its type must never be copied.
func (p Policy) Refusal(source *corev1.Secret) string {
	if len(p.SourceNamespaces) > 0 && !p.SourceNamespaces.Matches(source.Namespace) {
		return fmt.Sprintf("Secrets in namespace %s cannot be sources: the operator only accepts sources in %s",
			source.Namespace, p.SourceNamespaces)
	}
	return typeRefusal(source)
}

// AllowsTarget reports whether namespace may receive mirrors at all.
func (p Policy) AllowsTarget(namespace Namespace) bool {
	if namespace.Labels[LabelIgnore] == "true" || p.ExcludedNamespaces.Matches(namespace.Name) {
		return false
	}
	return p.TargetSelector == nil || p.TargetSelector.Matches(namespace.LabelSet())
}

// Patterns is a list of namespace names and globs, as given to a flag.
type Patterns []string

// ParsePatterns parses a comma-separated list of namespace names and globs (* and ?), as in the
// namespaces annotation but without exclusions. Unlike the annotation, a bad entry is an error:
// it comes from the administrator, who must know at once.
func ParsePatterns(list string) (Patterns, error) {
	var patterns Patterns
	for _, entry := range strings.Split(list, ",") {
		if entry = strings.TrimSpace(entry); entry == "" {
			continue
		}
		if reason := invalidPattern(entry); reason != "" {
			return nil, fmt.Errorf("%q: %s", entry, reason)
		}
		patterns = append(patterns, entry)
	}
	return patterns, nil
}

// Matches reports whether name is one of the patterns or matches one of the globs.
func (p Patterns) Matches(name string) bool {
	return matchesAny(p, name)
}

func (p Patterns) String() string {
	return strings.Join(p, ",")
}
