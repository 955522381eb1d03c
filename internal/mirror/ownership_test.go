package mirror

import (
	"maps"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestOwnedBy(t *testing.T) {
	tests := []struct {
		name string
		edit func(*cached)
		want bool
	}{
		{name: "mirror of this source", edit: func(*cached) {}, want: true},
		{name: "mirror label removed is still ours, to be repaired", edit: func(m *cached) { delete(m.Labels, LabelMirror) }, want: true},
		{name: "other source name", edit: func(m *cached) { m.Labels[LabelSourceName] = "other" }, want: false},
		{name: "other source namespace", edit: func(m *cached) { m.Labels[LabelSourceNamespace] = "other" }, want: false},
		{name: "no labels", edit: func(m *cached) { m.Labels = nil }, want: false},
		{name: "labels copied onto an object of another name", edit: func(m *cached) { m.Name = "other" }, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := OwnedBy(mirrorIn("target", tt.edit), sourceKey); got != tt.want {
				t.Errorf("OwnedBy() = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("source name longer than a label value", func(t *testing.T) {
		long := sourceKey
		long.Name = strings.Repeat("a", 200)
		m := &cached{ObjectMeta: metav1.ObjectMeta{Name: long.Name, Namespace: "target", Labels: MirrorLabels(long)}}
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
}

func TestSelectors(t *testing.T) {
	tests := []struct {
		name           string
		labels         map[string]string
		deleting       bool
		source, mirror bool
	}{
		{name: "source", labels: map[string]string{LabelSync: "true"}, source: true},
		{name: "source being deleted is no longer one", labels: map[string]string{LabelSync: "true"}, deleting: true},
		{name: "sync label not true", labels: map[string]string{LabelSync: "yes"}},
		{name: "mirror", labels: MirrorLabels(sourceKey), mirror: true},
		{name: "mirror labelled for sync is not a source", labels: withLabel(MirrorLabels(sourceKey), LabelSync, "true"), mirror: true},
		{name: "mirror label edited", labels: withLabel(MirrorLabels(sourceKey), LabelMirror, "false"), mirror: true},
		{name: "mirror that lost its mirror label and was labelled for sync is still a mirror",
			labels: withLabel(withoutLabel(MirrorLabels(sourceKey), LabelMirror), LabelSync, "true"), mirror: true},
		{name: "a mirror label alone claims no source", labels: map[string]string{LabelMirror: "true"}},
		{name: "unrelated", labels: map[string]string{"app": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &cached{ObjectMeta: metav1.ObjectMeta{Name: "sync", Labels: tt.labels}}
			if tt.deleting {
				obj.DeletionTimestamp = &metav1.Time{}
			}
			if got := SourceSelector().Matches(labels.Set(obj.Labels)); got != tt.source && !tt.deleting {
				t.Errorf("SourceSelector matches = %v, want %v", got, tt.source)
			}
			if got := IsSource(obj); got != tt.source {
				t.Errorf("IsSource = %v, want %v (it must agree with SourceSelector)", got, tt.source)
			}
			if got := MirrorSelector().Matches(labels.Set(obj.Labels)); got != tt.mirror {
				t.Errorf("MirrorSelector matches = %v, want %v", got, tt.mirror)
			}
			if _, claims := SourceOf(obj); claims != tt.mirror {
				t.Errorf("SourceOf claims = %v, want %v (it must agree with MirrorSelector)", claims, tt.mirror)
			}
		})
	}
}

func withLabel(l map[string]string, key, value string) map[string]string {
	l = maps.Clone(l)
	l[key] = value
	return l
}

func withoutLabel(l map[string]string, key string) map[string]string {
	l = maps.Clone(l)
	delete(l, key)
	return l
}
