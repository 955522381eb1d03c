package mirror

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
)

var sourceKey = types.NamespacedName{Namespace: "source", Name: "sync"}

func sourceSecret(annotation string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: sourceKey.Name, Namespace: sourceKey.Namespace,
			Labels:      map[string]string{LabelSync: "true", "app": "registry"},
			Annotations: map[string]string{AnnotationNamespaces: annotation, "note": "kept on the source"},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"secret": []byte("s3cr3t")},
	}
}

func withAnnotation(s *corev1.Secret, key, value string) *corev1.Secret {
	s.Annotations[key] = value
	return s
}

func withType(s *corev1.Secret, t corev1.SecretType) *corev1.Secret {
	s.Type = t
	return s
}

func namespaces(names ...string) []Namespace {
	var out []Namespace
	for _, name := range names {
		out = append(out, Namespace{Name: name})
	}
	return out
}

// summary renders actions as "kind/namespace" for compact comparisons.
func summary(actions []Action) []string {
	var out []string
	for _, a := range actions {
		out = append(out, fmt.Sprintf("%s/%s", a.Kind, a.Namespace))
	}
	return out
}

func TestPlan(t *testing.T) {
	src := sourceSecret("target,target2,missing")
	inSync := func(ns string) *corev1.Secret { return Build(src, ns) }
	edited := func(ns string, edit func(*corev1.Secret)) *corev1.Secret {
		m := Build(src, ns)
		edit(m)
		return m
	}
	tests := []struct {
		name    string
		secret  *corev1.Secret
		policy  Policy
		ns      []Namespace
		mirrors []*corev1.Secret
		want    []string
	}{
		{
			name:   "new source is mirrored into the listed namespaces that exist",
			secret: src, ns: namespaces("source", "target", "target2", "other"),
			want: []string{"create/target", "create/target2"},
		},
		{
			name:   "converged source needs no write",
			secret: src, ns: namespaces("source", "target", "target2"),
			mirrors: []*corev1.Secret{inSync("target"), inSync("target2")},
		},
		{
			name:   "a deleted mirror is recreated",
			secret: src, ns: namespaces("source", "target", "target2"),
			mirrors: []*corev1.Secret{inSync("target")},
			want:    []string{"create/target2"},
		},
		{
			name:   "deleted source: every mirror is deleted",
			secret: nil, ns: namespaces("source", "target", "target2"),
			mirrors: []*corev1.Secret{inSync("target"), inSync("target2")},
			want:    []string{"delete/target", "delete/target2"},
		},
		{
			name:   "mirror in a namespace no longer listed is deleted",
			secret: src, ns: namespaces("source", "target", "target2", "old"),
			mirrors: []*corev1.Secret{inSync("target"), inSync("target2"), inSync("old")},
			want:    []string{"delete/old"},
		},
		{
			name:   "the source's own namespace is skipped",
			secret: sourceSecret("source,target"), ns: namespaces("source", "target"),
			want: []string{"create/target"},
		},
		{
			name:    "terminating namespaces get no mirror and keep theirs until they are gone",
			secret:  sourceSecret("target,target2,old"),
			ns:      []Namespace{{Name: "target", Terminating: true}, {Name: "target2"}, {Name: "old", Terminating: true}},
			mirrors: []*corev1.Secret{inSync("old")},
			want:    []string{"create/target2"},
		},
		{
			name:   "hand-edited data is reverted",
			secret: src, ns: namespaces("target", "target2"),
			mirrors: []*corev1.Secret{edited("target", func(m *corev1.Secret) { m.Data["secret"] = []byte("changed") }), inSync("target2")},
			want:    []string{"update/target"},
		},
		{
			name:   "changed type needs a recreate",
			secret: src, ns: namespaces("target"),
			mirrors: []*corev1.Secret{edited("target", func(m *corev1.Secret) { m.Type = corev1.SecretTypeDockerConfigJson })},
			want:    []string{"recreate/target"},
		},
		{
			name:   "immutable mirror with stale data needs a recreate",
			secret: src, ns: namespaces("target"),
			mirrors: []*corev1.Secret{edited("target", func(m *corev1.Secret) { m.Immutable = ptr.To(true); m.Data = nil })},
			want:    []string{"recreate/target"},
		},
		{
			name:   "patterns: every namespace but the excluded ones and the source's own",
			secret: sourceSecret("*,!kube-*"), ns: namespaces("source", "default", "kube-system", "kube-public", "team-a"),
			want: []string{"create/default", "create/team-a"},
		},
		{
			name:   "namespace that stops matching loses its mirror",
			secret: sourceSecret("team-*"), ns: namespaces("source", "team-a", "other"),
			mirrors: []*corev1.Secret{inSync("team-a"), inSync("other")},
			want:    []string{"delete/other"},
		},
		{
			name:   "namespace selector",
			secret: withAnnotation(sourceSecret(""), AnnotationNamespaceSelector, "env=prod"),
			ns:     []Namespace{{Name: "source"}, {Name: "p", Labels: map[string]string{"env": "prod"}}, {Name: "d", Labels: map[string]string{"env": "dev"}}},
			want:   []string{"create/p"},
		},
		{
			name:   "refused source gets no mirror, and loses any it had",
			secret: withType(sourceSecret("target,target2"), corev1.SecretTypeServiceAccountToken), ns: namespaces("source", "target", "target2"),
			mirrors: []*corev1.Secret{inSync("target")},
			want:    []string{"delete/target"},
		},
		{
			name:   "excluded and opted-out namespaces get no mirror and lose theirs",
			secret: sourceSecret("*"), policy: Policy{ExcludedNamespaces: Patterns{"kube-*"}},
			ns:      []Namespace{{Name: "source"}, {Name: "kube-system"}, {Name: "opted-out", Labels: map[string]string{LabelIgnore: "true"}}, {Name: "team"}},
			mirrors: []*corev1.Secret{inSync("kube-system"), inSync("opted-out"), inSync("team")},
			want:    []string{"delete/kube-system", "delete/opted-out"},
		},
		{
			name:   "source outside the allowed source namespaces loses its mirrors",
			secret: src, policy: Policy{SourceNamespaces: Patterns{"secrets"}}, ns: namespaces("source", "target", "target2"),
			mirrors: []*corev1.Secret{inSync("target")},
			want:    []string{"delete/target"},
		},
		{
			name:   "Secrets that do not belong to the source are never touched",
			secret: nil, ns: namespaces("target", "target2"),
			mirrors: []*corev1.Secret{
				edited("target", func(m *corev1.Secret) { m.Name = "copied-labels" }),
				edited("target2", func(m *corev1.Secret) { m.Labels[LabelSourceNamespace] = "elsewhere" }),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var targets Targets
			if tt.secret != nil {
				targets = TargetsOf(tt.secret)
			}
			state := State{Source: sourceKey, Secret: tt.secret, Targets: targets, Namespaces: tt.ns, Mirrors: tt.mirrors, Policy: tt.policy}
			if tt.secret != nil {
				state.Refusal = tt.policy.Refusal(tt.secret)
			}
			actions, _ := Plan(state)
			got := summary(actions)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Plan() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBuildCopiesContentAndNeverTheSourceMarkers(t *testing.T) {
	src := sourceSecret("target")
	src.Immutable = ptr.To(true)
	got := Build(src, "target")

	wantLabels := map[string]string{LabelMirror: "true", LabelSourceName: "sync", LabelSourceNamespace: "source"}
	if fmt.Sprint(got.Labels) != fmt.Sprint(wantLabels) {
		t.Errorf("labels = %v, want exactly %v", got.Labels, wantLabels)
	}
	if len(got.Annotations) != 0 {
		t.Errorf("annotations = %v, want none", got.Annotations)
	}
	if got.Name != "sync" || got.Namespace != "target" || got.Type != corev1.SecretTypeOpaque || !isImmutable(got) || string(got.Data["secret"]) != "s3cr3t" {
		t.Errorf("Build() = %+v, want the source's name, type, immutability and data in namespace target", got)
	}
	got.Data["secret"] = []byte("mutated")
	if string(src.Data["secret"]) != "s3cr3t" {
		t.Error("Build() shares the source's data map: writing the mirror would change the source")
	}
}

func TestDiffAndUpdated(t *testing.T) {
	src := sourceSecret("target")
	tests := []struct {
		name     string
		edit     func(*corev1.Secret)
		source   func(*corev1.Secret)
		wantKind ActionKind
		check    func(t *testing.T, updated *corev1.Secret)
	}{
		{name: "in sync", edit: func(*corev1.Secret) {}, wantKind: ""},
		{name: "labels and annotations added by others are no difference", edit: func(m *corev1.Secret) {
			m.Labels["team"] = "a"
			m.Annotations = map[string]string{"argocd": "x"}
		}, wantKind: ""},
		{name: "removed key is removed", edit: func(m *corev1.Secret) { m.Data["extra"] = []byte("x") }, wantKind: Update,
			check: func(t *testing.T, u *corev1.Secret) {
				if _, ok := u.Data["extra"]; ok || len(u.Data) != 1 {
					t.Errorf("data = %v, want exactly the source's keys", u.Data)
				}
			}},
		{name: "mirror label edited", edit: func(m *corev1.Secret) { m.Labels[LabelMirror] = "false"; m.Labels["team"] = "a" }, wantKind: Update,
			check: func(t *testing.T, u *corev1.Secret) {
				if u.Labels[LabelMirror] != "true" || u.Labels["team"] != "a" {
					t.Errorf("labels = %v, want the mirror label restored and others kept", u.Labels)
				}
			}},
		{name: "sync label and namespaces annotation added to the mirror are removed", edit: func(m *corev1.Secret) {
			m.Labels[LabelSync] = "true"
			m.Annotations = map[string]string{AnnotationNamespaces: "elsewhere", "keep": "me"}
		}, wantKind: Update,
			check: func(t *testing.T, u *corev1.Secret) {
				_, sync := u.Labels[LabelSync]
				_, ns := u.Annotations[AnnotationNamespaces]
				if sync || ns || u.Annotations["keep"] != "me" {
					t.Errorf("labels %v, annotations %v: want no source markers and other annotations kept", u.Labels, u.Annotations)
				}
			}},
		{name: "source made immutable is applied in place", source: func(s *corev1.Secret) { s.Immutable = ptr.To(true) }, edit: func(*corev1.Secret) {}, wantKind: Update,
			check: func(t *testing.T, u *corev1.Secret) {
				if !isImmutable(u) {
					t.Error("want the mirror immutable")
				}
			}},
		{name: "source made mutable again needs a recreate", edit: func(m *corev1.Secret) { m.Immutable = ptr.To(true) }, wantKind: Recreate},
		{name: "type differs", source: func(s *corev1.Secret) { s.Type = "example.com/custom" }, edit: func(*corev1.Secret) {}, wantKind: Recreate},
		{name: "empty and nil data are the same", source: func(s *corev1.Secret) { s.Data = nil }, edit: func(m *corev1.Secret) { m.Data = map[string][]byte{} }, wantKind: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			source := src.DeepCopy()
			if tt.source != nil {
				tt.source(source)
			}
			existing := Build(src, "target")
			tt.edit(existing)
			before := existing.DeepCopy()
			kind := Diff(source, existing)
			var updated *corev1.Secret
			if kind == Update {
				updated = Updated(source, existing)
			}
			if kind != tt.wantKind {
				t.Fatalf("Diff() = %q, want %q", kind, tt.wantKind)
			}
			if fmt.Sprint(existing) != fmt.Sprint(before) {
				t.Error("Diff or Updated modified the existing object, which may be shared with the cache")
			}
			if tt.check != nil {
				tt.check(t, updated)
			}
		})
	}
}

func TestOwnedBy(t *testing.T) {
	mirror := Build(sourceSecret("target"), "target")
	tests := []struct {
		name string
		edit func(*corev1.Secret)
		want bool
	}{
		{name: "mirror of this source", edit: func(*corev1.Secret) {}, want: true},
		{name: "mirror label removed is still ours, to be repaired", edit: func(m *corev1.Secret) { delete(m.Labels, LabelMirror) }, want: true},
		{name: "other source name", edit: func(m *corev1.Secret) { m.Labels[LabelSourceName] = "other" }, want: false},
		{name: "other source namespace", edit: func(m *corev1.Secret) { m.Labels[LabelSourceNamespace] = "other" }, want: false},
		{name: "no labels", edit: func(m *corev1.Secret) { m.Labels = nil }, want: false},
		{name: "labels copied onto a Secret of another name", edit: func(m *corev1.Secret) { m.Name = "other" }, want: false},
	}
	t.Run("source name longer than a label value", func(t *testing.T) {
		long := sourceKey
		long.Name = strings.Repeat("a", 200)
		src := sourceSecret("target")
		src.Name = long.Name
		m := Build(src, "target")
		if !OwnedBy(m, long) {
			t.Errorf("the mirror of %s is not OwnedBy it", long)
		}
		other := long
		other.Name = strings.Repeat("a", 199) + "b"
		if OwnedBy(m, other) {
			t.Error("a mirror is OwnedBy another long-named source that shares its label prefix")
		}
		if errs := validation.IsValidLabelValue(m.Labels[LabelSourceName]); len(errs) > 0 {
			t.Errorf("name label %q is not a valid label value: %v", m.Labels[LabelSourceName], errs)
		}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mirror.DeepCopy()
			tt.edit(m)
			if got := OwnedBy(m, sourceKey); got != tt.want {
				t.Errorf("OwnedBy() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSelectors(t *testing.T) {
	tests := []struct {
		name           string
		labels         map[string]string
		source, mirror bool
	}{
		{name: "source", labels: map[string]string{LabelSync: "true"}, source: true},
		{name: "sync label not true", labels: map[string]string{LabelSync: "yes"}},
		{name: "mirror", labels: map[string]string{LabelMirror: "true"}, mirror: true},
		{name: "mirror labelled for sync is not a source", labels: map[string]string{LabelMirror: "true", LabelSync: "true"}, mirror: true},
		{name: "mirror label edited", labels: map[string]string{LabelMirror: "false"}, mirror: true},
		{name: "unrelated", labels: map[string]string{"app": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Labels: tt.labels}}
			if got := SourceSelector().Matches(labels.Set(secret.Labels)); got != tt.source {
				t.Errorf("SourceSelector matches = %v, want %v", got, tt.source)
			}
			if got := IsSource(secret); got != tt.source {
				t.Errorf("IsSource = %v, want %v (it must agree with SourceSelector)", got, tt.source)
			}
			if got := MirrorSelector().Matches(labels.Set(secret.Labels)); got != tt.mirror {
				t.Errorf("MirrorSelector matches = %v, want %v", got, tt.mirror)
			}
		})
	}
}
