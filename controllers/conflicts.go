package controllers

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
)

// maxBlockerWatches bounds the watches conflicts open: one per object that blocks a mirror. Past
// it, a blocked source finds out that the object went at its next periodic retry
// (--conflict-retry-interval) instead of at once.
const maxBlockerWatches = 200

// conflicts remembers, for each source, the namespaces where an object that is not its mirror
// holds its name (a conflict), so that the next attempt there reads before it writes. Such an
// object is in no cache (whisperer caches only sources and mirrors), so its deletion raises no
// event: conflicts watches each one by name, while it blocks a source, and reconciles the sources
// it blocks as soon as it goes.
type conflicts struct {
	watcher blockerWatcher
	// notify reconciles a source, in the namespace of the object that blocked it.
	notify func(source, blocker types.NamespacedName)

	mu       sync.Mutex
	bySource map[types.NamespacedName]sets.Set[string]
	watches  map[types.NamespacedName]*blockerWatch
}

// blockerWatch watches one blocking object, for the sources it blocks.
type blockerWatch struct {
	stop    context.CancelFunc
	blocked sets.Set[types.NamespacedName]
}

// blockerWatcher opens a watch of the object at key, which calls gone when it is deleted.
type blockerWatcher func(key types.NamespacedName, gone func()) (stop context.CancelFunc)

func newConflicts(watcher blockerWatcher, notify func(source, blocker types.NamespacedName)) *conflicts {
	return &conflicts{
		watcher:  watcher,
		notify:   notify,
		bySource: map[types.NamespacedName]sets.Set[string]{},
		watches:  map[types.NamespacedName]*blockerWatch{},
	}
}

// set records what a reconcile of source found in the namespaces of scope (nil: all): blocked in
// found, free in the others (none is blocked when the source is gone or converged), except in
// unsure, where its write failed and what was known before stays known.
func (c *conflicts) set(source types.NamespacedName, scope sets.Set[string], found []string, unsure sets.Set[string]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	before := c.bySource[source]
	now := sets.New(found...).Union(before.Intersection(unsure))
	if scope != nil {
		now = now.Union(before.Difference(scope))
	}
	for namespace := range c.bySource[source].Difference(now) {
		c.unblock(types.NamespacedName{Namespace: namespace, Name: source.Name}, source)
	}
	for namespace := range now.Difference(c.bySource[source]) {
		c.block(types.NamespacedName{Namespace: namespace, Name: source.Name}, source)
	}
	if now.Len() == 0 {
		delete(c.bySource, source)
	} else {
		c.bySource[source] = now
	}
}

// in returns the namespaces where source is blocked.
func (c *conflicts) in(source types.NamespacedName) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bySource[source].UnsortedList()
}

// count returns how many namespaces source is blocked in.
func (c *conflicts) count(source types.NamespacedName) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bySource[source].Len()
}

// blocked reports whether source was blocked in namespace at its last reconcile.
func (c *conflicts) blocked(source types.NamespacedName, namespace string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bySource[source].Has(namespace)
}

func (c *conflicts) block(blocker, source types.NamespacedName) {
	w := c.watches[blocker]
	if w == nil {
		if len(c.watches) >= maxBlockerWatches {
			return
		}
		w = &blockerWatch{blocked: sets.New[types.NamespacedName]()}
		w.stop = c.watcher(blocker, func() { c.released(blocker) })
		c.watches[blocker] = w
	}
	w.blocked.Insert(source)
}

func (c *conflicts) unblock(blocker, source types.NamespacedName) {
	w := c.watches[blocker]
	if w == nil {
		return
	}
	w.blocked.Delete(source)
	if w.blocked.Len() == 0 {
		w.stop()
		delete(c.watches, blocker)
	}
}

// released reconciles the sources that blocker blocked, now that it is gone. Their reconcile
// clears the conflict, which closes the watch.
func (c *conflicts) released(blocker types.NamespacedName) {
	c.mu.Lock()
	var blocked []types.NamespacedName
	if w := c.watches[blocker]; w != nil {
		blocked = w.blocked.UnsortedList()
	}
	c.mu.Unlock()
	for _, source := range blocked {
		c.notify(source, blocker)
	}
}

// openWatches counts the watches open.
func (c *conflicts) openWatches() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.watches)
}

// watchByName returns a blockerWatcher that watches objects of k by name, their metadata only,
// through client, for as long as ctx lasts or until stopped.
func watchByName(ctx context.Context, client metadata.Interface, k Kind) blockerWatcher {
	return func(key types.NamespacedName, gone func()) context.CancelFunc {
		ctx, stop := context.WithCancel(ctx)
		resource := client.Resource(k.resource()).Namespace(key.Namespace)
		byName := fields.OneTermEqualSelector("metadata.name", key.Name).String()
		lw := &toolscache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
				opts.FieldSelector = byName
				return resource.List(ctx, opts)
			},
			WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
				opts.FieldSelector = byName
				return resource.Watch(ctx, opts)
			},
		}
		informer := toolscache.NewSharedInformer(lw, &metav1.PartialObjectMetadata{}, 0)
		if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{DeleteFunc: func(any) { gone() }}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Cannot watch the object that blocks a mirror", "namespace", key.Namespace, "name", key.Name)
		}
		go informer.RunWithContext(ctx)
		return stop
	}
}
