package controllers

import (
	"fmt"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// Labels and annotations copied from sources to their mirrors: the copy annotations, the
// deny-list, and the record on each mirror of what whisperer copied.

// waitForMirrorMetadata waits until the mirrors of source in namespaces carry labels and
// annotations among theirs, an empty value meaning that the mirror must not carry the key.
func waitForMirrorMetadata(t *testing.T, source client.Object, namespaces []string, labels, annotations map[string]string) {
	t.Helper()
	k := kindOf(source)
	eventually(t, fmt.Sprintf("labels %v and annotations %v on the mirrors of %s", labels, annotations, source.GetName()), func() error {
		for _, ns := range namespaces {
			m := getObject(t, k, ns, source.GetName())
			if err := checkFaithful(source, m); err != nil {
				return fmt.Errorf("mirror in %s: %w", ns, err)
			}
			if err := carries(m.GetLabels(), labels); err != nil {
				return fmt.Errorf("labels of the mirror in %s: %w", ns, err)
			}
			if err := carries(m.GetAnnotations(), annotations); err != nil {
				return fmt.Errorf("annotations of the mirror in %s: %w", ns, err)
			}
		}
		return nil
	})
}

// carries returns why m does not hold want's entries, an empty value meaning no such key, or nil.
func carries(m, want map[string]string) error {
	for key, value := range want {
		got, ok := m[key]
		switch {
		case value == "" && ok:
			return fmt.Errorf("%s=%q, want none", key, got)
		case value != "" && got != value:
			return fmt.Errorf("%s=%q, want %q (all: %v)", key, got, value, m)
		}
	}
	return nil
}

// copying gives source labels and annotations, with the copy annotations copyLabels and
// copyAnnotations.
func copying(source client.Object, copyLabels, copyAnnotations string, labels, annotations map[string]string) {
	maps.Copy(source.GetLabels(), labels)
	maps.Copy(source.GetAnnotations(), annotations)
	source.GetAnnotations()[mirror.AnnotationCopyLabels] = copyLabels
	source.GetAnnotations()[mirror.AnnotationCopyAnnotations] = copyAnnotations
}

func TestCopiedLabelsAndAnnotationsFollowTheSource(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		targets := []string{s.target, s.target2}
		edit(t, s.source, func(src client.Object) {
			copying(src, "team, tier", "example.com/*",
				map[string]string{"team": "a", "tier": "b", "not-asked": "c"},
				map[string]string{"example.com/note": "n", "other.example/note": "o"})
		})
		waitForMirrorMetadata(t, s.source, targets,
			map[string]string{"team": "a", "tier": "b", "not-asked": ""},
			map[string]string{"example.com/note": "n", "other.example/note": "", mirror.AnnotationCopyLabels: "", mirror.AnnotationCopyAnnotations: ""})

		// Someone else labels and annotates a mirror: theirs, kept through every change below.
		edit(t, s.mirror(t, s.target), func(m client.Object) {
			m.GetLabels()["theirs"] = "x"
			m.GetAnnotations()["their-note"] = "y"
		})
		// A value changed, a label removed from the source, an annotation no longer matched.
		edit(t, s.source, func(src client.Object) {
			src.GetLabels()["team"] = "a2"
			delete(src.GetLabels(), "tier")
			src.GetAnnotations()[mirror.AnnotationCopyAnnotations] = "other.example/*"
		})
		waitForMirrorMetadata(t, s.source, targets,
			map[string]string{"team": "a2", "tier": ""}, map[string]string{"example.com/note": "", "other.example/note": "o"})
		waitForMirrorMetadata(t, s.source, []string{s.target}, map[string]string{"theirs": "x"}, map[string]string{"their-note": "y"})

		// Copying stopped: the mirrors carry what they carried before it, and what others added.
		edit(t, s.source, func(src client.Object) {
			delete(src.GetAnnotations(), mirror.AnnotationCopyLabels)
			delete(src.GetAnnotations(), mirror.AnnotationCopyAnnotations)
		})
		waitForMirrorMetadata(t, s.source, targets,
			map[string]string{"team": ""}, map[string]string{"other.example/note": "", mirror.AnnotationCopiedLabels: "", mirror.AnnotationCopiedAnnotations: ""})
		waitForMirrorMetadata(t, s.source, []string{s.target}, map[string]string{"theirs": "x"}, map[string]string{"their-note": "y"})
	})
}

