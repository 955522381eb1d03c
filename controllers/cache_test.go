package controllers

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

func TestContentDigestTellsDataApart(t *testing.T) {
	secret := func(data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n"}, Type: corev1.SecretTypeDockerConfigJson, Data: data}
	}
	base := contentOf(Secrets, secret(map[string][]byte{"a": []byte("bc"), "d": nil}))
	if base.Type != string(corev1.SecretTypeDockerConfigJson) || base.Size != len("a")+len("bc")+len("d") {
		t.Errorf("content %+v: want the type, and the bytes of the keys and values as the size", base)
	}
	for name, data := range map[string]map[string][]byte{
		"a byte moved from a value to a key": {"ab": []byte("c"), "d": nil},
		"a key removed":                      {"a": []byte("bc")},
		"empty value and missing key differ": {"a": []byte("bc"), "d": nil, "e": {}},
	} {
		if contentOf(Secrets, secret(data)).Digest == base.Digest {
			t.Errorf("%s: same digest as the original", name)
		}
	}
	if a, b := contentOf(Secrets, secret(nil)), contentOf(Secrets, secret(map[string][]byte{})); a != b {
		t.Errorf("nil and empty data differ: %+v, %+v", a, b)
	}
}

func TestContentIsKnownAtOneResourceVersion(t *testing.T) {
	c := newContents()
	written := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: "n", Name: "s", ResourceVersion: "2"}}
	c.set(written, mirror.Content{Digest: "d"})
	if got, known := c.of(written); !known || got.Digest != "d" {
		t.Errorf("content at the resourceVersion written: %+v, known %v", got, known)
	}
	edited := written.DeepCopy()
	edited.ResourceVersion = "3"
	if _, known := c.of(edited); known {
		t.Error("the content of a mirror changed since it was written is known: a hand edit would go unseen")
	}
	c.forget(written)
	if _, known := c.of(written); known {
		t.Error("the content of a deleted mirror is still known")
	}
}

func TestMetadataOfKeepsNoData(t *testing.T) {
	live := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", ResourceVersion: "7", Labels: map[string]string{"a": "b"},
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"data":{"k":"c2VjcmV0"}}`, "keep": "me"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Data: map[string][]byte{"k": []byte("secret")},
	}
	m := metadataOf(Secrets, live)
	if m.ResourceVersion != "7" || m.Labels["a"] != "b" || m.Annotations["keep"] != "me" || m.Kind != "Secret" {
		t.Errorf("metadata %+v: want the object's own", m)
	}
	if _, ok := m.Annotations[corev1.LastAppliedConfigAnnotation]; ok || m.ManagedFields != nil {
		t.Error("the metadata keeps kubectl's copy of the data, or managedFields")
	}
	if live.Annotations[corev1.LastAppliedConfigAnnotation] == "" {
		t.Error("metadataOf modified the object it read")
	}
}

func TestSlimNamespaceKeepsWhatSelectorsRead(t *testing.T) {
	tests := []struct {
		name       string
		labels     map[string]string
		wantCached map[string]string
	}{
		{name: "only the name label", labels: map[string]string{corev1.LabelMetadataName: "team-a"}, wantCached: nil},
		{name: "other labels stay", labels: map[string]string{corev1.LabelMetadataName: "team-a", "env": "prod"}, wantCached: map[string]string{"env": "prod"}},
		{name: "a name label that is not the name stays", labels: map[string]string{corev1.LabelMetadataName: "other"}, wantCached: map[string]string{corev1.LabelMetadataName: "other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
				Name: "team-a", Labels: maps.Clone(tt.labels), Annotations: map[string]string{"big": "annotation"},
			}}
			if _, err := slimNamespace(ns); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(ns.Labels, tt.wantCached) || ns.Annotations != nil {
				t.Errorf("cached labels %v, annotations %v; want labels %v and no annotations", ns.Labels, ns.Annotations, tt.wantCached)
			}
			cached := toNamespace(ns)
			for key, value := range tt.labels {
				if got, ok := cached.LabelSet().Lookup(key); !ok || got != value && key != corev1.LabelMetadataName {
					t.Errorf("LabelSet()[%s] = %q, %v; want %q", key, got, ok, value)
				}
			}
		})
	}
}
