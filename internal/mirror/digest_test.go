package mirror

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestDigestedMirrorComparesLikeTheFullOne(t *testing.T) {
	src := sourceSecret("target")
	tests := []struct {
		name     string
		data     map[string][]byte
		wantKind ActionKind
	}{
		{name: "same data", data: map[string][]byte{"secret": []byte("s3cr3t")}, wantKind: ""},
		{name: "other value", data: map[string][]byte{"secret": []byte("other")}, wantKind: Update},
		{name: "extra key", data: map[string][]byte{"secret": []byte("s3cr3t"), "x": nil}, wantKind: Update},
		{name: "bytes moved between key and value", data: map[string][]byte{"secrets": []byte("3cr3t")}, wantKind: Update},
		{name: "no data", data: nil, wantKind: Update},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			full := Build(src, "target")
			full.Data = tt.data
			digested := full.DeepCopy()
			DigestData(digested)
			DigestData(digested) // a transform may run twice on one object
			if digested.Data != nil || len(digested.Labels[digestLabel]) != 32 {
				t.Fatalf("digested mirror: data %v, digest label %q; want no data and a SHA-256", digested.Data, digested.Labels[digestLabel])
			}
			kindFull, kindDigested := Diff(src, full), Diff(src, digested)
			if kindFull != tt.wantKind || kindDigested != tt.wantKind {
				t.Fatalf("Diff: full %q, digested %q, want %q", kindFull, kindDigested, tt.wantKind)
			}
			if kindDigested == Update {
				updated := Updated(src, digested)
				if _, leaked := updated.Labels[digestLabel]; leaked || string(updated.Data["secret"]) != "s3cr3t" {
					t.Errorf("update built from a digested mirror: labels %v, data %v; want no digest label and the source's data", updated.Labels, updated.Data)
				}
			}
		})
	}
}

func TestDigestOfNoDataIsStable(t *testing.T) {
	if string(digest(nil)) != string(digest(map[string][]byte{})) {
		t.Error("nil and empty data have different digests")
	}
}

// A Comparer hashes its source once and compares many mirrors with it: what it keeps must be the
// source's digest, whichever mirror it saw first.
func TestComparerKeepsTheSourceDigestAcrossMirrors(t *testing.T) {
	src := sourceSecret("target")
	stale, faithful := Build(src, "a"), Build(src, "b")
	stale.Data = map[string][]byte{"secret": []byte("old")}
	DigestData(stale)
	DigestData(faithful)
	compare := NewComparer(src)
	for i, tt := range []struct {
		mirror *corev1.Secret
		want   ActionKind
	}{{stale, Update}, {faithful, ""}, {stale, Update}, {Build(src, "c"), ""}} {
		if got := compare.Diff(tt.mirror); got != tt.want {
			t.Errorf("comparison %d (namespace %s): Diff = %q, want %q", i, tt.mirror.Namespace, got, tt.want)
		}
	}
}
