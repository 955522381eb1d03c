package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// result is what one write did.
type result string

const (
	created  result = "created"
	updated  result = "updated"
	deleted  result = "deleted"
	conflict result = "conflict"
	// unchanged: nothing needed writing after all, or the namespace went away meanwhile.
	unchanged result = "unchanged"
)

// outcome sums up the writes of one reconcile.
type outcome struct {
	mu                        sync.Mutex
	created, updated, deleted int
	// conflicts lists the namespaces where a Secret that is not a mirror of the source holds its name.
	conflicts []string
	// written holds the namespaces where a write succeeded.
	written sets.Set[string]
	// failed counts the namespaces where a write failed.
	failed int
	errs   []error
}

func (o *outcome) add(namespace string, res result, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if res == created || res == updated || res == deleted {
		o.written.Insert(namespace)
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
func (o *outcome) summary(state mirror.State) string {
	switch {
	case state.Refusal != "":
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

func (o *outcome) changed() bool { return o.created+o.updated+o.deleted > 0 }

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

// write carries out the planned actions on at most WriteConcurrency workers. A failed write does
// not stop the others: every mirror that can converge does. The workers live for the whole
// reconcile rather than one goroutine per write: each write goes deep into the HTTP client, and a
// new goroutine would grow its stack to that depth every time.
func (r *SecretMirrorReconciler) write(ctx context.Context, state mirror.State, actions []mirror.Action) *outcome {
	o := &outcome{written: sets.New[string]()}
	next := make(chan mirror.Action)
	var wg sync.WaitGroup
	for range min(max(1, r.WriteConcurrency), len(actions)) {
		wg.Go(func() {
			for action := range next {
				res, err := r.writeTraced(ctx, state, action)
				ctrl.LoggerFrom(ctx).V(1).Info("Mirror written", "targetNamespace", action.Namespace, "action", action.Kind, "result", res)
				countWrite(action.Kind, res, err)
				o.add(action.Namespace, res, err)
			}
		})
	}
	for _, action := range actions {
		next <- action
	}
	close(next)
	wg.Wait()
	return o
}

// writeTraced is writeOne in a span of its own.
func (r *SecretMirrorReconciler) writeTraced(ctx context.Context, state mirror.State, action mirror.Action) (res result, err error) {
	ctx, span := r.tracer.Start(ctx, "WriteMirror", trace.WithAttributes(attrTargetNamespace.String(action.Namespace)))
	defer func() {
		kind := string(action.Kind)
		if res == conflict {
			kind = "skip-conflict"
		}
		span.SetAttributes(attrAction.String(kind), attrResult.String(string(res)))
		endSpan(span, err)
	}()
	return r.writeOne(ctx, state, action)
}

func (r *SecretMirrorReconciler) writeOne(ctx context.Context, state mirror.State, action mirror.Action) (result, error) {
	object := action.Object(state.Secret)
	switch action.Kind {
	case mirror.Create:
		if r.memory.isConflict(state.Source, action.Namespace) {
			// Still blocked, most likely: read first rather than make a write that fails.
			return r.adopt(ctx, state, object)
		}
		return r.create(ctx, state, object)
	case mirror.Update:
		return r.update(ctx, object)
	case mirror.Recreate:
		return r.recreate(ctx, action.Existing, object)
	case mirror.Delete:
		return r.delete(ctx, action.Existing)
	}
	return unchanged, fmt.Errorf("unknown action %q", action.Kind)
}

// create creates a mirror. When a Secret of that name is already there, it is either a mirror
// of this source missing from the cache (repaired) or someone else's (a conflict, left alone).
func (r *SecretMirrorReconciler) create(ctx context.Context, state mirror.State, desired *corev1.Secret) (result, error) {
	res, err := r.createMirror(ctx, desired)
	if apierrors.IsAlreadyExists(err) {
		return r.adopt(ctx, state, desired)
	}
	return res, err
}

// adopt reads the Secret that holds the mirror's name in its namespace, live, and repairs it if
// it is a mirror of this source; when there is none, it creates desired. Any other Secret is a
// conflict and is never written.
func (r *SecretMirrorReconciler) adopt(ctx context.Context, state mirror.State, desired *corev1.Secret) (result, error) {
	live := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(desired), live)
	switch {
	case apierrors.IsNotFound(err):
		return r.createMirror(ctx, desired)
	case err != nil:
		return unchanged, fmt.Errorf("reading the Secret that holds the mirror's name in %s: %w", desired.Namespace, err)
	case !mirror.OwnedBy(live, state.Source):
		return conflict, nil
	}
	switch mirror.Diff(state.Secret, live) {
	case mirror.Update:
		return r.update(ctx, mirror.Updated(state.Secret, live))
	case mirror.Recreate:
		return r.recreate(ctx, live, desired)
	}
	return unchanged, nil
}

// createMirror creates desired, which is no error when its namespace went away meanwhile.
func (r *SecretMirrorReconciler) createMirror(ctx context.Context, desired *corev1.Secret) (result, error) {
	err := r.Client.Create(ctx, desired, client.FieldOwner(FieldOwner))
	switch {
	case err == nil:
		return created, nil
	case namespaceGone(err):
		return unchanged, nil
	}
	return unchanged, fmt.Errorf("creating mirror in %s: %w", desired.Namespace, err)
}

func (r *SecretMirrorReconciler) update(ctx context.Context, desired *corev1.Secret) (result, error) {
	// desired carries the resourceVersion that was checked for ownership: if the Secret changed
	// since, the update fails with a conflict and the next reconcile looks again.
	if err := r.Client.Update(ctx, desired, client.FieldOwner(FieldOwner)); err != nil {
		if namespaceGone(err) {
			return unchanged, nil
		}
		return unchanged, fmt.Errorf("updating mirror in %s: %w", desired.Namespace, err)
	}
	return updated, nil
}

// recreate replaces a mirror whose type or immutability cannot change in place.
func (r *SecretMirrorReconciler) recreate(ctx context.Context, existing, desired *corev1.Secret) (result, error) {
	if _, err := r.delete(ctx, existing); err != nil {
		return unchanged, err
	}
	if res, err := r.createMirror(ctx, desired); res != created {
		return res, err
	}
	return updated, nil
}

// delete deletes a mirror, on condition that it is still the object whose ownership was checked.
func (r *SecretMirrorReconciler) delete(ctx context.Context, existing *corev1.Secret) (result, error) {
	// existing may be shared with the cache: the request is built from a fresh object.
	target := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: existing.Namespace, Name: existing.Name}}
	uid, resourceVersion := existing.UID, existing.ResourceVersion
	err := r.Client.Delete(ctx, target, client.Preconditions{UID: &uid, ResourceVersion: &resourceVersion})
	switch {
	case err == nil:
		return deleted, nil
	case apierrors.IsNotFound(err):
		return unchanged, nil
	}
	return unchanged, fmt.Errorf("deleting mirror in %s: %w", existing.Namespace, err)
}

// namespaceGone reports whether a write failed because its namespace is deleted or terminating:
// no mirror is wanted there any more, so it is not an error.
func namespaceGone(err error) bool {
	return apierrors.IsNotFound(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}
