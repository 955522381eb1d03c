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

// mirrorObserver watches the mirrors of the benchmark's source, as a user would, to tell when the
// operator is done: which namespaces hold one and which version of the data each carries.
type mirrorObserver struct {
	mu       sync.Mutex
	versions map[string]string // namespace → data version
	stop     chan struct{}
}

func observeMirrors(client kubernetes.Interface, sourceNamespace string) (*mirrorObserver, error) {
	o := &mirrorObserver{versions: map[string]string{}, stop: make(chan struct{})}
	selector := "secret-syncer.jeffl.es/namespace=" + sourceNamespace
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
				o.mu.Lock()
				delete(o.versions, obj.(*corev1.Secret).Namespace)
				o.mu.Unlock()
			},
		},
	})
	go informer.Run(o.stop)
	if !cache.WaitForCacheSync(o.stop, informer.HasSynced) {
		return nil, fmt.Errorf("mirror watch did not sync")
	}
	return o, nil
}

func (o *mirrorObserver) set(s *corev1.Secret) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.versions[s.Namespace] = string(s.Data[versionKey])
}

// count returns how many mirrors carry version.
func (o *mirrorObserver) count(version string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, v := range o.versions {
		if v == version {
			n++
		}
	}
	return n
}

func (o *mirrorObserver) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.versions)
}

func (o *mirrorObserver) has(namespace, version string) bool {
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

func (o *mirrorObserver) close() { close(o.stop) }
