package controllers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// The mirroring semantics, one test per behaviour of the README's table, each for every kind
// whisperer mirrors unless the behaviour is one kind's own.

// edit applies change to the live object and writes it, retrying on conflicts.
func edit[T client.Object](t *testing.T, obj T, change func(T)) {
	t.Helper()
	if err := tryEdit(obj, change); err != nil {
		t.Fatalf("editing %s/%s: %v", obj.GetNamespace(), obj.GetName(), err)
	}
}

// tryEdit is edit, returning its error: for goroutines other than the test's, which must not
// call t.Fatal.
func tryEdit[T client.Object](obj T, change func(T)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change(obj)
		return k8s.Update(context.Background(), obj)
	})
}

func deleteObject(t *testing.T, obj client.Object) {
	t.Helper()
	if err := k8s.Delete(context.Background(), obj); err != nil {
		t.Fatalf("deleting %s/%s: %v", obj.GetNamespace(), obj.GetName(), err)
	}
}

// events lists the Events recorded on source with reason.
func events(t *testing.T, source client.Object, reason string) []eventsv1.Event {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(source.GetNamespace())); err != nil {
		t.Fatal(err)
	}
	var found []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == source.GetName() && e.Regarding.Kind == kindOf(source).name && e.Reason == reason {
			found = append(found, e)
		}
	}
	return found
}

// waitForEvent waits for an Event on source with reason whose note contains all of parts.
func waitForEvent(t *testing.T, source client.Object, reason string, parts ...string) eventsv1.Event {
	t.Helper()
	var found eventsv1.Event
	eventually(t, fmt.Sprintf("%s Event on %s containing %q", reason, source.GetName(), parts), func() error {
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

func TestSourceChangesReachEveryMirror(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		edit(t, s.source, func(src client.Object) {
			k.setData(src, map[string]string{"new-key": "new value", "binary:new-blob": "\x00\x01"})
		})
		s.waitForMirrors(t, s.target, s.target2)
	})
	t.Run("Secret stringData", func(t *testing.T) {
		s := startSeed(t, secretKindT)
		edit(t, s.source.(*corev1.Secret), func(src *corev1.Secret) {
			src.StringData = map[string]string{"written-as-string": "plain text"}
		})
		eventually(t, "the stringData key in the mirror", func() error {
			if got := string(getSecret(t, s.target2, "sync").Data["written-as-string"]); got != "plain text" {
				return fmt.Errorf("stringData key in the mirror = %q, want %q", got, "plain text")
			}
			return nil
		})
	})
}

// A source made immutable makes its mirrors immutable in place: they keep their UID.
func TestSourceMadeImmutableMakesMirrorsImmutable(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		before := s.mirror(t, s.target).GetUID()
		edit(t, s.source, func(src client.Object) { setImmutable(src) })
		s.waitForMirrors(t, s.target, s.target2)
		if after := s.mirror(t, s.target).GetUID(); after != before {
			t.Errorf("the mirror was recreated (UID %s, then %s), want it made immutable in place", before, after)
		}
	})
}

func setImmutable(obj client.Object) {
	switch o := obj.(type) {
	case *corev1.Secret:
		o.Immutable = ptr.To(true)
	case *corev1.ConfigMap:
		o.Immutable = ptr.To(true)
	}
}

