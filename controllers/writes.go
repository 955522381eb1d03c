package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// FieldOwner is the field manager of every write whisperer makes, shown in managedFields.
const FieldOwner = "whisperer"

// writeResult is what one write did.
type writeResult string

const (
	created  writeResult = "created"
	updated  writeResult = "updated"
	deleted  writeResult = "deleted"
	conflict writeResult = "conflict"
	// unchanged: nothing needed writing after all, the namespace went away meanwhile, or the
	// write failed.
	unchanged writeResult = "unchanged"
)

func (r writeResult) changed() bool { return r == created || r == updated || r == deleted }

// outcome sums up the writes of one reconcile.
type outcome struct {
	mu                        sync.Mutex
	created, updated, deleted int
	// conflicts lists the namespaces where an object that is not a mirror of the source holds its name.
	conflicts []string
	// failed counts the namespaces where a write failed.
	failed int
	errs   []error
	// stale is set when the source changed after it was planned for: its writes wait for the next
	// reconcile, which its change causes.
	stale bool
	// skipped is set when the creates and updates were not attempted: the source could not be
	// read, or was stale. What this reconcile found of conflicts then says nothing.
	skipped bool
	// failedIn holds the namespaces where a mirror write failed.
	failedIn sets.Set[string]
	// attached and detached count the ServiceAccounts written; detachFailed holds the namespaces
	// where a detach failed, whose mirror is not deleted.
	attached, detached int
	detachFailed       sets.Set[string]
	// contested lists the ServiceAccounts whose entry another writer keeps removing, which
	// whisperer leaves alone until contestedUntil.
	contested      []string
	contestedUntil time.Time
}

func (o *outcome) add(namespace string, res writeResult, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err != nil {
		if o.failedIn == nil {
			o.failedIn = sets.New[string]()
		}
		o.failedIn.Insert(namespace)
	}
	switch res {
	case created:
		o.created++
	case updated:
		o.updated++
	case deleted:
		o.deleted++
	case conflict:
		o.conflicts = append(o.conflicts, namespace)
	}
	if err != nil {
		o.failed++
		o.errs = append(o.errs, err)
	}
}

// summary names the outcome for a span: refused, error, conflict, changed or unchanged.
func (o *outcome) summary(plan mirror.Result) string {
	switch {
	case plan.Refusal != "":
		return "refused"
	case o.failed > 0:
		return "error"
	case len(o.conflicts) > 0:
		return "conflict"
	case o.changed():
		return "changed"
	}
	return "unchanged"
}

func (o *outcome) changed() bool { return o.created+o.updated+o.deleted+o.attached+o.detached > 0 }

// notMirrored reports whether this reconcile failed to write, or found blocked, the mirror in
// namespace.
func (o *outcome) notMirrored(namespace string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failedIn.Has(namespace) || slices.Contains(o.conflicts, namespace)
}

// maxReportedErrors bounds the errors a reconcile returns: when thousands of writes fail for the
// same reason, a few say it, and the log line stays readable.
const maxReportedErrors = 3

func (o *outcome) err() error {
	if len(o.errs) <= maxReportedErrors {
		return errors.Join(o.errs...)
	}
	more := fmt.Errorf("and %d more failed writes", len(o.errs)-maxReportedErrors)
	return errors.Join(append(o.errs[:maxReportedErrors:maxReportedErrors], more)...)
}

// writing is what the writes of one reconcile share.
type writing struct {
	state mirror.State
	// source is the source as read live, with its data, when a write needs it.
	source client.Object
	// copied is what the mirrors copy of the source's labels and annotations.
	copied mirror.Copied
}

