package mirror

import (
	"slices"
	"strings"
	"testing"
)

func TestParseTargets(t *testing.T) {
	tests := []struct {
		name       string
		annotation string
		matches    []string
		notMatches []string
		invalid    []string // the quoted entries reported invalid, in order
	}{
		{name: "seed example", annotation: "target,target2,missing", matches: []string{"target", "target2", "missing"}, notMatches: []string{"source", "target3"}},
		{name: "empty annotation", annotation: "", notMatches: []string{"", "default"}},
		{name: "only separators and blanks", annotation: " , ,, ", notMatches: []string{"", " "}},
		{name: "blanks around entries", annotation: " a ,\tb\n, c", matches: []string{"a", "b", "c"}},
		{name: "empty entries", annotation: "a,,b,", matches: []string{"a", "b"}, notMatches: []string{""}},
		{name: "duplicates", annotation: "a,a, a", matches: []string{"a"}},
		{name: "upper case is not a namespace name", annotation: "Target,ok", matches: []string{"ok"}, notMatches: []string{"Target", "target"}, invalid: []string{`"Target"`}},
		{name: "invalid characters", annotation: "a_b,a.b,-a,a-,ok-1", matches: []string{"ok-1"}, invalid: []string{`"a_b"`, `"a.b"`, `"-a"`, `"a-"`}},
		{name: "longer than 63 characters", annotation: strings.Repeat("a", 64) + "," + strings.Repeat("b", 63), matches: []string{strings.Repeat("b", 63)}, invalid: []string{`"` + strings.Repeat("a", 64) + `"`}},
		{name: "entries are matched whole", annotation: "team", notMatches: []string{"team-a", "tea"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseTargets(tt.annotation)
			for _, ns := range tt.matches {
				if !got.Matches(ns) {
					t.Errorf("Matches(%q) = false, want true", ns)
				}
			}
			for _, ns := range tt.notMatches {
				if got.Matches(ns) {
					t.Errorf("Matches(%q) = true, want false", ns)
				}
			}
			var invalid []string
			for _, reason := range got.Invalid {
				invalid = append(invalid, reason[:strings.Index(reason, ":")])
			}
			if !slices.Equal(invalid, tt.invalid) {
				t.Errorf("Invalid = %q, want entries %q", got.Invalid, tt.invalid)
			}
		})
	}
}