// An immutable source cannot change: the user replaces it. The mirrors follow, recreated.
func TestReplacedImmutableSourceRecreatesMirrors(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		edit(t, s.source, func(src client.Object) { setImmutable(src) })
		s.waitForMirrors(t, s.target, s.target2)
		old := s.mirror(t, s.target)
		// With the operator down, it only sees the result.
		s.operator.stop()
		deleteObject(t, s.source)
		replaced := k.newSource(s.source.GetNamespace(), "sync", s.target, s.target2)
		k.setData(replaced, map[string]string{"rotated": "new data"})
		if secret, ok := replaced.(*corev1.Secret); ok {
			secret.Type = corev1.SecretTypeDockerConfigJson
			secret.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{}}`)
		}
		create(t, replaced)
		s.source = replaced
		s.operator = startOperator(t)
		s.waitForMirrors(t, s.target, s.target2)
		if s.mirror(t, s.target).GetUID() == old.GetUID() {
			t.Error("the immutable mirror was not recreated")
		}
	})
}

func TestNamespaceRemovedFromAnnotationLosesItsMirror(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		edit(t, s.source, func(src client.Object) { src.GetAnnotations()[mirror.AnnotationNamespaces] = s.target2 })
		s.waitForMirrors(t, s.target2)
	})
}

func TestSourceThatStopsBeingASourceLosesEveryMirror(t *testing.T) {
	for name, change := range map[string]func(client.Object){
		"annotation removed":      func(src client.Object) { delete(src.GetAnnotations(), mirror.AnnotationNamespaces) },
		"sync label removed":      func(src client.Object) { delete(src.GetLabels(), mirror.LabelSync) },
		"sync label set to false": func(src client.Object) { src.GetLabels()[mirror.LabelSync] = "false" },
	} {
		t.Run(name, func(t *testing.T) {
			forEachKind(t, func(t *testing.T, k testKind) {
				s := startSeed(t, k)
				edit(t, s.source, change)
				s.waitForMirrors(t)
			})
		})
	}
}

// Labels and annotations others add to a mirror are kept when whisperer repairs it; the source
// markers someone adds are removed, and a mirror labelled for sync is never a source, even with
// its mirror label removed: the cache that holds sources does not select it.
func TestHandEditedMirrorLabelsAreRestored(t *testing.T) {
	for name, change := range map[string]func(client.Object){
		"mirror label edited":  func(m client.Object) { m.GetLabels()[mirror.LabelMirror] = "false" },
		"mirror label removed": func(m client.Object) { delete(m.GetLabels(), mirror.LabelMirror) },
		"made a source": func(m client.Object) {
			m.GetLabels()[mirror.LabelSync] = "true"
			m.SetAnnotations(map[string]string{mirror.AnnotationNamespaces: "default"})
		},
		"mirror label removed and made a source": func(m client.Object) {
			delete(m.GetLabels(), mirror.LabelMirror)
			m.GetLabels()[mirror.LabelSync] = "true"
			m.SetAnnotations(map[string]string{mirror.AnnotationNamespaces: "default"})
		},
	} {
		t.Run(name, func(t *testing.T) {
			forEachKind(t, func(t *testing.T, k testKind) {
				s := startSeed(t, k)
				edit(t, s.mirror(t, s.target), func(m client.Object) {
					change(m)
					m.GetLabels()["added-by-hand"] = "kept"
				})
				s.waitForMirrors(t, s.target, s.target2)
				if got := s.mirror(t, s.target).GetLabels()["added-by-hand"]; got != "kept" {
					t.Errorf("a label added to the mirror by hand was dropped: %q", got)
				}
				// Had the edited mirror been taken for a source, it would have been reconciled.
				if got := reconcileSpans(map[attribute.Key]string{attrSourceNamespace: s.target, attrSourceName: "sync"}); len(got) > 0 {
					t.Errorf("the mirror labelled for sync was reconciled as a source %d times", len(got))
				}
			})
		})
	}
}

func TestAnnotationsOthersAddToAMirrorAreKept(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		edit(t, s.mirror(t, s.target), func(m client.Object) {
			m.SetAnnotations(map[string]string{"argocd.argoproj.io/sync-options": "Prune=false"})
		})
		edit(t, s.source, func(src client.Object) { k.setData(src, map[string]string{"rotated": "yes"}) })
		s.waitForMirrors(t, s.target, s.target2)
		if got := s.mirror(t, s.target).GetAnnotations()["argocd.argoproj.io/sync-options"]; got != "Prune=false" {
			t.Errorf("an annotation someone added to the mirror: %q after an update, want it kept", got)
		}
	})
}

// A user who edits a mirror while whisperer writes it never has the edit overwritten: every
// update is conditional on the resourceVersion whisperer read, so the one that loses the race
// is refused (409), and whisperer reads again and keeps what the user added.
func TestConcurrentEditOfAMirrorIsNeverOverwritten(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		conflictsBefore := mirrorErrorCount(t, k, mirror.Update)
		// whisperer's writes take a second: long enough for the user's edit to land first.
		s.operator.writes.writeDelay.Store(int64(time.Second))
		edit(t, s.source, func(src client.Object) { k.setData(src, map[string]string{"rotated": "yes"}) })
		s.operator.writes.waitInFlight(t) // whisperer has read the mirrors and holds its updates
		edit(t, s.mirror(t, s.target), func(m client.Object) { m.GetLabels()["edited-meanwhile"] = "kept" })
		s.operator.writes.writeDelay.Store(0)
		s.waitForMirrors(t, s.target, s.target2)
		if got := s.mirror(t, s.target).GetLabels()["edited-meanwhile"]; got != "kept" {
			t.Errorf("the label a user added while whisperer wrote the mirror: %q, want it kept", got)
		}
		if lost := mirrorErrorCount(t, k, mirror.Update) - conflictsBefore; lost < 1 {
			t.Errorf("no update of whisperer's failed: the race did not happen, the test proves nothing")
		}
	})
}

func TestForeignObjectIsNeverTouchedAndTheMirrorFollowsItsRemoval(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		// A retry interval longer than the test: the mirror must follow the foreign object's
		// removal because that removal is watched, not because the source polls.
		ns, foreign := namespacesWithForeignObject(t, k)
		before := getObject(t, k, ns[2], "sync")
		op := startOperator(t, withConflictRetry(time.Hour))
		source := k.newSource(ns[0], "sync", ns[1], ns[2])
		create(t, source)

		waitForEvent(t, source, ReasonConflict, ns[2], fmt.Sprintf("a %s named %q", k.name, "sync"))
		// The creates that found the name taken: one, unless a request failed on the way and was
		// retried before the conflict was known.
		found := op.writes.in(ns[2])
		if len(found) == 0 || slices.ContainsFunc(found, func(w string) bool { return !strings.HasPrefix(w, "POST ") }) {
			t.Errorf("writes in the conflicting namespace %v, want the create that found the object there", found)
		}
		if mirrors := mirrorsOf(t, source); !slices.Equal(mirrors, []string{ns[1]}) {
			t.Errorf("mirrors in %v, want only %s", mirrors, ns[1])
		}
		edit(t, source, func(src client.Object) { src.GetAnnotations()["touched"] = "to retry at once" })
		waitReconciled(t, source)
		if after := getObject(t, k, ns[2], "sync"); after.GetResourceVersion() != before.GetResourceVersion() {
			t.Fatalf("the foreign object was modified: %v", after)
		}
		if notes := notes(t, source, ReasonConflict); len(notes) != 1 {
			t.Errorf("Conflict notes after a retry %q, want the one", notes)
		}
		// Once the conflict is known, a retry reads, and writes nothing.
		if writes := op.writes.in(ns[2]); len(writes) != len(found) {
			t.Errorf("writes in the conflicting namespace %v after the retry, want only the create that found the object there", writes)
		}

		deleteObject(t, foreign)
		deleted := time.Now()
		eventually(t, "mirror created once the foreign object is gone", func() error {
			return checkFaithful(source, getObject(t, k, ns[2], "sync"))
		})
		if took := time.Since(deleted); took > 2*time.Second {
			t.Errorf("the mirror followed the foreign object's deletion after %s, want within 2s", took)
		}
	})
}

// namespacesWithForeignObject creates three namespaces, for a source, a target and a taken
// target, where an object of k that is not a mirror holds the name "sync".
func namespacesWithForeignObject(t *testing.T, k testKind) (ns []string, foreign client.Object) {
	t.Helper()
	ns = names("source", "target", "taken")
	createNamespaces(t, ns...)
	foreign = k.newSource(ns[2], "sync")
	foreign.SetLabels(map[string]string{"owner": "someone-else"})
	foreign.SetAnnotations(nil)
	create(t, foreign)
	return ns, foreign
}

// A conflict stays known through reconciles that could not look at it again: one whose read of
// the blocking object failed, and one whose source changed while it read it. Neither forgets it,
// so the reconcile after them reads before it writes, as the README promises, and never sends
// a create it knows will fail.
func TestAConflictStaysKnownWhenAReconcileCannotLookAgain(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns, _ := namespacesWithForeignObject(t, k)
		op := startOperator(t, withConflictRetry(time.Hour))
		source := k.newSource(ns[0], "sync", ns[1], ns[2])
		create(t, source)
		waitForEvent(t, source, ReasonConflict, ns[2])
		found := op.writes.in(ns[2])
		resource := k.resource().Resource
		blocker := fmt.Sprintf("/namespaces/%s/%s/sync", ns[2], resource)
		sourcePath := fmt.Sprintf("/namespaces/%s/%s/sync", ns[0], resource)

		// A namespace relabelled reconciles the source there: its read of the blocker fails once,
		// and the retry reads again.
		readsBefore := op.writes.reads(blocker)
		failed := interceptOnce(op, readOf(blocker), func() *metav1.Status {
			return &metav1.Status{Code: http.StatusInternalServerError, Reason: metav1.StatusReasonInternalError, Message: "injected by the test"}
		})
		relabel(t, ns[2], "1")
		<-failed
		eventually(t, "a read of the blocker after the failed one", func() error {
			if reads := op.writes.reads(blocker) - readsBefore; reads < 2 {
				return fmt.Errorf("%d reads since the relabelling", reads)
			}
			return nil
		})
		if writes := op.writes.in(ns[2]); len(writes) != len(found) {
			t.Errorf("writes in the conflicting namespace %v after a failed read, want only the create that found the object there", writes)
		}

		// Again, and the source changes while the reconcile reads it.
		var editErr error
		changed := interceptOnce(op, readOf(sourcePath), func() *metav1.Status {
			// On the operator's goroutine: no t.Fatal here.
			editErr = tryEdit(source, func(src client.Object) { src.GetAnnotations()["changed"] = "while read" })
			return nil
		})
		relabel(t, ns[2], "2")
		<-changed
		if editErr != nil {
			t.Fatalf("editing the source while the operator read it: %v", editErr)
		}
		waitReconciled(t, source)
		if writes := op.writes.in(ns[2]); len(writes) != len(found) {
			t.Errorf("writes in the conflicting namespace %v after the source changed while read, want only the create that found the object there", writes)
		}
		if after := getObject(t, k, ns[2], "sync"); after.GetLabels()["owner"] != "someone-else" || after.GetLabels()[mirror.LabelMirror] != "" {
			t.Errorf("the foreign object was modified: %v", after)
		}
	})
}

// interceptOnce makes op's first request that matches go through act instead of straight to the
// API server: it is answered with the status act returns, or sent when act returns nil. The
// channel it returns is closed once act has run.
func interceptOnce(op *operator, matches func(*http.Request) bool, act func() *metav1.Status) <-chan struct{} {
	done := make(chan struct{})
	var once sync.Once
	intercept := func(req *http.Request) (status *metav1.Status) {
		if matches(req) {
			once.Do(func() {
				status = act()
				close(done)
			})
		}
		return status
	}
	op.writes.intercept.Store(&intercept)
	return done
}

// readOf matches the reads of the object at path (its namespace, resource and name).
func readOf(path string) func(*http.Request) bool {
	return func(req *http.Request) bool {
		return req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, path)
	}
}

// relabel sets a label on namespace, which reconciles the sources that ask for it there.
func relabel(t *testing.T, namespace, value string) {
	t.Helper()
	edit(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, func(n *corev1.Namespace) {
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		n.Labels["relabelled"] = value
	})
}

// A mirror whose name label someone changes, or whose namespace label someone removes, no
// longer claims its source: it is theirs from then on. whisperer reports the conflict and never
// writes it again.
func TestChangingAMirrorsLabelsDetachesIt(t *testing.T) {
	for name, detach := range map[string]func(client.Object){
		"name label changed":      func(m client.Object) { m.GetLabels()[mirror.LabelSourceName] = "mine-now" },
		"namespace label removed": func(m client.Object) { delete(m.GetLabels(), mirror.LabelSourceNamespace) },
	} {
		t.Run(name, func(t *testing.T) {
			forEachKind(t, func(t *testing.T, k testKind) {
				s := startSeed(t, k)
				edit(t, s.mirror(t, s.target), detach)
				detached := s.mirror(t, s.target)
				waitForEvent(t, s.source, ReasonConflict, s.target)
				waitReconciled(t, s.source)
				if now := s.mirror(t, s.target); now.GetResourceVersion() != detached.GetResourceVersion() {
					t.Errorf("the detached mirror was written: %v", now.GetLabels())
				}
			})
		})
	}
}

func TestSameNamedSourcesDoNotFightOverATarget(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("first", "second", "target")
		createNamespaces(t, ns...)
		// A retry interval longer than the test: the second source gets the target because the
		// first source's deletion is an event, not because it polls.
		startOperator(t, withConflictRetry(time.Hour))
		first := k.newSource(ns[0], "shared", ns[2])
		create(t, first)
		waitForMirrorsOf(t, first, ns[2])
		held := getObject(t, k, ns[2], "shared")

		second := k.newSource(ns[1], "shared", ns[2])
		k.setData(second, map[string]string{"other": "data"})
		create(t, second)
		waitForEvent(t, second, ReasonConflict, ns[2])
		waitReconciled(t, second)
		if now := getObject(t, k, ns[2], "shared"); now.GetResourceVersion() != held.GetResourceVersion() {
			t.Fatalf("the first source's mirror was written while the second source competed for it")
		}
		if len(events(t, first, ReasonConflict)) != 0 {
			t.Error("the first source, which holds the target, got a Conflict Event")
		}

		deleteObject(t, first)
		waitForMirrorsOf(t, second, ns[2])
	})
}

// When the first source's mirror (not the source) goes, both sources want the namespace again:
// whichever writes first holds it, and the other reports the conflict. Nothing flaps.
func TestSameNamedSourcesWhenTheFirstMirrorGoes(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("first", "second", "target")
		createNamespaces(t, ns...)
		startOperator(t, withConflictRetry(time.Hour))
		first := k.newSource(ns[0], "shared", ns[2])
		create(t, first)
		waitForMirrorsOf(t, first, ns[2])
		second := k.newSource(ns[1], "shared", ns[2])
		k.setData(second, map[string]string{"other": "data"})
		create(t, second)
		waitForEvent(t, second, ReasonConflict, ns[2])

		deleteObject(t, getObject(t, k, ns[2], "shared"))
		var holder, other client.Object
		eventually(t, "one of the two sources holds the namespace", func() error {
			m := getObject(t, k, ns[2], "shared")
			switch {
			case m == nil:
				return fmt.Errorf("no mirror")
			case checkFaithful(first, m) == nil:
				holder, other = first, second
			case checkFaithful(second, m) == nil:
				holder, other = second, first
			default:
				return fmt.Errorf("the mirror is faithful to neither source")
			}
			return nil
		})
		held := getObject(t, k, ns[2], "shared")
		waitForEvent(t, other, ReasonConflict, ns[2])
		for _, source := range []client.Object{holder, other} {
			edit(t, source, func(src client.Object) { src.GetAnnotations()["touched"] = "to reconcile it" })
			waitReconciled(t, source)
		}
		if now := getObject(t, k, ns[2], "shared"); now.GetResourceVersion() != held.GetResourceVersion() {
			t.Errorf("the mirror changed hands after it was settled: it flaps")
		}
	})
}

func TestSourcesOwnNamespaceIsSkipped(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("source", "target")
		createNamespaces(t, ns...)
		startOperator(t)
		source := k.newSource(ns[0], "self", ns[0], ns[1])
		create(t, source)
		waitForMirrorsOf(t, source, ns[1])
		waitReconciled(t, source)
		if len(events(t, source, ReasonConflict)) != 0 {
			t.Error("the source conflicts with itself")
		}
	})
}

func TestBadAnnotationValuesAreReportedAndTheValidOnesServed(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("source", "target", "target2", "good-source")
		createNamespaces(t, ns...)
		startOperator(t)
		bad := k.newSource(ns[0], "bad")
		bad.GetAnnotations()[mirror.AnnotationNamespaces] = fmt.Sprintf(" %s ,, Target,%s ,a_b, %s,!!x,%s", ns[1], ns[2], ns[1], strings.Repeat("x", 64))
		bad.GetAnnotations()[mirror.AnnotationNamespaceSelector] = "env in (prod"
		good := k.newSource(ns[3], "good", ns[1])
		create(t, bad)
		create(t, good)

		waitForMirrorsOf(t, bad, ns[1], ns[2])
		waitForMirrorsOf(t, good, ns[1])
		warning := waitForEvent(t, bad, ReasonInvalidNamespaces, `"Target"`, `"a_b"`, `"!!x"`, `"xxxx`, mirror.AnnotationNamespaceSelector+` "env in (prod"`)
		if warning.Type != corev1.EventTypeWarning {
			t.Errorf("InvalidNamespaces Event of type %s, want Warning", warning.Type)
		}
		edit(t, bad, func(src client.Object) { src.GetAnnotations()["touched"] = "to reconcile it again" })
		waitReconciled(t, bad)
		if got := notes(t, bad, ReasonInvalidNamespaces); len(got) != 1 {
			t.Errorf("InvalidNamespaces notes %q after another reconcile, want the one", got)
		}
	})
}

