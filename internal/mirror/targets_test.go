package mirror

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestParseTargets(t *testing.T) {
	tests := []struct {
		name       string
		annotation string
		selector   string
		matches    []string
		notMatches []string
		invalid    []string // the quoted entries reported invalid, in order
	}{
		{name: "seed example", annotation: "target,target2,missing", matches: []string{"target", "target2", "missing"}, notMatches: []string{"source", "target3"}},
		{name: "empty annotation", annotation: "", notMatches: []string{"default"}},
		{name: "only separators and blanks", annotation: " , ,, ", notMatches: []string{"default"}},
		{name: "blanks around entries", annotation: " a ,\tb\n, c", matches: []string{"a", "b", "c"}},
		{name: "empty entries", annotation: "a,,b,", matches: []string{"a", "b"}},
		{name: "duplicates", annotation: "a,a, a", matches: []string{"a"}},
		{name: "upper case is not a namespace name", annotation: "Target,ok", matches: []string{"ok"}, notMatches: []string{"target"}, invalid: []string{`"Target"`}},
		{name: "invalid characters", annotation: "a_b,a.b,-a,a-,ok-1", matches: []string{"ok-1"}, invalid: []string{`"a_b"`, `"a.b"`, `"-a"`, `"a-"`}},
		{name: "longer than 63 characters", annotation: strings.Repeat("a", 64) + "," + strings.Repeat("b", 63), matches: []string{strings.Repeat("b", 63)}, invalid: []string{`"` + strings.Repeat("a", 64) + `"`}},
		{name: "entries are matched whole", annotation: "team", notMatches: []string{"team-a", "tea"}},
		{name: "star is every namespace", annotation: "*", matches: []string{"default", "kube-system", "a"}},
		{name: "glob", annotation: "team-*", matches: []string{"team-a", "team-"}, notMatches: []string{"team", "my-team-a"}},
		{name: "question mark is one character", annotation: "env-?", matches: []string{"env-a"}, notMatches: []string{"env-", "env-ab"}},
		{name: "exclusion wins whatever the order", annotation: "!kube-system,*", matches: []string{"default"}, notMatches: []string{"kube-system"}},
		{name: "excluded glob", annotation: "*, !kube-*", matches: []string{"default"}, notMatches: []string{"kube-system", "kube-public"}},
		{name: "exclusion of a listed name", annotation: "a,b,!b", matches: []string{"a"}, notMatches: []string{"b"}},
		{name: "exclusions alone select nothing", annotation: "!a", notMatches: []string{"a", "b"}},
		{name: "invalid glob characters", annotation: "team_*,[ab],Team-*,!!a,ok-*", matches: []string{"ok-1"}, invalid: []string{`"team_*"`, `"[ab]"`, `"Team-*"`, `"!!a"`}},
		{name: "selector alone", selector: "env=prod", matches: []string{"prod-1"}, notMatches: []string{"dev-1"}},
		{name: "selector adds to the list", annotation: "dev-1", selector: "env=prod", matches: []string{"prod-1", "dev-1"}, notMatches: []string{"dev-2"}},
		{name: "exclusions apply to the selector too", annotation: "!prod-1", selector: "env=prod", matches: []string{"prod-2"}, notMatches: []string{"prod-1"}},
		{name: "set-based selector", selector: "env in (prod, dev)", matches: []string{"prod-1", "dev-1"}, notMatches: []string{"unlabelled"}},
		{name: "a glob longer than 63 characters", annotation: strings.Repeat("a", 63) + "*,ok", matches: []string{"ok"}, invalid: []string{`"` + strings.Repeat("a", 63) + `*"`}},
		{name: "invalid selector is reported and ignored", annotation: "a", selector: "env in (a", matches: []string{"a"}, notMatches: []string{"prod-1"}, invalid: []string{AnnotationNamespaceSelector + ` "env in (a"`}},
	}
	labelsOf := map[string]map[string]string{
		"prod-1": {"env": "prod"}, "prod-2": {"env": "prod"}, "dev-1": {"env": "dev"}, "dev-2": {"env": "staging"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseTargets(tt.annotation, tt.selector)
			for _, ns := range tt.matches {
				if !got.Matches(Namespace{Name: ns, Labels: labelsOf[ns]}) {
					t.Errorf("Matches(%q) = false, want true", ns)
				}
			}
			for _, ns := range tt.notMatches {
				if got.Matches(Namespace{Name: ns, Labels: labelsOf[ns]}) {
					t.Errorf("Matches(%q) = true, want false", ns)
				}
			}
			var invalid []string
			for _, reason := range got.Invalid {
				invalid = append(invalid, reason[:strings.LastIndex(reason, `":`)+1])
			}
			if !slices.Equal(invalid, tt.invalid) {
				t.Errorf("Invalid = %q, want entries %q", got.Invalid, tt.invalid)
			}
		})
	}
}

