package mirror

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPlan(t *testing.T) {
	deleting := func(m *cached) { m.DeletionTimestamp = &metav1.Time{}; m.Finalizers = []string{"someone/else"} }
	tests := []struct {
		name    string
		kind    Kind
		source  *Source
		policy  Policy
		ns      []Namespace
		mirrors []*cached
		want    []string
		// wantRefusal is a part of the refusal; empty means not refused.
		wantRefusal string
		wantWanted  int
		wantUnknown int
	}{
		{
			name:   "new source is mirrored into the listed namespaces that exist",
			source: source("target,target2,missing"), ns: namespaces("source", "target", "target2", "other"),
			want: []string{"create/target", "create/target2"}, wantWanted: 2,
		},
		{
			name:   "converged source needs no write",
			source: source("target,target2"), ns: namespaces("source", "target", "target2"),
			mirrors: []*cached{mirrorIn("target"), mirrorIn("target2")}, wantWanted: 2,
		},
		{
			name:   "a deleted mirror is recreated",
			source: source("target,target2"), ns: namespaces("source", "target", "target2"),
			mirrors: []*cached{mirrorIn("target")},
			want:    []string{"create/target2"}, wantWanted: 2,
		},
		{
			name: "deleted source: every mirror is deleted",
			ns:   namespaces("source", "target", "target2"), mirrors: []*cached{mirrorIn("target"), mirrorIn("target2")},
			want: []string{"delete/target", "delete/target2"},
		},
		{
			name:   "mirror in a namespace no longer listed is deleted",
			source: source("target"), ns: namespaces("source", "target", "old"),
			mirrors: []*cached{mirrorIn("target"), mirrorIn("old")},
			want:    []string{"delete/old"}, wantWanted: 1,
		},
		{
			name:   "the source's own namespace is skipped",
			source: source("source,target"), ns: namespaces("source", "target"),
			want: []string{"create/target"}, wantWanted: 1,
		},
		{
			name:    "terminating namespaces get no mirror and keep theirs until they are gone",
			source:  source("target,target2,old"),
			ns:      []Namespace{{Name: "target", Terminating: true}, {Name: "target2"}, {Name: "old", Terminating: true}},
			mirrors: []*cached{mirrorIn("old")},
			want:    []string{"create/target2"}, wantWanted: 1,
		},
		{
			name:   "a mirror being deleted counts as gone: no write, no wait, whether wanted or not",
			source: source("target"), ns: namespaces("source", "target", "other"),
			mirrors: []*cached{mirrorIn("target", deleting), mirrorIn("other", deleting)}, wantWanted: 1,
		},
		{
			name:   "a wanted mirror whose content is not known is left as it is; an unwanted one is deleted",
			source: source("target"), ns: namespaces("source", "target", "other"),
			mirrors: []*cached{mirrorIn("target", func(m *cached) { m.content = unknown }), mirrorIn("other", func(m *cached) { m.content = unknown })},
			want:    []string{"delete/other"}, wantWanted: 1, wantUnknown: 1,
		},
		{
			name:   "hand-edited data is reverted",
			source: source("target,target2"), ns: namespaces("target", "target2"),
			mirrors: []*cached{mirrorIn("target", func(m *cached) { m.content.Digest = "edited" }), mirrorIn("target2")},
			want:    []string{"update/target"}, wantWanted: 2,
		},
		{
			name:   "hand-edited mirror label is reverted",
			source: source("target"), ns: namespaces("target"),
			mirrors: []*cached{mirrorIn("target", func(m *cached) { m.Labels[LabelMirror] = "false" })},
			want:    []string{"update/target"}, wantWanted: 1,
		},
		{
			name:   "changed type needs a recreate",
			source: source("target"), ns: namespaces("target"),
			mirrors: []*cached{mirrorIn("target", func(m *cached) { m.content.Type = string(corev1.SecretTypeDockerConfigJson) })},
			want:    []string{"recreate/target"}, wantWanted: 1,
		},
		{
			name:   "immutable mirror with stale data needs a recreate",
			source: source("target"), ns: namespaces("target"),
			mirrors: []*cached{mirrorIn("target", func(m *cached) { m.content.Immutable = true; m.content.Digest = "old" })},
			want:    []string{"recreate/target"}, wantWanted: 1,
		},
		{
			name:   "patterns: every namespace but the excluded ones and the source's own",
			source: source("*,!kube-*"), ns: namespaces("source", "default", "kube-system", "kube-public", "team-a"),
			want: []string{"create/default", "create/team-a"}, wantWanted: 2,
		},
		{
			name:   "namespace that stops matching loses its mirror",
			source: source("team-*"), ns: namespaces("source", "team-a", "other"),
			mirrors: []*cached{mirrorIn("team-a"), mirrorIn("other")},
			want:    []string{"delete/other"}, wantWanted: 1,
		},
		{
			name:   "namespace selector",
			source: source("", withSelector("env=prod")),
			ns:     []Namespace{{Name: "source"}, {Name: "p", Labels: map[string]string{"env": "prod"}}, {Name: "d", Labels: map[string]string{"env": "dev"}}},
			want:   []string{"create/p"}, wantWanted: 1,
		},
		{
			name:   "refused source gets no mirror, and loses any it had",
			kind:   KindSecret,
			source: source("target,target2", withContent(Content{Type: string(corev1.SecretTypeServiceAccountToken)})),
			ns:     namespaces("source", "target", "target2"), mirrors: []*cached{mirrorIn("target")},
			want: []string{"delete/target"}, wantRefusal: "service account",
		},
		{
			name:   "excluded and opted-out namespaces get no mirror and lose theirs",
			source: source("*"), policy: Policy{ExcludedNamespaces: Patterns{"kube-*"}},
			ns:      []Namespace{{Name: "source"}, {Name: "kube-system"}, {Name: "opted-out", Labels: map[string]string{LabelIgnore: "true"}}, {Name: "team"}},
			mirrors: []*cached{mirrorIn("kube-system"), mirrorIn("opted-out"), mirrorIn("team")},
			want:    []string{"delete/kube-system", "delete/opted-out"}, wantWanted: 1,
		},
		{
			name:   "source outside the allowed source namespaces loses its mirrors",
			source: source("target"), policy: Policy{SourceNamespaces: Patterns{"secrets"}}, ns: namespaces("source", "target"),
			mirrors: []*cached{mirrorIn("target")},
			want:    []string{"delete/target"}, wantRefusal: "namespace source",
		},
		{
			name:   "a source over --max-source-size is refused",
			source: source("target"), policy: Policy{MaxSourceSize: 5}, ns: namespaces("source", "target"),
			mirrors: []*cached{mirrorIn("target")},
			want:    []string{"delete/target"}, wantRefusal: "6 bytes, more than the 5",
		},
		{
			name:   "a source at --max-source-size is mirrored",
			source: source("target"), policy: Policy{MaxSourceSize: 6}, ns: namespaces("source", "target"),
			want: []string{"create/target"}, wantWanted: 1,
		},
		{
			name:   "a source asking for more than --max-targets-per-source is refused",
			source: source("*"), policy: Policy{MaxTargetsPerSource: 2}, ns: namespaces("source", "a", "b", "c"),
			mirrors: []*cached{mirrorIn("a")},
			want:    []string{"delete/a"}, wantRefusal: "asks for 3 namespaces, more than the 2",
		},
		{
			name:   "excluded namespaces do not count against --max-targets-per-source",
			source: source("*"), policy: Policy{MaxTargetsPerSource: 2, ExcludedNamespaces: Patterns{"c"}}, ns: namespaces("source", "a", "b", "c"),
			want: []string{"create/a", "create/b"}, wantWanted: 2,
		},
		{
			name:   "an annotation over the limits is refused",
			source: source(strings.Repeat("x-*,", MaxGlobs+1)), ns: namespaces("source", "x-1"),
			mirrors: []*cached{mirrorIn("x-1")},
			want:    []string{"delete/x-1"}, wantRefusal: "over whisperer's limits",
		},
		{
			name: "objects that do not belong to the source are never touched",
			ns:   namespaces("target", "target2"),
			mirrors: []*cached{
				mirrorIn("target", func(m *cached) { m.Name = "copied-labels" }),
				mirrorIn("target2", func(m *cached) { m.Labels[LabelSourceNamespace] = "elsewhere" }),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mirrors := make([]metav1.Object, 0, len(tt.mirrors))
			for _, m := range tt.mirrors {
				mirrors = append(mirrors, m)
			}
			kind := tt.kind
			if kind == "" {
				kind = KindSecret
			}
			r := Plan(State{Kind: kind, Key: sourceKey, Source: tt.source, Policy: tt.policy, Namespaces: tt.ns, Mirrors: mirrors, ContentOf: contentOf})
			if got := summary(r.Actions); !slices.Equal(got, tt.want) {
				t.Errorf("actions = %v, want %v", got, tt.want)
			}
			if (r.Refusal == "") != (tt.wantRefusal == "") || !strings.Contains(r.Refusal, tt.wantRefusal) {
				t.Errorf("refusal = %q, want one containing %q", r.Refusal, tt.wantRefusal)
			}
			if r.Wanted != tt.wantWanted || r.Unknown != tt.wantUnknown {
				t.Errorf("wanted = %d, unknown = %d; want %d and %d", r.Wanted, r.Unknown, tt.wantWanted, tt.wantUnknown)
			}
		})
	}
}