func TestPatternsFollowNamespacesAsTheyComeAndGo(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("source", "glob-a", "glob-b", "glob-c", "labelled")
		createNamespaces(t, ns[0], ns[1], ns[2], ns[4])
		startOperator(t)
		suffix := strings.TrimPrefix(ns[0], "source-")
		source := k.newSource(ns[0], "patterned")
		source.GetAnnotations()[mirror.AnnotationNamespaces] = fmt.Sprintf("glob-a-%s,glob-?-%s, !%s", suffix, suffix, ns[2]) + ",glob-c-" + suffix
		source.GetAnnotations()[mirror.AnnotationNamespaceSelector] = "whisperer-test=" + suffix
		create(t, source)
		waitForMirrorsOf(t, source, ns[1])

		createNamespaces(t, ns[3])
		waitForMirrorsOf(t, source, ns[1], ns[3])

		labelled := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns[4]}}
		edit(t, labelled, func(n *corev1.Namespace) { n.Labels = map[string]string{"whisperer-test": suffix} })
		waitForMirrorsOf(t, source, ns[1], ns[3], ns[4])
		edit(t, labelled, func(n *corev1.Namespace) { n.Labels = map[string]string{"whisperer-test": "other"} })
		waitForMirrorsOf(t, source, ns[1], ns[3])
	})
}