// write carries out a plan: the detaches from ServiceAccounts first, since a ServiceAccount must
// not name a mirror that is gone; then the mirror writes, without the deletes of mirrors whose
// detach failed (the next reconcile tries again); then the attaches, in the namespaces whose
// mirror is there. Each step runs on at most WriteConcurrency workers, and a failed write does not
// stop the others: every mirror that can converge does.
func (r *MirrorReconciler) write(ctx context.Context, seen observation, plan mirror.Result) *outcome {
	o := &outcome{detachFailed: sets.New[string]()}
	w := &writing{state: seen.state, source: seen.live, copied: plan.Copied}
	actions := plan.Actions
	if w.source == nil && needsContent(actions) {
		var err error
		if w.source, err = r.liveSource(ctx, seen.state.Source); err != nil {
			o.add("", unchanged, err)
			o.skipped = true
			return o
		}
		if w.source == nil {
			o.stale, o.skipped = true, true
			actions = deletesOnly(actions)
		}
	}
	detaches, attaches := splitAttachments(plan.Attachments)
	inParallel(r.WriteConcurrency, detaches, func(a mirror.Attachment) { r.attachment(ctx, w, a, o) })
	actions = slices.DeleteFunc(actions, func(a mirror.Action) bool {
		return a.Kind == mirror.Delete && o.detachFailed.Has(a.Namespace)
	})
	inParallel(r.WriteConcurrency, actions, func(action mirror.Action) {
		res, err := r.writeTraced(ctx, w, action)
		ctrl.LoggerFrom(ctx).V(1).Info("Mirror written", "targetNamespace", action.Namespace, "action", action.Kind, "result", res)
		countWrite(w.state.Kind, action.Kind, res, err)
		o.add(action.Namespace, res, err)
	})
	attaches = slices.DeleteFunc(attaches, func(a mirror.Attachment) bool {
		return o.notMirrored(a.Account.Namespace) || r.conflicts.blocked(w.state.Key, a.Account.Namespace)
	})
	inParallel(r.WriteConcurrency, attaches, func(a mirror.Attachment) { r.attachment(ctx, w, a, o) })
	return o
}

// inParallel calls work for each item, on at most limit goroutines. The workers live for the
// whole step rather than one goroutine per write: each write goes deep into the HTTP client,
// and a new goroutine would grow its stack to that depth every time.
func inParallel[T any](limit int, items []T, work func(T)) {
	next := make(chan T)
	var wg sync.WaitGroup
	for range min(max(1, limit), len(items)) {
		wg.Go(func() {
			for item := range next {
				work(item)
			}
		})
	}
	for _, item := range items {
		next <- item
	}
	close(next)
	wg.Wait()
}

func needsContent(actions []mirror.Action) bool {
	for _, a := range actions {
		if a.Kind != mirror.Delete {
			return true
		}
	}
	return false
}

func splitAttachments(all []mirror.Attachment) (detaches, attaches []mirror.Attachment) {
	for _, a := range all {
		if a.Kind == mirror.Detach {
			detaches = append(detaches, a)
		} else {
			attaches = append(attaches, a)
		}
	}
	return detaches, attaches
}

func deletesOnly(actions []mirror.Action) []mirror.Action {
	var deletes []mirror.Action
	for _, a := range actions {
		if a.Kind == mirror.Delete {
			deletes = append(deletes, a)
		}
	}
	return deletes
}

// liveSource reads the source with its data, which the cache does not keep. It returns nil when
// the source is no longer the one planned for: it changed since, and its change reconciles it
// again.
func (r *MirrorReconciler) liveSource(ctx context.Context, planned *mirror.Source) (client.Object, error) {
	live := r.Kind.newObject()
	err := r.APIReader.Get(ctx, planned.Key(), live)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the source: %w", err)
	case live.GetResourceVersion() != planned.Object.GetResourceVersion():
		return nil, nil
	}
	return live, nil
}

