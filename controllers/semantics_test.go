package controllers

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// The mirroring semantics, one test per behaviour: see the behaviour table of the README.

// edit applies change to the live object and writes it, retrying on conflicts.
func edit[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change(obj)
		return k8s.Update(context.Background(), obj)
	})
	if err != nil {
		t.Fatalf("editing %s/%s: %v", obj.GetNamespace(), obj.GetName(), err)
	}
}

func deleteObject(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Delete(context.Background(), obj); err != nil {
		t.Fatalf("deleting %s/%s: %v", obj.GetNamespace(), obj.GetName(), err)
	}
}

// events lists the Events recorded on source with reason.
func events(t *testing.T, source *corev1.Secret, reason string) []eventsv1.Event {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(source.Namespace)); err != nil {
		t.Fatal(err)
	}
	var found []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == source.Name && e.Regarding.Kind == "Secret" && e.Reason == reason {
			found = append(found, e)
		}
	}
	return found
}

// waitForEvent waits for an Event on source with reason whose note contains all of parts.
func waitForEvent(t *testing.T, source *corev1.Secret, reason string, parts ...string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, fmt.Sprintf("%s Event on %s containing %q", reason, source.Name, parts), func() error {
		for _, e := range events(t, source, reason) {
			if containsAll(e.Note, parts...) {
				found = e
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	return found
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// settle gives the operator time to act on what it should not act on, before the test checks
// that it did not.
func settle() { time.Sleep(2 * time.Second) }

func TestSourceChangesReachEveryMirror(t *testing.T) {
	s := startSeed(t)
	edit(t, s.source, func(src *corev1.Secret) {
		src.Data = map[string][]byte{"new-key": []byte("new value")}
		src.StringData = map[string]string{"written-as-string": "plain text"}
	})
	s.waitForMirrors(t, s.target, s.target2)
	if _, ok := getSecret(t, s.target, "sync").Data["secret"]; ok {
		t.Error("a key removed from the source is still in the mirror")
	}
	if got := string(getSecret(t, s.target2, "sync").Data["written-as-string"]); got != "plain text" {
		t.Errorf("stringData key in the mirror = %q, want %q", got, "plain text")
	}
}

func TestSourceMadeImmutableMakesMirrorsImmutable(t *testing.T) {
	s := startSeed(t)
	edit(t, s.source, func(src *corev1.Secret) { src.Immutable = ptr.To(true) })
	eventually(t, "immutable mirrors", func() error {
		for _, ns := range []string{s.target, s.target2} {
			if m := getSecret(t, ns, "sync"); m == nil || m.Immutable == nil || !*m.Immutable {
				return fmt.Errorf("mirror in %s is not immutable", ns)
			}
		}
		return nil
	})
}

func TestTypeOrImmutabilityChangeRecreatesMirrors(t *testing.T) {
	s := startSeed(t)
	edit(t, s.source, func(src *corev1.Secret) { src.Immutable = ptr.To(true) })
	eventually(t, "immutable mirror", func() error {
		if m := getSecret(t, s.target, "sync"); m == nil || m.Immutable == nil || !*m.Immutable {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	// Type and immutability cannot change on a Secret: the user replaces the source. With the
	// operator down, it only sees the result.
	s.operator.stop()
	old := getSecret(t, s.target, "sync")
	deleteObject(t, s.source)
	replaced := sourceSecret(s.source.Namespace, "sync", s.target, s.target2)
	replaced.Type = corev1.SecretTypeDockerConfigJson
	replaced.Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}
	create(t, replaced)
	s.operator = startOperator(t)
	eventually(t, "mirrors recreated with the new type and data", func() error {
		for _, ns := range []string{s.target, s.target2} {
			m := getSecret(t, ns, "sync")
			switch {
			case m == nil:
				return fmt.Errorf("no mirror in %s", ns)
			case m.Type != corev1.SecretTypeDockerConfigJson || m.Immutable != nil && *m.Immutable:
				return fmt.Errorf("mirror in %s: type %s, immutable %v", ns, m.Type, m.Immutable)
			case !bytes.Equal(m.Data[corev1.DockerConfigJsonKey], replaced.Data[corev1.DockerConfigJsonKey]):
				return fmt.Errorf("mirror in %s has stale data", ns)
			}
		}
		return nil
	})
	if getSecret(t, s.target, "sync").UID == old.UID {
		t.Error("the immutable mirror was not recreated")
	}
}

func TestNamespaceRemovedFromAnnotationLosesItsMirror(t *testing.T) {
	s := startSeed(t)
	edit(t, s.source, func(src *corev1.Secret) { src.Annotations[mirror.AnnotationNamespaces] = s.target2 })
	s.waitForMirrors(t, s.target2)
}

func TestSourceThatStopsBeingASourceLosesEveryMirror(t *testing.T) {
	for name, change := range map[string]func(*corev1.Secret){
		"annotation removed":      func(src *corev1.Secret) { delete(src.Annotations, mirror.AnnotationNamespaces) },
		"sync label removed":      func(src *corev1.Secret) { delete(src.Labels, mirror.LabelSync) },
		"sync label set to false": func(src *corev1.Secret) { src.Labels[mirror.LabelSync] = "false" },
	} {
		t.Run(name, func(t *testing.T) {
			s := startSeed(t)
			edit(t, s.source, change)
			s.waitForMirrors(t)
		})
	}
}

func TestHandEditedMirrorLabelsAreRestored(t *testing.T) {
	for name, change := range map[string]func(*corev1.Secret){
		"mirror label edited":  func(m *corev1.Secret) { m.Labels[mirror.LabelMirror] = "false" },
		"mirror label removed": func(m *corev1.Secret) { delete(m.Labels, mirror.LabelMirror) },
		"made a source": func(m *corev1.Secret) {
			m.Labels[mirror.LabelSync] = "true"
			m.Annotations = map[string]string{mirror.AnnotationNamespaces: "default"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := startSeed(t)
			edit(t, getSecret(t, s.target, "sync"), func(m *corev1.Secret) {
				change(m)
				m.Labels["added-by-hand"] = "kept"
			})
			s.waitForMirrors(t, s.target, s.target2)
			if got := getSecret(t, s.target, "sync").Labels["added-by-hand"]; got != "kept" {
				t.Errorf("a label added to the mirror by hand was dropped: %q", got)
			}
			settle()
			if m := getSecret(t, "default", "sync"); m != nil && m.Labels[mirror.LabelSourceNamespace] == s.target {
				t.Error("a mirror labelled for sync was mirrored onward")
			}
		})
	}
}

func TestForeignSecretIsNeverTouchedAndTheMirrorFollowsItsRemoval(t *testing.T) {
	ns := names("source", "target", "taken")
	createNamespaces(t, ns...)
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sync", Namespace: ns[2], Labels: map[string]string{"owner": "someone-else"}},
		Data:       map[string][]byte{"theirs": []byte("keep me")},
	}
	create(t, foreign)
	before := getSecret(t, ns[2], "sync")
	// A retry interval longer than the test: the mirror must follow the foreign Secret's removal
	// because that removal is watched, not because the source polls.
	op := startOperator(t, withConflictRetry(time.Hour))
	source := sourceSecret(ns[0], "sync", ns[1], ns[2])
	create(t, source)

	waitForEvent(t, source, ReasonConflict, ns[2])
	if mirrors := mirrorsOf(t, source); !slices.Equal(mirrors, []string{ns[1]}) {
		t.Errorf("mirrors in %v, want only %s", mirrors, ns[1])
	}
	settle()
	if after := getSecret(t, ns[2], "sync"); after.ResourceVersion != before.ResourceVersion {
		t.Fatalf("the foreign Secret was modified: %v", after)
	}
	if n := len(events(t, source, ReasonConflict)); n != 1 {
		t.Errorf("%d Conflict Events after retries, want 1", n)
	}
	if writes := op.writes.in(ns[2]); len(writes) != 1 {
		t.Errorf("writes in the conflicting namespace %v, want the one create that found the Secret there", writes)
	}

	deleteObject(t, foreign)
	deleted := time.Now()
	eventually(t, "mirror created once the foreign Secret is gone", func() error {
		return checkFaithful(source, getSecret(t, ns[2], "sync"))
	})
	if took := time.Since(deleted); took > 2*time.Second {
		t.Errorf("the mirror followed the foreign Secret's deletion after %s, want within 2s", took)
	}
}

func TestSameNamedSourcesDoNotFightOverATarget(t *testing.T) {
	ns := names("first", "second", "target")
	createNamespaces(t, ns...)
	// A retry interval longer than the test: the second source must get the target because the
	// first mirror's deletion is an event, not because it polls.
	startOperator(t, withConflictRetry(time.Hour))
	first := sourceSecret(ns[0], "shared", ns[2])
	create(t, first)
	eventually(t, "first mirror", func() error { return checkFaithful(first, getSecret(t, ns[2], "shared")) })
	held := getSecret(t, ns[2], "shared")

	second := sourceSecret(ns[1], "shared", ns[2])
	second.Data = map[string][]byte{"other": []byte("data")}
	create(t, second)
	waitForEvent(t, second, ReasonConflict, ns[2])
	settle()
	if now := getSecret(t, ns[2], "shared"); now.ResourceVersion != held.ResourceVersion {
		t.Fatalf("the first source's mirror was written while the second source competed for it")
	}
	if len(events(t, first, ReasonConflict)) != 0 {
		t.Error("the first source, which holds the target, got a Conflict Event")
	}

	deleteObject(t, first)
	eventually(t, "second source takes the target over", func() error {
		return checkFaithful(second, getSecret(t, ns[2], "shared"))
	})
}

func TestSourcesOwnNamespaceIsSkipped(t *testing.T) {
	ns := names("source", "target")
	createNamespaces(t, ns...)
	startOperator(t)
	source := sourceSecret(ns[0], "self", ns[0], ns[1])
	create(t, source)
	eventually(t, "mirror in the target", func() error { return checkFaithful(source, getSecret(t, ns[1], "self")) })
	if got := mirrorsOf(t, source); !slices.Equal(got, []string{ns[1]}) {
		t.Errorf("mirrors in %v, want only %s", got, ns[1])
	}
	if len(events(t, source, ReasonConflict)) != 0 {
		t.Error("the source conflicts with itself")
	}
}

func TestBadAnnotationValuesAreReportedAndTheValidOnesServed(t *testing.T) {
	ns := names("source", "target", "target2", "good-source")
	createNamespaces(t, ns...)
	startOperator(t)
	bad := sourceSecret(ns[0], "bad")
	bad.Annotations[mirror.AnnotationNamespaces] = fmt.Sprintf(" %s ,, Target,%s ,a_b, %s,!!x,%s", ns[1], ns[2], ns[1], strings.Repeat("x", 64))
	good := sourceSecret(ns[3], "good", ns[1])
	create(t, bad)
	create(t, good)

	eventually(t, "valid entries served", func() error {
		if got := sorted(mirrorsOf(t, bad)); !slices.Equal(got, sorted([]string{ns[1], ns[2]})) {
			return fmt.Errorf("mirrors in %v", got)
		}
		return checkFaithful(good, getSecret(t, ns[1], "good"))
	})
	warning := waitForEvent(t, bad, ReasonInvalidNamespaces, `"Target"`, `"a_b"`, `"!!x"`, `"xxxx`)
	if warning.Type != corev1.EventTypeWarning {
		t.Errorf("InvalidNamespaces Event of type %s, want Warning", warning.Type)
	}
	settle()
	if n := len(events(t, bad, ReasonInvalidNamespaces)); n != 1 {
		t.Errorf("%d InvalidNamespaces Events, want one", n)
	}
}

func TestPatternsFollowNamespacesAsTheyComeAndGo(t *testing.T) {
	ns := names("source", "glob-a", "glob-b", "glob-c", "labelled")
	createNamespaces(t, ns[0], ns[1], ns[2], ns[4])
	startOperator(t)
	suffix := strings.TrimPrefix(ns[0], "source-")
	source := sourceSecret(ns[0], "patterned")
	source.Annotations[mirror.AnnotationNamespaces] = fmt.Sprintf("glob-a-%s,glob-?-%s, !%s", suffix, suffix, ns[2]) + ",glob-c-" + suffix
	source.Annotations[mirror.AnnotationNamespaceSelector] = "whisperer-test=" + suffix
	create(t, source)
	s := seed{source: source}
	s.waitForMirrors(t, ns[1])

	createNamespaces(t, ns[3])
	s.waitForMirrors(t, ns[1], ns[3])

	labelled := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns[4]}}
	edit(t, labelled, func(n *corev1.Namespace) { n.Labels = map[string]string{"whisperer-test": suffix} })
	s.waitForMirrors(t, ns[1], ns[3], ns[4])
	edit(t, labelled, func(n *corev1.Namespace) { n.Labels = map[string]string{"whisperer-test": "other"} })
	s.waitForMirrors(t, ns[1], ns[3])
}

func TestStarMirrorsIntoEveryNamespaceButTheExcluded(t *testing.T) {
	ns := names("source", "later")
	createNamespaces(t, ns[0])
	startOperator(t)
	name := "everywhere-" + strings.TrimPrefix(ns[0], "source-")
	source := sourceSecret(ns[0], name, "*", "!kube-system")
	create(t, source)
	for _, want := range []string{"default", "kube-public"} {
		eventually(t, "mirror in "+want, func() error { return checkFaithful(source, getSecret(t, want, name)) })
	}
	createNamespaces(t, ns[1])
	eventually(t, "mirror in a new namespace", func() error { return checkFaithful(source, getSecret(t, ns[1], name)) })
	for _, never := range []string{"kube-system", ns[0]} {
		if slices.Contains(mirrorsOf(t, source), never) {
			t.Errorf("mirror in %s", never)
		}
	}
	deleteObject(t, source)
	eventually(t, "every mirror removed", func() error {
		if got := mirrorsOf(t, source); len(got) > 0 {
			return fmt.Errorf("mirrors left in %v", got)
		}
		return nil
	})
}

func TestSourceNameLongerThanALabelValue(t *testing.T) {
	ns := names("source", "target")
	createNamespaces(t, ns...)
	startOperator(t)
	source := sourceSecret(ns[0], strings.Repeat("long-name.", 20)+"end", ns[1])
	create(t, source)
	eventually(t, "mirror of a long-named source", func() error { return checkFaithful(source, getSecret(t, ns[1], source.Name)) })
	deleteObject(t, source)
	eventually(t, "mirror of a long-named source removed", func() error {
		if getSecret(t, ns[1], source.Name) != nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

func TestTerminatingNamespaceCausesNoErrors(t *testing.T) {
	ns := names("source", "target", "ending")
	createNamespaces(t, ns...)
	// A finalizer on an object inside keeps the namespace terminating for as long as the test needs.
	held := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: ns[2], Finalizers: []string{"whisperer.test/hold"}}}
	create(t, held)
	t.Cleanup(func() { edit(t, held, func(c *corev1.ConfigMap) { c.Finalizers = nil }) })
	startOperator(t)
	source := sourceSecret(ns[0], "sync", ns[1], ns[2])
	create(t, source)
	(seed{source: source}).waitForMirrors(t, ns[1], ns[2])

	errorsBefore := reconcileErrors(t)
	deleteObject(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns[2]}})
	eventually(t, "namespace terminating", func() error {
		n := &corev1.Namespace{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: ns[2]}, n); err != nil || n.Status.Phase != corev1.NamespaceTerminating {
			return fmt.Errorf("phase %s, err %v", n.Status.Phase, err)
		}
		return nil
	})
	edit(t, source, func(src *corev1.Secret) { src.Data["secret"] = []byte("changed while a target terminates") })
	(seed{source: source}).waitForMirrors(t, ns[1])
	settle()
	if errs := reconcileErrors(t) - errorsBefore; errs != 0 {
		t.Errorf("%v reconcile errors with a terminating target namespace, want none", errs)
	}
}

func TestTokenSecretsAreRefused(t *testing.T) {
	ns := names("source", "target")
	createNamespaces(t, ns...)
	startOperator(t)
	// kube-controller-manager deletes service account tokens whose service account is missing.
	create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "token-owner", Namespace: ns[0]}})
	saToken := sourceSecret(ns[0], "sa-token", ns[1])
	saToken.Type = corev1.SecretTypeServiceAccountToken
	saToken.Annotations[corev1.ServiceAccountNameKey] = "token-owner"
	saToken.Data = nil
	bootstrap := sourceSecret(ns[0], "bootstrap-token-abcdef", ns[1])
	bootstrap.Type = corev1.SecretTypeBootstrapToken
	bootstrap.Data = map[string][]byte{"token-id": []byte("abcdef"), "token-secret": []byte("0123456789abcdef")}
	for _, source := range []*corev1.Secret{saToken, bootstrap} {
		create(t, source)
		waitForEvent(t, source, ReasonRefused, string(source.Type))
	}
	settle()
	for _, source := range []*corev1.Secret{saToken, bootstrap} {
		if got := mirrorsOf(t, source); len(got) > 0 {
			t.Errorf("%s mirrored into %v", source.Type, got)
		}
	}
}

