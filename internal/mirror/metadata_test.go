package mirror

import (
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestParseKeys(t *testing.T) {
	tests := []struct {
		name       string
		list       string
		matches    []string
		notMatches []string
		invalid    []string // the quoted entries reported invalid, in order
	}{
		{name: "a key is matched whole", list: "team", matches: []string{"team"}, notMatches: []string{"team2", "tea", "example.com/team", "Team"}},
		{name: "a prefixed key", list: "example.com/team", matches: []string{"example.com/team"}, notMatches: []string{"team", "example.com/team2"}},
		{name: "star is every key", list: "*", matches: []string{"team", "example.com/team", "a.b.c/d_e.f-g", "x"}},
		{name: "a prefix glob takes every name under it", list: "example.com/*", matches: []string{"example.com/a", "example.com/a.b-c_d"},
			notMatches: []string{"example.com", "sub.example.com/a", "example.community/a", "a"}},
		{name: "a star matches dots and slashes", list: "*.example.com/*", matches: []string{"a.example.com/x", "a.b.example.com/x"}, notMatches: []string{"example.com/x"}},
		{name: "a star in the name", list: "team-*", matches: []string{"team-a", "team-"}, notMatches: []string{"team", "my-team-a", "example.com/team-a"}},
		{name: "a star inside", list: "a*z", matches: []string{"az", "abz", "a.b/cz", "azzz"}, notMatches: []string{"za", "azy"}},
		{name: "question mark is one character", list: "env-?", matches: []string{"env-a"}, notMatches: []string{"env-", "env-ab"}},
		{name: "blanks, empty entries and duplicates", list: " team ,, team,\tother\n,", matches: []string{"team", "other"}},
		{name: "empty list matches nothing", list: " , ", notMatches: []string{"team", ""}},
		{name: "invalid keys are reported and the others still matched",
			list:    "Bad Key,team,a/b/c,-team,example.com/,/name,Example.com/x,a_b/c," + strings.Repeat("n", 64) + ",[ab],ok",
			matches: []string{"team", "ok"}, notMatches: []string{"Bad Key", "a/b/c", "-team"},
			invalid: []string{`"Bad Key"`, `"a/b/c"`, `"-team"`, `"example.com/"`, `"/name"`, `"Example.com/x"`, `"a_b/c"`, `"` + strings.Repeat("n", 64) + `"`, `"[ab]"`}},
		{name: "invalid globs", list: "*/*/*,team *,Example.*/x,*_/*,ok-*", matches: []string{"ok-1"},
			invalid: []string{`"*/*/*"`, `"team *"`, `"Example.*/x"`, `"*_/*"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseKeys(tt.list)
			for _, key := range tt.matches {
				if !got.Matches(key) {
					t.Errorf("Matches(%q) = false, want true", key)
				}
			}
			for _, key := range tt.notMatches {
				if got.Matches(key) {
					t.Errorf("Matches(%q) = true, want false", key)
				}
			}
			if len(got.Invalid) != len(tt.invalid) {
				t.Fatalf("invalid %q, want entries %q", got.Invalid, tt.invalid)
			}
			for i, want := range tt.invalid {
				if !strings.HasPrefix(got.Invalid[i], want+": ") {
					t.Errorf("invalid[%d] = %q, want %s and the reason", i, got.Invalid[i], want)
				}
			}
		})
	}
}

func TestKeysOverTheLimitsMatchNothing(t *testing.T) {
	for name, list := range map[string]string{
		"globs":   strings.ReplaceAll(numbered("team", MaxGlobs+1), ",", "*,") + "*",
		"entries": strings.Repeat("k,", MaxEntries) + numbered("k", MaxEntries+1),
	} {
		t.Run(name, func(t *testing.T) {
			got := ParseKeys(list)
			if got.Matches("team0-a") || got.Matches("k0") || len(got.Invalid) != 1 || !strings.Contains(got.Invalid[0], "at most") {
				t.Errorf("over the limits: matches team0-a %v, k0 %v, invalid %q; want no match and the limits", got.Matches("team0-a"), got.Matches("k0"), got.Invalid)
			}
		})
	}
	if got := ParseKeys(numbered("k", MaxEntries)); !got.Matches("k999") || len(got.Invalid) != 0 {
		t.Errorf("%d entries: invalid %q, want them all served", MaxEntries, got.Invalid)
	}
}

// numbered returns n distinct keys, prefix then 0 to n-1, comma-separated.
func numbered(prefix string, n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint(prefix, i)
	}
	return strings.Join(keys, ",")
}

func TestDenyList(t *testing.T) {
	// Every entry of the built-in deny-list, with a key it stands for: its glob's * taken as
	// "anything".
	var denied []string
	for _, d := range deniedKeys {
		denied = append(denied, strings.ReplaceAll(d.pattern, "*", "anything"))
	}
	// The keys the peers' users meet, named.
	denied = append(denied,
		LabelSync, AnnotationNamespaces, AnnotationCopyLabels, AnnotationCopiedLabels, LabelMirror,
		"kubectl.kubernetes.io/last-applied-configuration", "kubectl.kubernetes.io/restartedAt",
		"kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace",
		"helm.toolkit.fluxcd.io/name", "meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
	allowed := []string{
		"team", "argocd.argoproj.io/secret-type", "argocd.argoproj.io/sync-options", "app.kubernetes.io/name",
		"app.kubernetes.io/part-of", "cnpg.io/reload", "helm.sh/resource-policy", "trust.cert-manager.io/bundle",
		"secret-syncer.jeffl.es", "jeffl.es/sync", "kubernetes.io/description",
	}
	for _, p := range []Policy{{}, {DeniedMetadata: ParseKeys("example.com/*,owner")}} {
		for _, key := range denied {
			if !p.deniesKey(key) {
				t.Errorf("%q is not denied, with --deny-metadata=%s", key, p.DeniedMetadata)
			}
		}
		for _, key := range allowed {
			if p.deniesKey(key) {
				t.Errorf("%q is denied, with --deny-metadata=%s", key, p.DeniedMetadata)
			}
		}
	}
	extra := Policy{DeniedMetadata: ParseKeys("example.com/*,owner")}
	for _, key := range []string{"example.com/team", "owner"} {
		if !extra.deniesKey(key) || (Policy{}).deniesKey(key) {
			t.Errorf("%q: denied %v with --deny-metadata=%s and %v without, want true and false",
				key, extra.deniesKey(key), extra.DeniedMetadata, (Policy{}).deniesKey(key))
		}
	}
}

// The README gives every entry of the deny-list, and why it is there.
func TestReadmeListsTheDenyList(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range deniedKeys {
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(d.pattern) + "` \\| [^|]*[a-z][^|]* \\|$")
		if !row.MatchString(string(readme)) {
			t.Errorf("README.md has no row of %s and why it is denied", d.pattern)
		}
	}
}

// metadata returns an edit of a source that gives it labels and annotations besides its own.
func metadata(labels, annotations map[string]string) func(*cached) {
	return func(c *cached) {
		maps.Copy(c.Labels, labels)
		maps.Copy(c.Annotations, annotations)
	}
}

func TestCopied(t *testing.T) {
	argo := map[string]string{"argocd.argoproj.io/secret-type": "repo-creds", "app.kubernetes.io/instance": "platform"}
	tests := []struct {
		name                     string
		labels, annotations      map[string]string
		policy                   Policy
		wantLabels, wantAnnots   map[string]string
		wantLabelKeys, wantAKeys string
		wantDenied               []string
		wantInvalid              int
	}{
		{name: "no copy annotation copies nothing", labels: argo},
		{name: "an empty copy annotation copies nothing", labels: argo, annotations: map[string]string{AnnotationCopyLabels: " "}},
		{name: "named labels", labels: map[string]string{"team": "a", "tier": "b", "other": "c"},
			annotations: map[string]string{AnnotationCopyLabels: "tier,team,absent"},
			wantLabels:  map[string]string{"team": "a", "tier": "b"}, wantLabelKeys: "team,tier"},
		{name: "labels and annotations apart", labels: map[string]string{"team": "a"},
			annotations: map[string]string{AnnotationCopyAnnotations: "team,note", "team": "annotated"},
			wantAnnots:  map[string]string{"team": "annotated", "note": "kept on the source"}, wantAKeys: "note,team"},
		{name: "star: the deny-list wins, whisperer's own keys go unreported", labels: argo,
			annotations:   map[string]string{AnnotationCopyLabels: "*"},
			wantLabels:    map[string]string{"argocd.argoproj.io/secret-type": "repo-creds", "app": "registry"},
			wantLabelKeys: "app,argocd.argoproj.io/secret-type", wantDenied: []string{"label app.kubernetes.io/instance"}},
		{name: "star on annotations never copies the source's own annotations", annotations: map[string]string{
			AnnotationCopyAnnotations: "*", "argocd.argoproj.io/tracking-id": "x", "meta.helm.sh/release-name": "r"},
			wantAnnots: map[string]string{"note": "kept on the source"}, wantAKeys: "note",
			wantDenied: []string{"annotation argocd.argoproj.io/tracking-id", "annotation meta.helm.sh/release-name"}},
		{name: "a denied key named is reported, carried or not", labels: argo,
			annotations: map[string]string{AnnotationCopyLabels: "app.kubernetes.io/instance,app.kubernetes.io/managed-by," + LabelSync},
			wantDenied:  []string{"label app.kubernetes.io/instance", "label app.kubernetes.io/managed-by", "label " + LabelSync}},
		{name: "a glob of denied keys", labels: map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps", "team": "a"},
			annotations: map[string]string{AnnotationCopyLabels: "kustomize.toolkit.fluxcd.io/*,team"},
			wantLabels:  map[string]string{"team": "a"}, wantLabelKeys: "team", wantDenied: []string{"label kustomize.toolkit.fluxcd.io/name"}},
		{name: "--deny-metadata adds to the deny-list", labels: map[string]string{"example.com/owner": "x", "team": "a"},
			annotations: map[string]string{AnnotationCopyLabels: "*"}, policy: Policy{DeniedMetadata: ParseKeys("example.com/*")},
			wantLabels: map[string]string{"team": "a", "app": "registry"}, wantLabelKeys: "app,team", wantDenied: []string{"label example.com/owner"}},
		{name: "invalid entries are reported, the valid ones served", labels: map[string]string{"team": "a"},
			annotations: map[string]string{AnnotationCopyLabels: "team,Bad Key", AnnotationCopyAnnotations: "[x]"},
			wantLabels:  map[string]string{"team": "a"}, wantLabelKeys: "team", wantInvalid: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.copied(source("target", metadata(tt.labels, tt.annotations)))
			if !mapsEqual(got.Labels, tt.wantLabels) || got.labelKeys != tt.wantLabelKeys {
				t.Errorf("labels %v recorded as %q, want %v as %q", got.Labels, got.labelKeys, tt.wantLabels, tt.wantLabelKeys)
			}
			if !mapsEqual(got.Annotations, tt.wantAnnots) || got.annotationKeys != tt.wantAKeys {
				t.Errorf("annotations %v recorded as %q, want %v as %q", got.Annotations, got.annotationKeys, tt.wantAnnots, tt.wantAKeys)
			}
			if !slices.Equal(got.Denied, tt.wantDenied) {
				t.Errorf("denied %q, want %q", got.Denied, tt.wantDenied)
			}
			if len(got.Invalid) != tt.wantInvalid {
				t.Errorf("invalid %q, want %d entries", got.Invalid, tt.wantInvalid)
			}
			for _, invalid := range got.Invalid {
				if !strings.HasPrefix(invalid, AnnotationCopyLabels+` "`) && !strings.HasPrefix(invalid, AnnotationCopyAnnotations+` "`) {
					t.Errorf("invalid entry %q does not name its annotation", invalid)
				}
			}
		})
	}
}

func TestMirrorMetadataCopies(t *testing.T) {
	// copying is what a source with labels and annotations, copying them all by name, copies.
	copying := func(labels, annotations map[string]string) Copied {
		src := source("target", func(c *cached) {
			c.Labels, c.Annotations = maps.Clone(labels), maps.Clone(annotations)
			if c.Annotations == nil {
				c.Annotations = map[string]string{}
			}
			c.Annotations[AnnotationCopyLabels] = strings.Join(slices.Collect(maps.Keys(labels)), ",")
			c.Annotations[AnnotationCopyAnnotations] = strings.Join(slices.Collect(maps.Keys(annotations)), ",")
		})
		return (Policy{}).copied(src)
	}
	withMirrorLabels := func(l map[string]string) map[string]string {
		out := MirrorLabels(sourceKey)
		maps.Copy(out, l)
		return out
	}
	tests := []struct {
		name                string
		copied              Copied
		labels, annotations map[string]string // the mirror's, before
		wantL, wantA        map[string]string
	}{
		{name: "a new mirror", copied: copying(map[string]string{"team": "a"}, map[string]string{"cnpg.io/reload": "true"}),
			wantL: withMirrorLabels(map[string]string{"team": "a"}),
			wantA: map[string]string{"cnpg.io/reload": "true", AnnotationCopiedLabels: "team", AnnotationCopiedAnnotations: "cnpg.io/reload"}},
		{name: "a key no longer copied goes, one someone else added stays, a hand edit is reverted",
			copied:      copying(map[string]string{"team": "a"}, nil),
			labels:      withMirrorLabels(map[string]string{"team": "edited", "tier": "b", "theirs": "c"}),
			annotations: map[string]string{AnnotationCopiedLabels: "team,tier", "their-note": "d"},
			wantL:       withMirrorLabels(map[string]string{"team": "a", "theirs": "c"}),
			wantA:       map[string]string{AnnotationCopiedLabels: "team", "their-note": "d"}},
		{name: "copying stopped: every copied key goes, and the record",
			labels:      withMirrorLabels(map[string]string{"team": "a", "theirs": "c"}),
			annotations: map[string]string{AnnotationCopiedLabels: "team", AnnotationCopiedAnnotations: "cnpg.io/reload", "cnpg.io/reload": "true"},
			wantL:       withMirrorLabels(map[string]string{"theirs": "c"})},
		{name: "a record that lists the mirror labels cannot remove them",
			labels:      withMirrorLabels(nil),
			annotations: map[string]string{AnnotationCopiedLabels: LabelMirror + "," + LabelSourceName + "," + LabelSourceNamespace},
			wantL:       withMirrorLabels(nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels, annotations := MirrorMetadata(sourceKey, tt.copied, tt.labels, tt.annotations)
			if !mapsEqual(labels, tt.wantL) || !mapsEqual(annotations, tt.wantA) {
				t.Errorf("labels %v, annotations %v; want %v, %v", labels, annotations, tt.wantL, tt.wantA)
			}
			// What MirrorMetadata writes is what planning wants: a write is never followed by another.
			m := mirrorIn("target", func(m *cached) { m.Labels, m.Annotations = labels, annotations })
			if !newOwner(sourceKey).marks(m, tt.copied) {
				t.Error("the mirror as written is not marked as the source's: whisperer would write it again")
			}
		})
	}
}

func TestPlanCopiesMetadata(t *testing.T) {
	copyTeam := metadata(map[string]string{"team": "a"}, map[string]string{AnnotationCopyLabels: "team"})
	// copyingTeam makes a mirror faithful to a source with copyTeam.
	copyingTeam := func(m *cached) {
		m.Labels["team"] = "a"
		m.Annotations = map[string]string{AnnotationCopiedLabels: "team"}
	}
	tests := []struct {
		name   string
		source *Source
		mirror *cached
		want   ActionKind
	}{
		{name: "no copy annotation: a mirror as today needs no write", source: source("target"), mirror: mirrorIn("target")},
		{name: "converged", source: source("target", copyTeam), mirror: mirrorIn("target", copyingTeam)},
		{name: "a label someone else added is no difference", source: source("target", copyTeam),
			mirror: mirrorIn("target", copyingTeam, func(m *cached) { m.Labels["theirs"] = "x"; m.Annotations["their-note"] = "y" })},
		{name: "the source starts copying", source: source("target", copyTeam), mirror: mirrorIn("target"), want: Update},
		{name: "the source's value changed", source: source("target", copyTeam, metadata(map[string]string{"team": "b"}, nil)),
			mirror: mirrorIn("target", copyingTeam), want: Update},
		{name: "a copied label edited by hand", source: source("target", copyTeam),
			mirror: mirrorIn("target", copyingTeam, func(m *cached) { m.Labels["team"] = "edited" }), want: Update},
		{name: "a copied label removed by hand", source: source("target", copyTeam),
			mirror: mirrorIn("target", copyingTeam, func(m *cached) { delete(m.Labels, "team") }), want: Update},
		{name: "the record removed by hand", source: source("target", copyTeam),
			mirror: mirrorIn("target", copyingTeam, func(m *cached) { m.Annotations = nil }), want: Update},
		{name: "the source stops copying", source: source("target"), mirror: mirrorIn("target", copyingTeam), want: Update},
		{name: "the copied key removed from the source", source: source("target", metadata(nil, map[string]string{AnnotationCopyLabels: "team"})),
			mirror: mirrorIn("target", copyingTeam), want: Update},
		{name: "a copy annotation added to a mirror is removed", source: source("target"),
			mirror: mirrorIn("target", func(m *cached) { m.Annotations = map[string]string{AnnotationCopyLabels: "*"} }), want: Update},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Plan(State{Kind: KindSecret, Key: sourceKey, Source: tt.source, Namespaces: namespaces("source", "target"),
				Mirrors: []metav1.Object{tt.mirror}, ContentOf: contentOf})
			var got ActionKind
			if len(r.Actions) > 0 {
				got = r.Actions[0].Kind
			}
			if got != tt.want {
				t.Errorf("actions %v, want %q", summary(r.Actions), tt.want)
			}
		})
	}
}