// writeTraced is writeOne in a span of its own.
func (r *MirrorReconciler) writeTraced(ctx context.Context, w *writing, action mirror.Action) (res writeResult, err error) {
	ctx, span := r.tracer.Start(ctx, "WriteMirror", trace.WithAttributes(attrTargetNamespace.String(action.Namespace)))
	defer span.End()
	defer func() {
		kind := string(action.Kind)
		if res == conflict {
			kind = "skip-conflict"
		}
		span.SetAttributes(attrAction.String(kind), attrResult.String(string(res)))
		recordError(span, err)
	}()
	return r.writeOne(ctx, w, action)
}

// writeOne makes one write. It tells the expectations what the cache must show once the write is
// made, before making it: the watch event may arrive before the response.
func (r *MirrorReconciler) writeOne(ctx context.Context, w *writing, action mirror.Action) (res writeResult, err error) {
	if err := r.leading(); err != nil {
		return unchanged, err
	}
	key := w.state.Key
	expected := expectation{gone: action.Kind == mirror.Delete}
	if action.Existing != nil {
		expected.before = action.Existing.GetResourceVersion()
	}
	r.expectations.expect(key, action.Namespace, expected)
	defer func() {
		if !res.changed() {
			r.expectations.forget(key, action.Namespace)
		}
	}()
	switch action.Kind {
	case mirror.Create:
		desired := r.buildMirror(w, action.Namespace)
		if r.conflicts.blocked(key, action.Namespace) {
			// Still blocked, most likely: read first rather than make a write that fails.
			return r.repairOrReport(ctx, w, desired)
		}
		return r.create(ctx, w, desired)
	case mirror.Update:
		return r.update(ctx, w, r.updatedMirror(w, action.Existing))
	case mirror.Recreate:
		return r.recreate(ctx, w, action.Existing, r.buildMirror(w, action.Namespace))
	case mirror.Delete:
		return r.delete(ctx, action.Existing)
	}
	return unchanged, fmt.Errorf("unknown action %q", action.Kind)
}

// errNotLeading stops the writes of a replica that may no longer lead.
var errNotLeading = errors.New("not written: this replica has not renewed its leader election Lease within the renew deadline, so another one may lead")

// leading returns errNotLeading when this replica may no longer lead (see LeaderCurrent).
func (r *MirrorReconciler) leading() error {
	if r.LeaderCurrent != nil && !r.LeaderCurrent() {
		return errNotLeading
	}
	return nil
}

// buildMirror returns the mirror of w's source in namespace, as it is created.
func (r *MirrorReconciler) buildMirror(w *writing, namespace string) client.Object {
	m := r.Kind.newObject()
	m.SetName(w.state.Key.Name)
	m.SetNamespace(namespace)
	labels, annotations := mirror.MirrorMetadata(w.state.Key, w.copied, nil, nil)
	m.SetLabels(labels)
	m.SetAnnotations(annotations)
	r.Kind.copyContent(m, w.source)
	return m
}

// updatedMirror returns existing, a mirror of w's source, updated to be faithful: the source's
// content, the mirror labels and what it copies of the source's labels and annotations, and the
// labels and annotations others added. existing may be shared with the cache: it is copied, not
// modified.
func (r *MirrorReconciler) updatedMirror(w *writing, existing metav1.Object) client.Object {
	m := r.Kind.newObject()
	objectMeta(existing).DeepCopyInto(objectMeta(m))
	labels, annotations := mirror.MirrorMetadata(w.state.Key, w.copied, m.GetLabels(), m.GetAnnotations())
	m.SetLabels(labels)
	m.SetAnnotations(annotations)
	r.Kind.copyContent(m, w.source)
	return m
}

// create creates a mirror. When an object of that name is already there, it is either a mirror
// of this source missing from the cache (repaired) or someone else's (a conflict, left alone).
func (r *MirrorReconciler) create(ctx context.Context, w *writing, desired client.Object) (writeResult, error) {
	res, err := r.createMirror(ctx, w, desired)
	if apierrors.IsAlreadyExists(err) {
		return r.repairOrReport(ctx, w, desired)
	}
	return res, err
}

