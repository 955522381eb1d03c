package controllers

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// What a hostile tenant can do with what any tenant may do (create and label Secrets in their own
// namespace), and why it starves no other source. docs/security.md's threat table names these.

// TestForgedMirrorsBeingDeletedDoNotStarveOtherSources forges 40 "mirrors" in a tenant's
// namespace: Secrets with the mirror labels of sources that do not want them, held by a
// finalizer, edited every second. whisperer deletes each (they claim to be its mirrors); the
// finalizer keeps them terminating, and each edit reconciles their source again. A claim being
// deleted counts as gone, so no reconcile waits on it: a new source still converges at once.
func TestForgedMirrorsBeingDeletedDoNotStarveOtherSources(t *testing.T) {
	ns := names("tenant", "source", "target")
	createNamespaces(t, ns...)
	const finalizer = "tenant.example/hold"
	var forged []*corev1.Secret
	for i := range 40 {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("forged-%d", i), Namespace: ns[0], Finalizers: []string{finalizer},
			Labels: mirror.MirrorLabels(types.NamespacedName{Namespace: ns[1], Name: fmt.Sprintf("forged-%d", i)}),
		}}
		create(t, s)
		forged = append(forged, s)
	}
	t.Cleanup(func() {
		for _, s := range forged {
			edit(t, s, func(s *corev1.Secret) { s.Finalizers = nil })
		}
	})
	startOperator(t, withConcurrentReconciles(4))
	eventually(t, "every forged mirror deleted by whisperer, and held by its finalizer", func() error {
		for _, s := range forged {
			if live := getSecret(t, s.Namespace, s.Name); live == nil || live.DeletionTimestamp == nil {
				return fmt.Errorf("%s is not being deleted", s.Name)
			}
		}
		return nil
	})

	ctx, stopEditing := context.WithCancel(context.Background())
	var edits sync.WaitGroup
	edits.Go(func() { keepEditing(ctx, t, forged) })
	defer func() { stopEditing(); edits.Wait() }()
	time.Sleep(3 * time.Second) // several rounds of edits, each reconciling every forged claim's source

	source := sourceSecret(ns[1], "real", ns[2])
	start := time.Now()
	create(t, source)
	eventually(t, "the new source's mirror", func() error { return checkFaithful(source, getSecret(t, ns[2], "real")) })
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a new source took %s to converge while forged mirrors were being edited, want under 2s", took)
	}
}

// keepEditing changes a label of every forged Secret each second until ctx is done.
func keepEditing(ctx context.Context, t *testing.T, forged []*corev1.Secret) {
	for round := 0; ctx.Err() == nil; round++ {
		for _, s := range forged {
			patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"metadata":{"labels":{"round":"%d"}}}`, round))
			if err := k8s.Patch(ctx, s.DeepCopy(), patch); err != nil && ctx.Err() == nil {
				t.Errorf("editing %s: %v", s.Name, err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func TestAnnotationOverTheLimitsIsRefusedAndOthersServed(t *testing.T) {
	ns := names("source", "target")
	createNamespaces(t, ns...)
	startOperator(t)
	globs := make([]string, mirror.MaxGlobs+1)
	for i := range globs {
		globs[i] = fmt.Sprintf("target-%d-*", i)
	}
	huge := sourceSecret(ns[0], "huge", append(globs, ns[1])...)
	good := sourceSecret(ns[0], "good", ns[1])
	create(t, huge)
	create(t, good)
	waitForEvent(t, huge, ReasonInvalidNamespaces, fmt.Sprintf("%d globs", mirror.MaxGlobs+1))
	waitForEvent(t, huge, ReasonRefused, "over whisperer's limits")
	eventually(t, "the other source's mirror", func() error { return checkFaithful(good, getSecret(t, ns[1], "good")) })
	if got := mirrorsOf(t, huge); len(got) > 0 {
		t.Errorf("a source over the limits was mirrored into %v", got)
	}
}

func TestSourceLimitsOfThePolicy(t *testing.T) {
	ns := names("source", "a", "b", "c")
	createNamespaces(t, ns...)
	startOperator(t, withPolicy(mirror.Policy{MaxSourceSize: 100, MaxTargetsPerSource: 2}))
	big := sourceSecret(ns[0], "big", ns[1])
	big.Data = map[string][]byte{"k": []byte(strings.Repeat("x", 101))}
	wide := sourceSecret(ns[0], "wide", ns[1:]...)
	fits := sourceSecret(ns[0], "fits", ns[1], ns[2])
	for _, s := range []*corev1.Secret{big, wide, fits} {
		create(t, s)
	}
	waitForEvent(t, big, ReasonRefused, "--max-source-size")
	waitForEvent(t, wide, ReasonRefused, "asks for 3 namespaces", "--max-targets-per-source")
	waitForMirrorsOf(t, fits, ns[1], ns[2])
	for _, s := range []*corev1.Secret{big, wide} {
		if got := mirrorsOf(t, s); len(got) > 0 {
			t.Errorf("refused source %s mirrored into %v", s.Name, got)
		}
	}
}

// TestWarningsListingManyNamespacesAreRecorded blocks a source in more namespaces than an Event's
// note can list: the API server refuses a note over 1 KiB, so the Warning must say "and N more".
func TestWarningsListingManyNamespacesAreRecorded(t *testing.T) {
	var bases []string
	for i := range 40 {
		bases = append(bases, fmt.Sprintf("a-rather-long-namespace-name-%02d", i))
	}
	ns := names(append([]string{"source"}, bases...)...)
	createNamespaces(t, ns...)
	for _, target := range ns[1:] {
		create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "taken", Namespace: target}})
	}
	startOperator(t)
	source := sourceSecret(ns[0], "taken", ns[1:]...)
	create(t, source)
	warning := waitForEvent(t, source, ReasonConflict, "more: a Secret named \"taken\"")
	if len(warning.Note) > maxNoteLength {
		t.Errorf("note of %d bytes, more than the API server accepts", len(warning.Note))
	}
}

// TestNamespaceEventsParseNothingAndSkipRefusedSources maps a namespace event to sources from
// what was parsed of each when it last changed: the same parsed source every time, and never a
// refused one, whatever its annotation matches.
func TestNamespaceEventsParseNothingAndSkipRefusedSources(t *testing.T) {
	store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{sourceNameIndex: indexByName})
	everywhere := sourceSecret("a", "everywhere", "*")
	token := sourceSecret("a", "token", "*")
	token.Type = corev1.SecretTypeServiceAccountToken
	elsewhere := sourceSecret("a", "elsewhere", "other")
	for i, s := range []*corev1.Secret{everywhere, token, elsewhere} {
		s.ResourceVersion = fmt.Sprint(i + 1)
		if err := store.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	r := &MirrorReconciler{Kind: Secrets, sources: sourceStore{indexer: store}, parsed: newParsedSources(Secrets, mirror.Policy{}), scopes: newScopes()}
	r.parsed.learn(token) // its first reconcile read it, and found it refused
	parsed, _, _ := r.parsed.get(everywhere)
	for range 3 {
		requests := r.namespaceToSources(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}})
		if len(requests) != 1 || requests[0].Name != "everywhere" {
			t.Errorf("a new namespace reconciles %v, want the source that asks for every namespace, and not the refused token", requests)
		}
	}
	if again, _, _ := r.parsed.get(everywhere); again != parsed {
		t.Error("namespace events parsed a source again, though it did not change")
	}
	changed := everywhere.DeepCopy()
	changed.ResourceVersion = "10"
	if again, _, _ := r.parsed.get(changed); again == parsed {
		t.Error("a changed source was not parsed again")
	}
}