// A namespace created later gets its mirror within a second (the README's promise).
func TestNewNamespaceGetsItsMirrorWithinASecond(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		created := time.Now()
		createNamespaces(t, s.missing)
		for s.mirror(t, s.missing) == nil && time.Since(created) < 30*time.Second {
			time.Sleep(10 * time.Millisecond)
		}
		if took := time.Since(created); took > time.Second {
			t.Errorf("the new namespace got its mirror after %s, want within a second", took)
		}
	})
}

func TestStarMirrorsIntoEveryNamespaceButTheExcluded(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("source", "later")
		createNamespaces(t, ns[0])
		startOperator(t)
		name := "everywhere-" + strings.TrimPrefix(ns[0], "source-")
		source := k.newSource(ns[0], name, "*", "!kube-system")
		create(t, source)
		for _, want := range []string{"default", "kube-public"} {
			eventually(t, "mirror in "+want, func() error { return checkFaithful(source, getObject(t, k, want, name)) })
		}
		createNamespaces(t, ns[1])
		eventually(t, "mirror in a new namespace", func() error { return checkFaithful(source, getObject(t, k, ns[1], name)) })
		waitReconciled(t, source)
		for _, never := range []string{"kube-system", ns[0]} {
			if slices.Contains(mirrorsOf(t, source), never) {
				t.Errorf("mirror in %s", never)
			}
		}
		deleteObject(t, source)
		waitForMirrorsOf(t, source)
	})
}

