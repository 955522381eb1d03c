package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// secretObserver watches Secrets, one per namespace, as a user would, to tell when a phase is
// done: which namespaces hold one and which version of the data each carries. The raw client's
// phases are timed with one too, so that both sides pay for the watch that times them.
type secretObserver struct {
	mu       sync.Mutex
	versions map[string]string // namespace → data version
	counts   map[string]int    // data version → namespaces: the polls read it, not every namespace
	stop     chan struct{}
}

// observeSecrets watches the Secrets that match selector, in every namespace.
func observeSecrets(client kubernetes.Interface, selector string) (*secretObserver, error) {
	o := &secretObserver{versions: map[string]string{}, counts: map[string]int{}, stop: make(chan struct{})}
	lw := &cache.ListWatch{
		ListFunc: func(opts metav1.ListOptions) (runtime.Object, error) {
			opts.LabelSelector = selector
			return client.CoreV1().Secrets("").List(context.Background(), opts)
		},
		WatchFunc: func(opts metav1.ListOptions) (watch.Interface, error) {
			opts.LabelSelector = selector
			return client.CoreV1().Secrets("").Watch(context.Background(), opts)
		},
	}
	_, informer := cache.NewInformerWithOptions(cache.InformerOptions{
		ListerWatcher: lw,
		ObjectType:    &corev1.Secret{},
		Handler: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { o.set(obj.(*corev1.Secret)) },
			UpdateFunc: func(_, obj any) { o.set(obj.(*corev1.Secret)) },
			DeleteFunc: func(obj any) {
				if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = tombstone.Obj
				}
				o.forget(obj.(*corev1.Secret).Namespace)
			},
		},
	})
	go informer.Run(o.stop)
	if !cache.WaitForCacheSync(o.stop, informer.HasSynced) {
		return nil, fmt.Errorf("watch of Secrets %s did not sync", selector)
	}
	return o, nil
}

func (o *secretObserver) set(s *corev1.Secret) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forgetLocked(s.Namespace)
	version := string(s.Data[versionKey])
	o.versions[s.Namespace] = version
	o.counts[version]++
}

func (o *secretObserver) forget(namespace string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.forgetLocked(namespace)
}

func (o *secretObserver) forgetLocked(namespace string) {
	if version, ok := o.versions[namespace]; ok {
		o.counts[version]--
		delete(o.versions, namespace)
	}
}

// count returns how many Secrets carry version.
func (o *secretObserver) count(version string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[version]
}

func (o *secretObserver) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.versions)
}

func (o *secretObserver) has(namespace, version string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.versions[namespace] == version
}

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

func (o *secretObserver) close() { close(o.stop) }