func TestOneMebibyteSourceIsMirrored(t *testing.T) {
	ns := names("source", "target")
	createNamespaces(t, ns...)
	startOperator(t)
	source := sourceSecret(ns[0], "big", ns[1])
	source.Data = map[string][]byte{"a": bytes.Repeat([]byte{0xa5}, 1<<19), "b": bytes.Repeat([]byte("z"), 1<<19)}
	create(t, source)
	eventually(t, "1 MiB mirror", func() error { return checkFaithful(source, getSecret(t, ns[1], "big")) })
}

func TestConvergedClusterCostsNoWrite(t *testing.T) {
	s := startSeed(t)
	waitForEvent(t, s.source, ReasonMirrored, "created 2")
	ours := []string{s.source.Namespace, s.target, s.target2}
	if got := s.operator.writes.in(ours...); len(got) == 0 {
		t.Fatal("the write recorder saw no write while mirrors were created: it records nothing")
	}

	s.operator.stop()
	reconciledBefore := reconcileCount(t)
	restarted := startOperator(t, withResync(300*time.Millisecond))
	edit(t, s.source, func(src *corev1.Secret) { src.Annotations["unrelated"] = "touched to cause a reconcile" })
	// The restart, the touch and the periodic resync each reconcile the source.
	eventually(t, "reconciles after restart, touch and resyncs", func() error {
		if n := reconcileCount(t) - reconciledBefore; n < 5 {
			return fmt.Errorf("%v reconciles", n)
		}
		return nil
	})
	settle() // several resyncs of this source, whatever other sources the count includes
	if got := restarted.writes.in(ours...); len(got) > 0 {
		t.Errorf("a restart and resyncs of a converged source wrote %v, want no write", got)
	}
	if n := len(events(t, s.source, ReasonMirrored)); n != 1 {
		t.Errorf("%d Mirrored Events, want the one of the creation", n)
	}
}

// reconcileCount reads controller-runtime's count of reconciles of this controller.
func reconcileCount(t *testing.T) float64 {
	t.Helper()
	return counterValue(t, "controller_runtime_reconcile_total", "secretmirror")
}

// One source's mirror writes run in parallel, WriteConcurrency at once: one at a time, ten
// thousand namespaces would wait for the sum of ten thousand round trips.
func TestMirrorWritesRunInParallelUpToTheLimit(t *testing.T) {
	ns := names("source", "t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08", "t09", "t10", "t11")
	createNamespaces(t, ns...)
	op := startOperator(t) // WriteConcurrency 4, one reconcile at a time
	// Slow writes overlap however fast the API server answers.
	op.writes.secretWriteDelay.Store(int64(50 * time.Millisecond))
	source := sourceSecret(ns[0], "wide", ns[1:]...)
	create(t, source)
	seed{source: source}.waitForMirrors(t, ns[1:]...)
	if got := op.writes.mostInFlight(); got != 4 {
		t.Errorf("at most %d Secret writes were in flight at once, want 4 (the write concurrency)", got)
	}
}
