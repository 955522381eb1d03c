package controllers

import (
	"context"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// cacheSyncTimeout bounds how long a reconcile waits for the mirror cache to show its writes.
const cacheSyncTimeout = 10 * time.Second

// cacheSyncPoll is how often the mirror cache is looked at while waiting.
const cacheSyncPoll = 10 * time.Millisecond

// awaitCache waits until the mirror cache shows the writes this reconcile made in the namespaces
// of written; wanted are the namespaces that must hold a mirror. Each write raises a watch event that reconciles the source again; without the
// wait, that reconcile could plan from a cache that has not seen the write yet and make it a
// second time (a refused create, a conflicting update). If someone else changes a mirror
// meanwhile, the wait ends at cacheSyncTimeout and the next reconcile sorts it out.
func (r *SecretMirrorReconciler) awaitCache(ctx context.Context, state mirror.State, wanted map[string]bool, written sets.Set[string]) {
	if written.Len() == 0 {
		return
	}
	pending := written.UnsortedList()
	compare := mirror.NewComparer(state.Secret)
	deadline := time.Now().Add(cacheSyncTimeout)
	for {
		pending = slices.DeleteFunc(pending, func(namespace string) bool {
			return r.cacheShows(state.Source, compare, namespace, wanted[namespace])
		})
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ctrl.LoggerFrom(ctx).V(1).Info("Mirror cache did not show this reconcile's writes in time",
				"timeout", cacheSyncTimeout, "namespaces", len(pending))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(cacheSyncPoll):
		}
	}
}

// cacheShows reports whether the mirror cache shows namespace as the plan wants it: a faithful
// mirror of source where one is wanted, none elsewhere.
func (r *SecretMirrorReconciler) cacheShows(source types.NamespacedName, compare *mirror.Comparer, namespace string, wanted bool) bool {
	cached, exists := r.mirrors.get(types.NamespacedName{Namespace: namespace, Name: source.Name})
	exists = exists && mirror.OwnedBy(cached, source)
	if !wanted {
		return !exists
	}
	return exists && compare.Diff(cached) == ""
}
