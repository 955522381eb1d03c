package mirror

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Names is a list of names and globs with exclusions, as the namespaces and service-accounts
// annotations hold: comma-separated entries, blanks around them ignored. An entry is a name, a
// glob where * stands for any run of characters and ? for one character (team-*, *), or either
// of those after ! to exclude (!kube-system, !tmp-*). A name is included when an entry includes it
// and no exclusion matches it; the order of entries does not matter.
type Names struct {
	names, excludedNames       map[string]bool
	patterns, excludedPatterns []string
	// Invalid lists the entries that were ignored, each with the reason, in annotation order.
	Invalid []string
	// TooLarge, when set, says why the list is over whisperer's limits: it then matches nothing.
	TooLarge string
}

// Limits of a list of names. Every namespace event is matched against every glob of every
// source, so an annotation of tens of thousands of globs would cost namespaces × globs on each:
// these bounds keep that cost small, and are far above what a real list needs (names are looked
// up, not matched, so they may be many more than globs).
const (
	MaxEntries = 1000
	MaxGlobs   = 100
)

// nameRules say what a valid name and glob of one kind of object are.
type nameRules struct {
	// annotation is the annotation that lists them, for messages.
	annotation string
	// invalidName returns why a name (no wildcard) is not one of these objects' names, or "".
	invalidName func(string) []string
	// glob matches the characters a glob may hold, which globChars says.
	glob      *regexp.Regexp
	globChars string
	// maxLength bounds a glob, as the longest name.
	maxLength int
}

var (
	namespaceNames = nameRules{
		annotation: AnnotationNamespaces, invalidName: validation.IsDNS1123Label,
		glob: regexp.MustCompile(`^[a-z0-9?*-]+$`), globChars: "lower case letters, digits, '-', '*' and '?'",
		maxLength: validation.DNS1123LabelMaxLength,
	}
	serviceAccountNames = nameRules{
		annotation: AnnotationServiceAccounts, invalidName: validation.IsDNS1123Subdomain,
		glob: regexp.MustCompile(`^[a-z0-9.?*-]+$`), globChars: "lower case letters, digits, '-', '.', '*' and '?'",
		maxLength: validation.DNS1123SubdomainMaxLength,
	}
)

// parseNames parses a list of names. It never fails: blanks, empty entries and duplicates are
// ignored, and entries that can match no name are left out and listed in Invalid, so that the
// valid ones are still served.
func parseNames(list string, rules nameRules) Names {
	n := Names{names: map[string]bool{}, excludedNames: map[string]bool{}}
	entries := 0
	for entry := range strings.SplitSeq(list, ",") {
		if entry = strings.TrimSpace(entry); entry != "" {
			entries++
			n.add(entry, rules)
		}
	}
	if globs := len(n.patterns) + len(n.excludedPatterns); entries > MaxEntries || globs > MaxGlobs {
		tooLarge := fmt.Sprintf("%s has %d entries of which %d globs; at most %d entries and %d globs are allowed",
			rules.annotation, entries, globs, MaxEntries, MaxGlobs)
		return Names{TooLarge: tooLarge, Invalid: []string{tooLarge}}
	}
	return n
}

func (n *Names) add(entry string, rules nameRules) {
	pattern, excluded := strings.CutPrefix(entry, "!")
	if reason := rules.invalid(pattern); reason != "" {
		n.Invalid = append(n.Invalid, fmt.Sprintf("%q: %s", entry, reason))
		return
	}
	isGlob := strings.ContainsAny(pattern, "*?")
	switch {
	case excluded && isGlob:
		n.excludedPatterns = append(n.excludedPatterns, pattern)
	case excluded:
		n.excludedNames[pattern] = true
	case isGlob:
		n.patterns = append(n.patterns, pattern)
	default:
		n.names[pattern] = true
	}
}

// invalid returns why pattern can match no name, or "".
func (rules nameRules) invalid(pattern string) string {
	if !strings.ContainsAny(pattern, "*?") {
		if errs := rules.invalidName(pattern); len(errs) > 0 {
			return errs[0]
		}
		return ""
	}
	if !rules.glob.MatchString(pattern) {
		return "a pattern may only hold " + rules.globChars
	}
	if len(pattern) > rules.maxLength {
		return fmt.Sprintf("a pattern must be no more than %d characters", rules.maxLength)
	}
	return ""
}

// excludes reports whether an exclusion matches name.
func (n Names) excludes(name string) bool {
	return n.TooLarge != "" || n.excludedNames[name] || matchesAny(n.excludedPatterns, name)
}

// includes reports whether an entry includes name, exclusions aside.
func (n Names) includes(name string) bool {
	return n.names[name] || matchesAny(n.patterns, name)
}

// Match reports whether the list includes name and no exclusion matches it.
func (n Names) Match(name string) bool {
	return !n.excludes(name) && n.includes(name)
}

// invalidPattern returns why a namespace name or glob can match no namespace, or "".
func invalidPattern(pattern string) string {
	return namespaceNames.invalid(pattern)
}

// Targets is what a source asks for: the entries of its namespaces annotation (Names) and its
// optional namespace selector annotation. A namespace is a target when an entry or the selector
// includes it and no exclusion matches it.
type Targets struct {
	Names
	selector labels.Selector
}

// TargetsOf parses the namespaces and namespace selector annotations of source.
func TargetsOf(source Annotated) Targets {
	annotations := source.GetAnnotations()
	return ParseTargets(annotations[AnnotationNamespaces], annotations[AnnotationNamespaceSelector])
}

// Annotated is anything with annotations, such as a Secret.
type Annotated interface{ GetAnnotations() map[string]string }

// ParseTargets parses the two annotations. It never fails: see parseNames; an invalid selector
// is listed in Invalid and ignored.
func ParseTargets(namespaces, selector string) Targets {
	t := Targets{Names: parseNames(namespaces, namespaceNames)}
	if t.TooLarge != "" {
		return t
	}
	if selector = strings.TrimSpace(selector); selector != "" {
		parsed, err := labels.Parse(selector)
		if err != nil {
			t.Invalid = append(t.Invalid, fmt.Sprintf("%s %q: %v", AnnotationNamespaceSelector, selector, err))
		} else {
			t.selector = parsed
		}
	}
	return t
}

// Matches reports whether the source asks for namespace.
func (t Targets) Matches(namespace Namespace) bool {
	if t.excludes(namespace.Name) {
		return false
	}
	return t.includes(namespace.Name) || (t.selector != nil && t.selector.Matches(namespace.LabelSet()))
}

func matchesAny(patterns []string, name string) bool {
	for _, p := range patterns {
		// Patterns were checked to hold no '[' or '\', so path.Match cannot fail.
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