// repairOrReport reads the object that holds the mirror's name in its namespace, live: it repairs
// it if it is a mirror of this source, and reports a conflict otherwise, never writing it. When
// there is none, it creates desired.
func (r *MirrorReconciler) repairOrReport(ctx context.Context, w *writing, desired client.Object) (writeResult, error) {
	live := r.Kind.newObject()
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), live)
	switch {
	case apierrors.IsNotFound(err):
		return r.createMirror(ctx, w, desired)
	case err != nil:
		return unchanged, fmt.Errorf("reading the object that holds the mirror's name in %s: %w", desired.GetNamespace(), err)
	case !mirror.OwnedBy(live, w.state.Key) || live.GetDeletionTimestamp() != nil:
		return conflict, nil
	}
	content := contentOf(r.Kind, live)
	r.contents.set(live, content)
	switch mirror.Diff(w.state.Source, w.copied, live, content) {
	case mirror.Update:
		return r.update(ctx, w, r.updatedMirror(w, live))
	case mirror.Recreate:
		return r.recreate(ctx, w, live, desired)
	}
	return unchanged, nil
}

// createMirror creates desired, which is no error when its namespace went away meanwhile.
func (r *MirrorReconciler) createMirror(ctx context.Context, w *writing, desired client.Object) (writeResult, error) {
	err := r.Client.Create(ctx, desired, client.FieldOwner(FieldOwner))
	switch {
	case err == nil:
		r.wrote(w, desired)
		return created, nil
	case namespaceGone(err):
		return unchanged, nil
	}
	return unchanged, fmt.Errorf("creating mirror in %s: %w", desired.GetNamespace(), err)
}

func (r *MirrorReconciler) update(ctx context.Context, w *writing, desired client.Object) (writeResult, error) {
	// desired carries the resourceVersion that was checked for ownership: if the object changed
	// since, the update fails with a conflict and the next reconcile looks again.
	if err := r.Client.Update(ctx, desired, client.FieldOwner(FieldOwner)); err != nil {
		if namespaceGone(err) {
			return unchanged, nil
		}
		return unchanged, fmt.Errorf("updating mirror in %s: %w", desired.GetNamespace(), err)
	}
	r.wrote(w, desired)
	return updated, nil
}

// wrote records the content of a mirror just written, at the resourceVersion the write gave it:
// it is the source's, and the next reconcile need not read it back.
func (r *MirrorReconciler) wrote(w *writing, written client.Object) {
	r.contents.set(written, w.state.Source.Content)
}

// recreate replaces a mirror whose type or immutability cannot change in place.
func (r *MirrorReconciler) recreate(ctx context.Context, w *writing, existing metav1.Object, desired client.Object) (writeResult, error) {
	if _, err := r.delete(ctx, existing); err != nil {
		return unchanged, err
	}
	if res, err := r.createMirror(ctx, w, desired); res != created {
		return res, err
	}
	return updated, nil
}

// delete deletes a mirror, on condition that it is still the object whose ownership was checked.
func (r *MirrorReconciler) delete(ctx context.Context, existing metav1.Object) (writeResult, error) {
	// existing may be shared with the cache: the request is built from a fresh object.
	target := r.Kind.newObject()
	target.SetNamespace(existing.GetNamespace())
	target.SetName(existing.GetName())
	uid, resourceVersion := existing.GetUID(), existing.GetResourceVersion()
	err := r.Client.Delete(ctx, target, client.Preconditions{UID: &uid, ResourceVersion: &resourceVersion})
	switch {
	case err == nil:
		return deleted, nil
	case apierrors.IsNotFound(err):
		return unchanged, nil
	}
	return unchanged, fmt.Errorf("deleting mirror in %s: %w", existing.GetNamespace(), err)
}

// namespaceGone reports whether a write failed because its namespace is deleted or terminating:
// no mirror is wanted there any more, so it is not an error.
func namespaceGone(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}