func TestSourceNameLongerThanALabelValue(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("source", "target")
		createNamespaces(t, ns...)
		startOperator(t)
		source := k.newSource(ns[0], strings.Repeat("long-name.", 20)+"end", ns[1])
		create(t, source)
		waitForMirrorsOf(t, source, ns[1])
		deleteObject(t, source)
		waitForMirrorsOf(t, source)
	})
}

func TestTerminatingNamespaceCausesNoErrorsAndNoWrites(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("source", "target", "ending")
		createNamespaces(t, ns...)
		// A finalizer on an object inside keeps the namespace terminating for as long as the test needs.
		held := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: ns[2], Finalizers: []string{"whisperer.test/hold"}}}
		create(t, held)
		t.Cleanup(func() { edit(t, held, func(sa *corev1.ServiceAccount) { sa.Finalizers = nil }) })
		op := startOperator(t)
		source := k.newSource(ns[0], "sync", ns[1], ns[2])
		create(t, source)
		waitForMirrorsOf(t, source, ns[1], ns[2])

		errorsBefore := reconcileErrors(t)
		deleteObject(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns[2]}})
		eventually(t, "namespace terminating", func() error {
			n := &corev1.Namespace{}
			if err := k8s.Get(context.Background(), client.ObjectKey{Name: ns[2]}, n); err != nil {
				return err
			}
			if n.Status.Phase != corev1.NamespaceTerminating {
				return fmt.Errorf("phase %s", n.Status.Phase)
			}
			return nil
		})
		writesBefore := len(op.writes.in(ns[2]))
		edit(t, source, func(src client.Object) { k.setData(src, map[string]string{"changed": "while a target terminates"}) })
		eventually(t, "the mirror in the other namespace updated", func() error { return checkFaithful(source, getObject(t, k, ns[1], "sync")) })
		waitReconciled(t, source)
		if errs := reconcileErrors(t) - errorsBefore; errs != 0 {
			t.Errorf("%v reconcile errors with a terminating target namespace, want none", errs)
		}
		if writes := op.writes.in(ns[2]); len(writes) != writesBefore {
			t.Errorf("writes in the terminating namespace %v, want none after it began to terminate", writes[writesBefore:])
		}
	})
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
		if got := mirrorsOf(t, source); len(got) > 0 {
			t.Errorf("%s mirrored into %v", source.Type, got)
		}
	}
}