func TestPlanCountsWhatThePolicyKeepsOut(t *testing.T) {
	ns := namespaces("source", "a", "b", "kube-system")
	r := Plan(State{Kind: KindSecret, Key: sourceKey, Source: source("*"), Policy: Policy{ExcludedNamespaces: Patterns{"kube-system"}}, Namespaces: ns, ContentOf: contentOf})
	if r.Wanted != 2 || r.NotAllowed != 1 {
		t.Errorf("wanted %d, not allowed %d; want 2 and 1", r.Wanted, r.NotAllowed)
	}
	r = Plan(State{Kind: KindSecret, Key: sourceKey, Source: source("*"), Policy: Policy{SourceNamespaces: Patterns{"elsewhere"}}, Namespaces: ns, ContentOf: contentOf})
	if r.Wanted != 0 || r.NotAllowed != 3 {
		t.Errorf("refused source: wanted %d, not allowed %d; want 0 and every namespace it asks for, 3", r.Wanted, r.NotAllowed)
	}
}

func TestContentDiff(t *testing.T) {
	tests := []struct {
		name             string
		source, existing Content
		want             ActionKind
	}{
		{name: "equal", source: opaque, existing: opaque},
		{name: "data differs", source: opaque, existing: Content{Type: opaque.Type, Digest: "other"}, want: Update},
		{name: "source made immutable is applied in place", source: Content{Type: opaque.Type, Digest: opaque.Digest, Immutable: true}, existing: opaque, want: Update},
		{name: "source made mutable again needs a recreate", source: opaque, existing: Content{Type: opaque.Type, Digest: opaque.Digest, Immutable: true}, want: Recreate},
		{name: "immutable mirror with other data needs a recreate", source: Content{Type: opaque.Type, Digest: "new", Immutable: true}, existing: Content{Type: opaque.Type, Digest: "old", Immutable: true}, want: Recreate},
		{name: "type differs", source: Content{Type: "example.com/custom", Digest: opaque.Digest}, existing: opaque, want: Recreate},
		{name: "size alone is no difference", source: opaque, existing: Content{Type: opaque.Type, Digest: opaque.Digest, Size: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.source.diff(tt.existing); got != tt.want {
				t.Errorf("diff = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMirrorMetadata(t *testing.T) {
	existingLabels := map[string]string{LabelMirror: "false", LabelSync: "true", "team": "a"}
	existingAnnotations := map[string]string{AnnotationNamespaces: "elsewhere", AnnotationNamespaceSelector: "x=y", "keep": "me",
		AnnotationCopyLabels: "*", AnnotationCopyAnnotations: "*"}
	labels, annotations := MirrorMetadata(sourceKey, Copied{}, existingLabels, existingAnnotations)
	want := map[string]string{LabelMirror: "true", LabelSourceName: "sync", LabelSourceNamespace: "source", "team": "a"}
	if !mapsEqual(labels, want) {
		t.Errorf("labels %v, want %v: the mirror labels set, the sync label removed, others kept", labels, want)
	}
	if !mapsEqual(annotations, map[string]string{"keep": "me"}) {
		t.Errorf("annotations %v, want the source annotations removed and others kept", annotations)
	}
	if existingLabels[LabelMirror] != "false" || existingAnnotations[AnnotationNamespaces] != "elsewhere" {
		t.Error("MirrorMetadata modified its arguments, which may be shared with a cache")
	}
	if labels, annotations := MirrorMetadata(sourceKey, Copied{}, nil, nil); !mapsEqual(labels, MirrorLabels(sourceKey)) || annotations != nil {
		t.Errorf("metadata of a new mirror %v, %v; want exactly the mirror labels, and no annotation", labels, annotations)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