func TestAnnotationLimits(t *testing.T) {
	names := func(n int, format string) string {
		entries := make([]string, n)
		for i := range entries {
			entries[i] = fmt.Sprintf(format, i)
		}
		return strings.Join(entries, ",")
	}
	tests := []struct {
		name, annotation string
		tooLarge         bool
	}{
		{name: "as many names as allowed", annotation: names(MaxEntries, "ns-%d")},
		{name: "one name too many", annotation: names(MaxEntries+1, "ns-%d"), tooLarge: true},
		{name: "as many globs as allowed", annotation: names(MaxGlobs, "team-%d-*")},
		{name: "one glob too many", annotation: names(MaxGlobs+1, "team-%d-*"), tooLarge: true},
		{name: "excluded globs count as globs", annotation: names(MaxGlobs, "!team-%d-*") + ",*", tooLarge: true},
		{name: "blanks and empty entries do not count", annotation: names(MaxEntries, "ns-%d") + strings.Repeat(", ,", 500)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseTargets(tt.annotation, "")
			if (got.TooLarge != "") != tt.tooLarge {
				t.Fatalf("TooLarge = %q, want set: %v", got.TooLarge, tt.tooLarge)
			}
			if tt.tooLarge && (got.Matches(Namespace{Name: "ns-1"}) || got.Matches(Namespace{Name: "team-1-a"}) || len(got.Invalid) != 1) {
				t.Errorf("an annotation over the limits: matches something, or Invalid = %q; want nothing matched and the limit reported", got.Invalid)
			}
		})
	}
}

func TestSelectorsSeeTheNamespaceNameLabel(t *testing.T) {
	// The cache may drop kubernetes.io/metadata.name, which the API server sets to the name.
	ns := Namespace{Name: "team-a", Labels: map[string]string{"env": "prod"}}
	if !ParseTargets("", corev1.LabelMetadataName+" in (team-a),env=prod").Matches(ns) {
		t.Error("a selector on kubernetes.io/metadata.name does not match a namespace whose labels lack it")
	}
	if got := ns.LabelSet().Get(corev1.LabelMetadataName); got != "team-a" {
		t.Errorf("LabelSet()[%s] = %q, want the name", corev1.LabelMetadataName, got)
	}
}

func FuzzParseTargets(f *testing.F) {
	for _, seed := range []string{"target,target2,missing", "*,!kube-system", " a , ,b,", "team-*,!team-b", "Team,a_b,[", "!!", "*?*?", "a,!a"} {
		f.Add(seed, "env=prod")
	}
	f.Add("a", "!env")
	f.Fuzz(func(t *testing.T, annotation, selector string) {
		targets := ParseTargets(annotation, selector) // must never panic, whatever the input
		if targets.TooLarge != "" {
			if targets.Matches(Namespace{Name: "default"}) {
				t.Errorf("an annotation over the limits matches a namespace")
			}
			return
		}
		excluded := func(name string) bool {
			return targets.excludedNames[name] || matchesAny(targets.excludedPatterns, name)
		}
		for _, entry := range strings.Split(annotation, ",") {
			entry = strings.TrimSpace(entry)
			name, isExclusion := strings.CutPrefix(entry, "!")
			if strings.ContainsAny(name, "*?") || invalidPattern(name) != "" {
				continue
			}
			got := targets.Matches(Namespace{Name: name})
			if isExclusion && got {
				t.Errorf("%q is excluded by %q but matches", name, entry)
			}
			if !isExclusion && !excluded(name) && !got {
				t.Errorf("%q is listed and not excluded but does not match", name)
			}
		}
	})
}
