package mirror

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Copying a source's labels and annotations to its mirrors. Other tools find objects by their
// labels and annotations (Argo CD's repository credentials, trust-manager's selectors), so users
// ask for them on the mirrors; but some tools also own what carries theirs, and a copy of those
// makes Argo CD prune the mirror that whisperer recreates, forever, or Flux garbage-collect it.
// A source names the keys to copy; a deny-list that no source can override keeps the owning ones
// out; and each mirror records the keys whisperer copied to it, so that whisperer removes those
// when the source stops asking for them and keeps the ones others add.
const (
	// AnnotationCopyLabels, on a source, lists the keys and key globs of its labels to copy to its
	// mirrors, comma-separated (team, example.com/*, *).
	AnnotationCopyLabels = "secret-syncer.jeffl.es/copy-labels"
	// AnnotationCopyAnnotations does the same for its annotations.
	AnnotationCopyAnnotations = "secret-syncer.jeffl.es/copy-annotations"
	// AnnotationCopiedLabels, on a mirror, lists the labels whisperer copied to it, sorted and
	// comma-separated; a mirror that copies none does not carry it.
	AnnotationCopiedLabels = "secret-syncer.jeffl.es/copied-labels"
	// AnnotationCopiedAnnotations does the same for annotations.
	AnnotationCopiedAnnotations = "secret-syncer.jeffl.es/copied-annotations"
)

// ownPrefix starts every key of whisperer's own.
const ownPrefix = "secret-syncer.jeffl.es/"

// deniedKeys is the built-in deny-list: keys never copied to a mirror, whatever a source asks,
// even with *, and why. --deny-metadata adds to it (Policy.DeniedMetadata); nothing removes from it.
var deniedKeys = []struct{ pattern, why string }{
	{ownPrefix + "*", "whisperer's own: a mirror must never become a source, nor claim another one"},
	{"kubectl.kubernetes.io/*", "kubectl's: last-applied-configuration holds the source's data and would make kubectl take the mirror for the source"},
	{"app.kubernetes.io/instance", "Argo CD's tracking label: Argo CD prunes the mirror, whisperer recreates it, forever"},
	{"app.kubernetes.io/managed-by", "names a manager (Helm) that does not manage the mirror"},
	{"argocd.argoproj.io/instance", "Argo CD's other tracking label: pruned the same way"},
	{"argocd.argoproj.io/tracking-id", "Argo CD's tracking annotation: pruned the same way"},
	{"kustomize.toolkit.fluxcd.io/*", "Flux's kustomize-controller labels: Flux garbage-collects the mirror"},
	{"helm.toolkit.fluxcd.io/*", "Flux's helm-controller labels: the same"},
	{"meta.helm.sh/*", "Helm's release annotations: the mirror would pass for a release's object"},
	{"helm.sh/chart", "Helm's chart label: the same"},
}

var builtinDenied = func() Keys {
	var patterns []string
	for _, d := range deniedKeys {
		patterns = append(patterns, d.pattern)
	}
	k := ParseKeys(strings.Join(patterns, ","))
	if len(k.Invalid) > 0 {
		panic(k.Invalid) // only reached with a malformed entry above
	}
	return k
}()

// Keys is a list of label or annotation keys and key globs, as the copy annotations and
// --deny-metadata give them. In a glob, * stands for any run of characters, '/' and '.'
// included, and ? for one character.
type Keys struct {
	names   map[string]bool
	globs   []string
	entries []string
	// Invalid lists the entries that were ignored, each with the reason.
	Invalid []string
}

// ParseKeys parses a comma-separated list of keys and globs. It never fails: blanks, empty
// entries and duplicates are ignored, and entries that can match no key are left out and listed
// in Invalid. A list over the limits of the namespaces annotation (MaxEntries, MaxGlobs) matches
// nothing, and says so in Invalid: every key of a source is matched against every glob.
func ParseKeys(list string) Keys {
	k := Keys{names: map[string]bool{}}
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" || k.names[entry] || slices.Contains(k.globs, entry) {
			continue
		}
		if reason := invalidKey(entry); reason != "" {
			k.Invalid = append(k.Invalid, fmt.Sprintf("%q: %s", entry, reason))
			continue
		}
		k.entries = append(k.entries, entry)
		if strings.ContainsAny(entry, "*?") {
			k.globs = append(k.globs, entry)
		} else {
			k.names[entry] = true
		}
	}
	if len(k.entries) > MaxEntries || len(k.globs) > MaxGlobs {
		return Keys{Invalid: []string{fmt.Sprintf("%d entries of which %d globs; at most %d entries and %d globs are allowed",
			len(k.entries), len(k.globs), MaxEntries, MaxGlobs)}}
	}
	return k
}

