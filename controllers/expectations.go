package controllers

import (
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// expectationTimeout bounds how long a source waits for the mirror cache to show its writes. The
// cache shows a write within milliseconds; the bound is for the write whose event is never seen
// (an object created, then deleted while the watch was down), after which the source plans from
// the cache as it is.
const expectationTimeout = 30 * time.Second

// expectations are the mirror writes of each source that the mirror cache has not shown yet, as
// in Kubernetes' ReplicaSet controller. Planning from a cache that lacks a write would make it a
// second time (a refused create, a conflicting update). So a reconcile of a source with writes
// pending does nothing: the events that show the writes mark them seen, and the last of them
// reconciles the source again. No worker waits. An event that only shows a write as whisperer
// made it reconciles nothing: there is nothing to do.
type expectations struct {
	mu      sync.Mutex
	pending map[types.NamespacedName]*pendingWrites
}

type pendingWrites struct {
	byNamespace map[string]expectation
	since       time.Time
	// deferred is set when a reconcile of the source waited for them: the event that shows the
	// last of them reconciles the source.
	deferred bool
}

// expectation is one write the cache must show: an object whose resourceVersion is no longer
// before, or, for a delete, no object (or one being deleted).
type expectation struct {
	before string
	gone   bool
}

// metBy reports whether obj, as the cache now shows it, shows the write; gone as for observe.
func (x expectation) metBy(obj metav1.Object, gone bool) bool {
	if x.gone {
		return gone || obj.GetDeletionTimestamp() != nil
	}
	return !gone && obj.GetResourceVersion() != x.before
}

func newExpectations() *expectations {
	return &expectations{pending: map[types.NamespacedName]*pendingWrites{}}
}

// expect records, before the write is sent, that the mirror of source in namespace is written:
// the watch event may arrive before the write's response.
func (e *expectations) expect(source types.NamespacedName, namespace string, x expectation) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pending[source]
	if p == nil {
		p = &pendingWrites{byNamespace: map[string]expectation{}, since: time.Now()}
		e.pending[source] = p
	}
	p.byNamespace[namespace] = x
}

// forget drops the expectation of a write that changed nothing or failed.
func (e *expectations) forget(source types.NamespacedName, namespace string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.drop(source, namespace)
}

// observe marks as seen the write that obj, as the mirror cache now shows it, satisfies; gone
// says that obj has left the cache, or no longer claims the source it claimed. It reports whether
// obj satisfied a write, and whether the source must be reconciled now: a reconcile waited for
// the writes, and this was the last of them.
func (e *expectations) observe(obj metav1.Object, gone bool) (satisfied, release bool) {
	source, ok := mirror.SourceOf(obj)
	if !ok {
		return false, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pending[source]
	if p == nil {
		return false, false
	}
	x, ok := p.byNamespace[obj.GetNamespace()]
	if !ok {
		return false, false
	}
	if !x.metBy(obj, gone) {
		return false, false
	}
	deferred := p.deferred
	e.drop(source, obj.GetNamespace())
	return true, deferred && e.pending[source] == nil
}

func (e *expectations) drop(source types.NamespacedName, namespace string) {
	if p := e.pending[source]; p != nil {
		delete(p.byNamespace, namespace)
		if len(p.byNamespace) == 0 {
			delete(e.pending, source)
		}
	}
}

// wait returns how long source's reconciles must still wait for the cache to show its writes:
// zero once it shows them all, or once they have been pending for expectationTimeout.
func (e *expectations) wait(source types.NamespacedName) time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.pending[source]
	if p == nil {
		return 0
	}
	if left := expectationTimeout - time.Since(p.since); left > 0 {
		p.deferred = true
		return left
	}
	delete(e.pending, source)
	return 0
}
