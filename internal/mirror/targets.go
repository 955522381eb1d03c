package mirror

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Targets is what a source asks for: the entries of its namespaces annotation and its optional
// namespace selector annotation.
//
// Grammar of the namespaces annotation: comma-separated entries, blanks around them ignored.
// An entry is a namespace name (target), a glob where * stands for any run of characters and ?
// for one character (team-*, *), or either of those after ! to exclude (!kube-system, !tmp-*).
// A namespace is a target when an entry or the selector includes it and no exclusion matches it;
// the order of entries does not matter.
type Targets struct {
	names, excludedNames       map[string]bool
	patterns, excludedPatterns []string
	selector                   labels.Selector
	// Invalid lists the entries that were ignored, each with the reason, in annotation order.
	Invalid []string
	// TooLarge, when set, says why the annotation is over whisperer's limits: it then matches no
	// namespace, and the source is refused.
	TooLarge string
}

// Limits of the namespaces annotation. Every namespace event is matched against every glob of
// every source, so an annotation of tens of thousands of globs would cost namespaces × globs on
// each: these bounds keep that cost small, and are far above what a real list needs (names are
// looked up, not matched, so they may be many more than globs).
const (
	MaxEntries = 1000
	MaxGlobs   = 100
)

// globEntry is what may appear in a glob: namespace name characters and the wildcards.
var globEntry = regexp.MustCompile(`^[a-z0-9?*-]+$`)

// TargetsOf parses the namespaces and namespace selector annotations of source.
func TargetsOf(source Annotated) Targets {
	annotations := source.GetAnnotations()
	return ParseTargets(annotations[AnnotationNamespaces], annotations[AnnotationNamespaceSelector])
}

// Annotated is anything with annotations, such as a Secret.
type Annotated interface{ GetAnnotations() map[string]string }

// ParseTargets parses the two annotations. It never fails: blanks, empty entries and duplicates
// are ignored, and entries that cannot match a namespace are left out and listed in Invalid, so
// that the valid ones are still served.
func ParseTargets(namespaces, selector string) Targets {
	t := Targets{names: map[string]bool{}, excludedNames: map[string]bool{}}
	entries := 0
	for entry := range strings.SplitSeq(namespaces, ",") {
		if entry = strings.TrimSpace(entry); entry != "" {
			entries++
			t.add(entry)
		}
	}
	if globs := len(t.patterns) + len(t.excludedPatterns); entries > MaxEntries || globs > MaxGlobs {
		tooLarge := fmt.Sprintf("%s has %d entries of which %d globs; at most %d entries and %d globs are allowed",
			AnnotationNamespaces, entries, globs, MaxEntries, MaxGlobs)
		return Targets{TooLarge: tooLarge, Invalid: []string{tooLarge}}
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

func (t *Targets) add(entry string) {
	pattern, excluded := strings.CutPrefix(entry, "!")
	if reason := invalidPattern(pattern); reason != "" {
		t.Invalid = append(t.Invalid, fmt.Sprintf("%q: %s", entry, reason))
		return
	}
	isGlob := strings.ContainsAny(pattern, "*?")
	switch {
	case excluded && isGlob:
		t.excludedPatterns = append(t.excludedPatterns, pattern)
	case excluded:
		t.excludedNames[pattern] = true
	case isGlob:
		t.patterns = append(t.patterns, pattern)
	default:
		t.names[pattern] = true
	}
}

// invalidPattern returns why pattern can match no namespace, or "".
func invalidPattern(pattern string) string {
	if !strings.ContainsAny(pattern, "*?") {
		if errs := validation.IsDNS1123Label(pattern); len(errs) > 0 {
			return errs[0]
		}
		return ""
	}
	if !globEntry.MatchString(pattern) {
		return "a pattern may only hold lower case letters, digits, '-', '*' and '?'"
	}
	if len(pattern) > validation.DNS1123LabelMaxLength {
		return fmt.Sprintf("a pattern must be no more than %d characters", validation.DNS1123LabelMaxLength)
	}
	return ""
}

// Matches reports whether the source asks for namespace.
func (t Targets) Matches(namespace Namespace) bool {
	if t.TooLarge != "" || t.excludedNames[namespace.Name] || matchesAny(t.excludedPatterns, namespace.Name) {
		return false
	}
	return t.names[namespace.Name] || matchesAny(t.patterns, namespace.Name) ||
		(t.selector != nil && t.selector.Matches(namespace.LabelSet()))
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