// kube-controller-manager publishes kube-root-ca.crt into every namespace (its root CA
// publisher, which the test cluster does not run, so the test publishes them itself), and
// OpenShift openshift-service-ca.crt: a source of either name is refused.
func TestPublishedConfigMapsAreRefused(t *testing.T) {
	ns := names("source", "target")
	createNamespaces(t, ns...)
	startOperator(t)
	for _, name := range []string{"kube-root-ca.crt", "openshift-service-ca.crt"} {
		published := configMapKindT.newSource(ns[1], name)
		published.SetLabels(nil)
		published.SetAnnotations(nil)
		create(t, published)
		source := configMapKindT.newSource(ns[0], name, ns[1])
		create(t, source)
		waitForEvent(t, source, ReasonRefused, name, "publishes it")
		if got := getObject(t, configMapKindT, ns[1], name); got.GetResourceVersion() != published.GetResourceVersion() {
			t.Errorf("the %s published in %s was written", name, ns[1])
		}
	}
}

// A Secret and a ConfigMap source of the same name, in the same namespace, never interfere.
func TestSecretAndConfigMapOfTheSameNameAreIndependent(t *testing.T) {
	ns := names("source", "target")
	createNamespaces(t, ns...)
	startOperator(t)
	secret := secretKindT.newSource(ns[0], "shared", ns[1])
	configMap := configMapKindT.newSource(ns[0], "shared", ns[1])
	create(t, secret)
	create(t, configMap)
	waitForMirrorsOf(t, secret, ns[1])
	waitForMirrorsOf(t, configMap, ns[1])
	deleteObject(t, secret)
	waitForMirrorsOf(t, secret)
	waitReconciled(t, configMap)
	waitForMirrorsOf(t, configMap, ns[1])
	if len(events(t, configMap, ReasonConflict)) > 0 {
		t.Error("the ConfigMap source conflicts with the Secret of its name")
	}
}

