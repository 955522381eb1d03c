package controllers

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestCachedContentComparesLikeTheFullObject(t *testing.T) {
	secret := func(data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "n", Labels: map[string]string{"app": "x"}},
			Type:       corev1.SecretTypeDockerConfigJson, Data: data,
		}
	}
	cache := func(s *corev1.Secret) *corev1.Secret {
		obj, err := slimMirror(Secrets)(s.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		again, _ := slimMirror(Secrets)(obj) // a transform may run twice
		return again.(*corev1.Secret)
	}
	base := map[string][]byte{"a": []byte("bc"), "d": nil}
	full := secret(base)
	cached := cache(full)
	if cached.Data != nil {
		t.Errorf("the cached object keeps its data: %v", cached.Data)
	}
	if cached.Labels["app"] != "x" {
		t.Errorf("labels of the cached object %v; want the object's own kept", cached.Labels)
	}
	if got, want := cachedContent(Secrets, cached), contentOf(Secrets, full); got != want {
		t.Errorf("cached content %+v, want the full object's %+v", got, want)
	}
	if got := cachedContent(Secrets, cached).Size; got != len("a")+len("bc")+len("d") {
		t.Errorf("size %d, want the bytes of the keys and values, 4", got)
	}
	for name, data := range map[string]map[string][]byte{
		"a byte moved from a value to a key": {"ab": []byte("c"), "d": nil},
		"a key removed":                      {"a": []byte("bc")},
		"empty value and missing key differ": {"a": []byte("bc"), "d": nil, "e": {}},
	} {
		if cachedContent(Secrets, cache(secret(data))).Digest == cachedContent(Secrets, cached).Digest {
			t.Errorf("%s: same digest as the original", name)
		}
	}
	if a, b := contentOf(Secrets, secret(nil)), contentOf(Secrets, secret(map[string][]byte{})); a != b {
		t.Errorf("nil and empty data differ: %+v, %+v", a, b)
	}
}

func TestCacheKeysAreNoValidLabelKeys(t *testing.T) {
	for _, key := range []string{cachedDigestKey, cachedSizeKey} {
		if len(validation.IsQualifiedName(key)) == 0 {
			t.Errorf("%q is a valid label key: the API server could hand one to the cache, and would store it if sent", key)
		}
	}
	labels := map[string]string{"app": "x", cachedDigestKey: "d", cachedSizeKey: "1"}
	if got := withoutCacheKeys(labels); !maps.Equal(got, map[string]string{"app": "x"}) || len(labels) != 3 {
		t.Errorf("withoutCacheKeys = %v (and the original is now %v); want the object's own labels, the original untouched", got, labels)
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
