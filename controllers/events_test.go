package controllers

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What users read in `kubectl get events` on a source.

// notes returns the notes of the Events on source with reason, oldest first.
func notes(t *testing.T, source client.Object, reason string) []string {
	t.Helper()
	found := events(t, source, reason)
	slices.SortFunc(found, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	var out []string
	for _, e := range found {
		if e.Series != nil {
			t.Errorf("Event %s has a series (count %d): its note hides the later changes", e.Name, e.Series.Count)
		}
		out = append(out, e.Note)
	}
	return out
}

// The walkthrough: apply, delete a mirror, create the missing namespace. Each change is an Event
// of its own, with its own counts.
func TestEachChangeOfMirrorsIsAnEventOfItsOwn(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		waitForEvent(t, s.source, ReasonMirrored, "created 2, updated 0, deleted 0 mirrors")
		deleteObject(t, s.mirror(t, s.target))
		s.waitForMirrors(t, s.target, s.target2)
		createNamespaces(t, s.missing)
		s.waitForMirrors(t, s.target, s.target2, s.missing)
		want := []string{"created 2, updated 0, deleted 0 mirrors", "created 1, updated 0, deleted 0 mirrors", "created 1, updated 0, deleted 0 mirrors"}
		eventually(t, "three Mirrored Events", func() error {
			if got := notes(t, s.source, ReasonMirrored); !slices.Equal(got, want) {
				return fmt.Errorf("notes %q, want %q", got, want)
			}
			return nil
		})
	})
}

// A Warning that has not changed is not recorded again when the operator restarts (or another
// replica takes over); one whose content changes is recorded with the new content.
func TestStandingWarningIsRecordedOnce(t *testing.T) {
	ns := names("source", "taken", "taken2")
	createNamespaces(t, ns...)
	for _, target := range ns[1:] {
		create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sync", Namespace: target}})
	}
	op := startOperator(t)
	source := sourceSecret(ns[0], "sync", ns[1])
	create(t, source)
	waitForEvent(t, source, ReasonConflict, ns[1])
	op.stop()

	before := reconcileCount(t)
	// The source is blocked, so it is looked at again at the conflict retry interval, not the resync period.
	restarted := startOperator(t, withConflictRetry(200*time.Millisecond))
	edit(t, source, func(s *corev1.Secret) { s.Annotations["touched"] = "to reconcile it at once" })
	eventually(t, "the restart, the touch and retries reconciled", func() error {
		if n := reconcileCount(t) - before; n < 4 {
			return fmt.Errorf("%v reconciles", n)
		}
		return nil
	})
	if got := notes(t, source, ReasonConflict); len(got) != 1 {
		t.Errorf("Conflict notes after a restart: %q, want the one recorded before", got)
	}
	if writes := restarted.writes.in(ns[0]); len(writes) > 0 {
		t.Errorf("the restarted operator wrote %v in the source's namespace, want nothing", writes)
	}

	edit(t, source, func(s *corev1.Secret) { s.Annotations["secret-syncer.jeffl.es/namespaces"] = ns[1] + "," + ns[2] })
	waitForEvent(t, source, ReasonConflict, ns[1]+", "+ns[2])
	if got := notes(t, source, ReasonConflict); len(got) != 2 {
		t.Errorf("Conflict notes after a new conflicting namespace: %q, want the first and the new one", got)
	}
}

func TestEventNamesAndNotesAreAccepted(t *testing.T) {
	for _, name := range []string{"sync", strings.Repeat("a", 253), strings.Repeat("a.", 120) + "b-c"} {
		if errs := validation.IsDNS1123Subdomain(eventName(name, "0123456789abcdef")); len(errs) > 0 {
			t.Errorf("Event name for %q: %v", name, errs)
		}
	}
	many := make([]string, 5000)
	for i := range many {
		many[i] = fmt.Sprintf("namespace-%04d", i)
	}
	note := describeConflicts("Secret", many, "pull")
	if len(note) > maxNoteLength || !strings.HasPrefix(note, "not mirrored into namespace-0000, ") || !strings.HasSuffix(note, `: a Secret named "pull" that is not a mirror of this source is there and is left untouched`) {
		t.Errorf("note of %d bytes: %q", len(note), note)
	}
	more := regexp.MustCompile(`, namespace-\d+ and (\d+) more: `).FindStringSubmatch(note)
	if more == nil || strings.Count(note, "namespace-")+atoi(t, more[1]) != len(many) {
		t.Errorf("note %q lists %d namespaces and counts %v more, want %d in all", note, strings.Count(note, "namespace-"), more, len(many))
	}
	if short := describeConflicts("Secret", many[:3], "pull"); strings.Contains(short, "more") {
		t.Errorf("a short list is cut: %q", short)
	}
	if long := shorten(strings.Repeat("é", 1000)); len(long) > maxNoteLength || !strings.HasSuffix(long, "…") {
		t.Errorf("shorten: %d bytes, %q", len(long), long[len(long)-8:])
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
