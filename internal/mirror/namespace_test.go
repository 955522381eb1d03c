package mirror

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

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
			SlimNamespace(ns)
			if !maps.Equal(ns.Labels, tt.wantCached) || ns.Annotations != nil {
				t.Errorf("cached labels %v, annotations %v; want labels %v and no annotations", ns.Labels, ns.Annotations, tt.wantCached)
			}
			cached := Namespace{Name: ns.Name, Labels: ns.Labels}
			for key, value := range tt.labels {
				if got, ok := cached.LabelSet().Lookup(key); !ok || got != value && key != corev1.LabelMetadataName {
					t.Errorf("LabelSet()[%s] = %q, %v; want %q", key, got, ok, value)
				}
			}
			targets := ParseTargets("", corev1.LabelMetadataName+" in (team-a)")
			if tt.labels[corev1.LabelMetadataName] == "team-a" && !targets.Matches(cached) {
				t.Error("a selector on kubernetes.io/metadata.name no longer matches the slimmed namespace")
			}
		})
	}
}

func TestDigestLabelIsNoValidLabelKey(t *testing.T) {
	if len(validation.IsQualifiedName(digestLabel)) == 0 {
		t.Fatalf("%q is a valid label key: the API server could hand one to the cache, and would store it if sent", digestLabel)
	}
}
