package mirror

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// Policy is what the cluster administrator allows, from the operator's settings. The zero Policy
// allows everything, as whisperer.rs did.
type Policy struct {
	// SourceNamespaces are the namespaces whose objects may be sources; empty means all.
	SourceNamespaces Patterns
	// ExcludedNamespaces never receive a mirror.
	ExcludedNamespaces Patterns
	// TargetSelector, when set, must match the labels of every namespace that receives a mirror.
	TargetSelector labels.Selector
	// MaxSourceSize, when positive, is the largest source, in bytes of data, that is mirrored.
	MaxSourceSize int
	// MaxTargetsPerSource, when positive, is the most namespaces one source may be mirrored into.
	MaxTargetsPerSource int
	// DeniedMetadata are label and annotation keys and globs never copied to a mirror, besides
	// the built-in deny-list.
	DeniedMetadata Keys
}

// Refusal returns why source, of kind, must not be mirrored at all, or "" when it may be. It
// does not count the source's targets, which takes the namespaces: see Plan.
func (p Policy) Refusal(kind Kind, source *Source) string {
	namespace := source.Object.GetNamespace()
	switch {
	case len(p.SourceNamespaces) > 0 && !p.SourceNamespaces.Matches(namespace):
		return fmt.Sprintf("%ss in namespace %s cannot be sources: the operator only accepts sources in %s",
			kind, namespace, p.SourceNamespaces)
	case source.Targets.TooLarge != "":
		return fmt.Sprintf("its namespaces annotation is over whisperer's limits: %s", source.Targets.TooLarge)
	case p.MaxSourceSize > 0 && source.Content.Size > p.MaxSourceSize:
		return fmt.Sprintf("its data is %d bytes, more than the %d bytes the operator mirrors (--max-source-size)",
			source.Content.Size, p.MaxSourceSize)
	}
	return kind.kindRefusal(source)
}

// tooManyTargets returns why a source that asks for wanted namespaces is refused, or "".
func (p Policy) tooManyTargets(wanted int) string {
	if p.MaxTargetsPerSource > 0 && wanted > p.MaxTargetsPerSource {
		return fmt.Sprintf("it asks for %d namespaces, more than the %d the operator allows one source (--max-targets-per-source)",
			wanted, p.MaxTargetsPerSource)
	}
	return ""
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
	for entry := range strings.SplitSeq(list, ",") {
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