func TestHandEditOfACopiedKeyIsReverted(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		edit(t, s.source, func(src client.Object) {
			copying(src, "team", "cnpg.io/reload", map[string]string{"team": "a"}, map[string]string{"cnpg.io/reload": "true"})
		})
		want := map[string]string{"cnpg.io/reload": "true"}
		waitForMirrorMetadata(t, s.source, []string{s.target}, map[string]string{"team": "a"}, want)
		// Each copied key on its own: the revert of one must not hide that of the other.
		edit(t, s.mirror(t, s.target), func(m client.Object) {
			m.GetLabels()["team"] = "edited"
			m.GetLabels()["theirs"] = "x"
		})
		waitForMirrorMetadata(t, s.source, []string{s.target}, map[string]string{"team": "a", "theirs": "x"}, want)
		edit(t, s.mirror(t, s.target), func(m client.Object) { delete(m.GetAnnotations(), "cnpg.io/reload") })
		waitForMirrorMetadata(t, s.source, []string{s.target}, map[string]string{"team": "a", "theirs": "x"}, want)
	})
}

// The deny-list wins over *: Argo CD's tracking label and annotation, Helm's ownership and the
// keys --deny-metadata adds never reach a mirror; the source gets one Warning that names them,
// and the other keys are copied.
func TestDenyListWinsOverStar(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("source", "target")
		createNamespaces(t, ns...)
		startOperator(t, withPolicy(mirror.Policy{DeniedMetadata: mirror.ParseKeys("example.com/*")}))
		source := k.newSource(ns[0], "repo-creds", ns[1])
		copying(source, "*", "*",
			map[string]string{"argocd.argoproj.io/secret-type": "repo-creds", "app.kubernetes.io/instance": "platform",
				"app.kubernetes.io/managed-by": "Helm", "example.com/owner": "team-a", "team": "a",
			},
			map[string]string{
				"argocd.argoproj.io/tracking-id": "platform:/Secret:" + ns[0] + "/repo-creds",
				"meta.helm.sh/release-name":      "platform", "cnpg.io/reload": "true",
			})
		create(t, source)
		waitForMirrorMetadata(t, source, []string{ns[1]},
			map[string]string{"argocd.argoproj.io/secret-type": "repo-creds", "team": "a",
				"app.kubernetes.io/instance": "", "app.kubernetes.io/managed-by": "", "example.com/owner": "",
				mirror.LabelSync: "",
			},
			map[string]string{
				"cnpg.io/reload": "true", "argocd.argoproj.io/tracking-id": "", "meta.helm.sh/release-name": "",
				mirror.AnnotationNamespaces: "", mirror.AnnotationCopyLabels: "", mirror.AnnotationCopyAnnotations: "",
				mirror.AnnotationCopiedLabels: "argocd.argoproj.io/secret-type,team",
			})
		warning := waitForEvent(t, source, ReasonDeniedMetadata, "label app.kubernetes.io/instance", "label app.kubernetes.io/managed-by",
			"label example.com/owner", "annotation argocd.argoproj.io/tracking-id", "annotation meta.helm.sh/release-name")
		if warning.Type != corev1.EventTypeWarning {
			t.Errorf("DeniedMetadata Event of type %s, want Warning", warning.Type)
		}
		edit(t, source, func(src client.Object) { src.GetLabels()["team"] = "b" })
		waitForMirrorMetadata(t, source, []string{ns[1]}, map[string]string{"team": "b"}, nil)
		waitReconciled(t, source)
		if got := notes(t, source, ReasonDeniedMetadata); len(got) != 1 {
			t.Errorf("DeniedMetadata notes %q after another reconcile, want the one", got)
		}
	})
}

func TestInvalidCopyEntriesAreReportedAndTheValidOnesServed(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		edit(t, s.source, func(src client.Object) {
			copying(src, "team,Bad Key", "a/b/c", map[string]string{"team": "a"}, nil)
		})
		waitForMirrorMetadata(t, s.source, []string{s.target, s.target2}, map[string]string{"team": "a"}, nil)
		waitForEvent(t, s.source, ReasonInvalidMetadata, mirror.AnnotationCopyLabels+` "Bad Key"`, mirror.AnnotationCopyAnnotations+` "a/b/c"`)
	})
}

func TestCopyingMetadataCostsNoWriteWhenConverged(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		edit(t, s.source, func(src client.Object) {
			copying(src, "team", "example.com/*", map[string]string{"team": "a"}, map[string]string{"example.com/note": "n"})
		})
		waitForMirrorMetadata(t, s.source, []string{s.target, s.target2}, map[string]string{"team": "a"}, map[string]string{"example.com/note": "n"})
		checkConvergedCostsNoWrite(t, s)
	})
}
