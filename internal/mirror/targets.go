package mirror

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Targets is the parsed namespaces annotation of a source.
type Targets struct {
	names map[string]struct{}
	// Invalid lists the entries that were ignored, each with the reason, in annotation order.
	Invalid []string
}

// ParseTargets parses the comma-separated namespaces annotation. It never fails: blanks around
// entries, empty entries and duplicates are ignored, and entries that cannot be namespace names
// are left out and listed in Invalid so that the valid ones are still served.
func ParseTargets(annotation string) Targets {
	t := Targets{names: map[string]struct{}{}}
	for _, entry := range strings.Split(annotation, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(entry); len(errs) > 0 {
			t.Invalid = append(t.Invalid, fmt.Sprintf("%q: %s", entry, errs[0]))
			continue
		}
		t.names[entry] = struct{}{}
	}
	return t
}

// Matches reports whether the annotation asks for namespace.
func (t Targets) Matches(namespace string) bool {
	_, ok := t.names[namespace]
	return ok
}
