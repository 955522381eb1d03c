package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// observer watches objects of one kind, as a user would, to tell when a phase is done: which
// objects exist and which version of the data each carries. Both sides' phases are timed with
// one, so both pay alike for the watch that times them.
type observer struct {
	version func(runtime.Object) string

	mu          sync.Mutex
	versions    map[objectKey]string // object → data version
	counts      map[string]int       // data version → objects: the polls read it, not every object
	inNamespace map[string]int       // namespace → objects
	stop        context.CancelFunc
}

type objectKey struct{ namespace, name string }

func newObserver(version func(runtime.Object) string) *observer {
	return &observer{version: version, versions: map[objectKey]string{}, counts: map[string]int{},
		inNamespace: map[string]int{}, stop: func() {}}
}

// observe watches the objects of kind k that match selector, in every namespace, through c,
// which should read protobuf as whisperer's informers do: the API server encodes each watch event
// once per format, so whisperer and an observer share one encoding, and an observer in JSON
// would cost the API server a second encoding in whisperer's phases only. It watches until ctx is
// done or close is called.
func observe(ctx context.Context, c rest.Interface, k kind, selector string) (*observer, error) {
	ctx, cancel := context.WithCancel(ctx)
	o := newObserver(k.version)
	o.stop = cancel
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: k.listWatch(c, selector),
		ObjectType:    k.object(),
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { o.set(obj.(runtime.Object)) },
			UpdateFunc: func(_, obj any) { o.set(obj.(runtime.Object)) },
			DeleteFunc: func(obj any) {
				if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = tombstone.Obj
				}
				o.forget(obj.(metav1.Object))
			},
		},
	})
	go informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		cancel()
		return nil, fmt.Errorf("watch of %s %s did not sync: %w", k.resource, selector, ctx.Err())
	}
	return o, nil
}

func (o *observer) set(obj runtime.Object) {
	m := obj.(metav1.Object)
	o.mu.Lock()
	defer o.mu.Unlock()
	key := objectKey{m.GetNamespace(), m.GetName()}
	o.forgetLocked(key)
	version := o.version(obj)
	o.versions[key] = version
	o.counts[version]++
	o.inNamespace[key.namespace]++
}

func (o *observer) forget(m metav1.Object) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forgetLocked(objectKey{m.GetNamespace(), m.GetName()})
}

func (o *observer) forgetLocked(key objectKey) {
	if version, ok := o.versions[key]; ok {
		o.counts[version]--
		o.inNamespace[key.namespace]--
		delete(o.versions, key)
	}
}

// count returns how many objects carry version.
func (o *observer) count(version string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[version]
}

func (o *observer) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.versions)
}

// namespaceCount returns how many objects are in namespace.
func (o *observer) namespaceCount(namespace string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.inNamespace[namespace]
}

func (o *observer) has(namespace, name, version string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	v, ok := o.versions[objectKey{namespace, name}]
	return ok && v == version
}

func (o *observer) close() { o.stop() }

// waitFor polls cond every few milliseconds and returns the time since start when it holds.
func waitFor(ctx context.Context, start time.Time, what string, cond func() bool) (time.Duration, error) {
	for !cond() {
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return time.Since(start), nil
}