// invalidKey returns why entry, a key or a glob, can match no label or annotation key, or "".
func invalidKey(entry string) string {
	if !strings.ContainsAny(entry, "*?") {
		if errs := validation.IsQualifiedName(entry); len(errs) > 0 {
			return errs[0]
		}
		return ""
	}
	// A glob can match a key when it is one with its wildcards standing for a name character.
	if errs := validation.IsQualifiedName(strings.NewReplacer("*", "x", "?", "x").Replace(entry)); len(errs) > 0 {
		return "a glob must be a key but for its '*' and '?': " + errs[0]
	}
	return ""
}

// Matches reports whether key is one of the keys or matches one of the globs.
func (k Keys) Matches(key string) bool {
	if k.names[key] {
		return true
	}
	for _, glob := range k.globs {
		if globMatch(glob, key) {
			return true
		}
	}
	return false
}

func (k Keys) String() string {
	return strings.Join(k.entries, ",")
}

// globMatch reports whether key matches glob. path.Match will not do: its * stops at '/', which
// separates a key's prefix from its name.
func globMatch(glob, key string) bool {
	g, k := 0, 0
	star, resume := -1, 0 // the last * seen, and where in key its match ends for now
	for k < len(key) {
		switch {
		case g < len(glob) && glob[g] == '*':
			star, resume = g, k
			g++
		case g < len(glob) && (glob[g] == '?' || glob[g] == key[k]):
			g++
			k++
		case star >= 0:
			// Let the last * take one more character, and match the rest again.
			resume++
			g, k = star+1, resume
		default:
			return false
		}
	}
	for g < len(glob) && glob[g] == '*' {
		g++
	}
	return g == len(glob)
}

// Copied is what the mirrors of a source copy of its labels and annotations.
type Copied struct {
	Labels, Annotations map[string]string
	// labelKeys and annotationKeys are the values of the mirrors' AnnotationCopiedLabels and
	// AnnotationCopiedAnnotations: the keys, sorted, comma-separated.
	labelKeys, annotationKeys string
	// Denied names the keys the source asks for that the deny-list holds ("label
	// app.kubernetes.io/instance"), sorted: those its copy annotations name, and those of its own
	// that a glob matches, except whisperer's keys, which every source carries.
	Denied []string
	// Invalid lists the entries of the copy annotations that were ignored, each with the reason.
	Invalid []string
}

// copied returns what the mirrors of source copy: the labels and annotations its copy
// annotations select, less those the deny-list holds.
func (p Policy) copied(source *Source) Copied {
	var c Copied
	labels, annotations := source.Object.GetLabels(), source.Object.GetAnnotations()
	c.Labels, c.labelKeys = p.copyKeys(&c, "label", AnnotationCopyLabels, annotations[AnnotationCopyLabels], labels)
	c.Annotations, c.annotationKeys = p.copyKeys(&c, "annotation", AnnotationCopyAnnotations, annotations[AnnotationCopyAnnotations], annotations)
	slices.Sort(c.Denied)
	return c
}

// copyKeys returns the entries of from that list, the value of the copy annotation named
// annotation, selects and the deny-list allows, and their keys as a mirror records them; it adds
// to c what was denied or invalid, saying what the keys are (label, annotation).
func (p Policy) copyKeys(c *Copied, what, annotation, list string, from map[string]string) (map[string]string, string) {
	if strings.TrimSpace(list) == "" {
		return nil, ""
	}
	asked := ParseKeys(list)
	for _, invalid := range asked.Invalid {
		c.Invalid = append(c.Invalid, annotation+" "+invalid)
	}
	denied := map[string]bool{}
	for key := range asked.names {
		denied[key] = p.deniesKey(key)
	}
	copied := map[string]string{}
	for key, value := range from {
		switch {
		case !asked.Matches(key):
		case !p.deniesKey(key):
			copied[key] = value
		case !strings.HasPrefix(key, ownPrefix):
			denied[key] = true
		}
	}
	for key, isDenied := range denied {
		if isDenied {
			c.Denied = append(c.Denied, what+" "+key)
		}
	}
	if len(copied) == 0 {
		return nil, ""
	}
	return copied, strings.Join(slices.Sorted(maps.Keys(copied)), ",")
}

// deniesKey reports whether key must never be copied to a mirror.
func (p Policy) deniesKey(key string) bool {
	return builtinDenied.Matches(key) || p.DeniedMetadata.Matches(key)
}