func TestOneMebibyteSourceIsMirrored(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		ns := names("source", "target")
		createNamespaces(t, ns...)
		startOperator(t)
		source := k.newSource(ns[0], "big", ns[1])
		k.setData(source, map[string]string{"a": strings.Repeat("\xa5", 1<<19), "binary:b": strings.Repeat("z", 1<<19-64)})
		create(t, source)
		waitForMirrorsOf(t, source, ns[1])
	})
}

func TestConvergedClusterCostsNoWrite(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		waitForEvent(t, s.source, ReasonMirrored, "created 2")
		ours := []string{s.source.GetNamespace(), s.target, s.target2}
		if got := s.operator.writes.in(ours...); len(got) == 0 {
			t.Fatal("the write recorder saw no write while mirrors were created: it records nothing")
		}

		checkConvergedCostsNoWrite(t, s)
		if got := notes(t, s.source, ReasonMirrored); len(got) != 1 {
			t.Errorf("Mirrored notes %q, want the one of the creation", got)
		}
	})
}

// waitResyncs waits for n more reconciles of source, the periodic resyncs of an operator started
// withResync.
func waitResyncs(t *testing.T, source client.Object, n int) {
	t.Helper()
	resyncs := map[attribute.Key]string{attrSourceNamespace: source.GetNamespace(), attrSourceName: source.GetName()}
	before := len(reconcileSpans(resyncs))
	eventually(t, fmt.Sprintf("%d resyncs of %s", n, source.GetName()), func() error {
		if got := len(reconcileSpans(resyncs)) - before; got < n {
			return fmt.Errorf("%d", got)
		}
		return nil
	})
}

// checkConvergedCostsNoWrite restarts the operator of s, converged, with a short resync period,
// touches the source where it does not matter, and checks that neither the reconcile of that
// change nor three resyncs write anything in the seed's namespaces.
func checkConvergedCostsNoWrite(t *testing.T, s seed) {
	t.Helper()
	s.operator.stop()
	restarted := startOperator(t, withResync(300*time.Millisecond))
	edit(t, s.source, func(src client.Object) { src.GetAnnotations()["unrelated"] = "touched to cause a reconcile" })
	waitReconciled(t, s.source)
	waitResyncs(t, s.source, 3)
	if got := restarted.writes.in(s.source.GetNamespace(), s.target, s.target2); len(got) > 0 {
		t.Errorf("a restart and resyncs of a converged source wrote %v, want no write", got)
	}
}

// reconcileCount reads controller-runtime's count of reconciles of every kind's controller.
func reconcileCount(t *testing.T) float64 {
	t.Helper()
	var sum float64
	for _, k := range testKinds {
		sum += sumSeries(t, "controller_runtime_reconcile_total", map[string]string{"controller": controllerName(k)})
	}
	return sum
}

// mirrorErrorCount reads whisperer's count of failed writes of kind k's mirrors.
func mirrorErrorCount(t *testing.T, k testKind, op mirror.ActionKind) float64 {
	t.Helper()
	return testutil.ToFloat64(mirrorErrors.WithLabelValues(k.name, string(op)))
}

// One source's mirror writes run in parallel, WriteConcurrency at once: one at a time, ten
// thousand namespaces would wait for the sum of ten thousand round trips.
func TestMirrorWritesRunInParallelUpToTheLimit(t *testing.T) {
	ns := names("source", "t00", "t01", "t02", "t03", "t04", "t05", "t06", "t07", "t08", "t09", "t10", "t11")
	createNamespaces(t, ns...)
	op := startOperator(t) // WriteConcurrency 4, one reconcile at a time
	// Slow writes overlap however fast the API server answers.
	op.writes.writeDelay.Store(int64(50 * time.Millisecond))
	source := sourceSecret(ns[0], "wide", ns[1:]...)
	create(t, source)
	waitForMirrorsOf(t, source, ns[1:]...)
	if got := op.writes.mostInFlight(); got != 4 {
		t.Errorf("at most %d writes were in flight at once, want 4 (the write concurrency)", got)
	}
}
