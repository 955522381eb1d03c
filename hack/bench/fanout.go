package main

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	fanoutNamespace = "fanout"
	fanoutPrefix    = "fanout-late-"
)

// fanoutPhases measures many sources that each select every namespace (namespaces: "*"), the
// main use of whisperer: the time to mirror them all, then what a new namespace waits until it
// has every source's mirror.
func (r *run) fanoutPhases(ctx context.Context) error {
	if err := r.createNamespaces(ctx, []string{fanoutNamespace}); err != nil {
		return err
	}
	namespaces, err := r.cluster.admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	targets := len(namespaces.Items) - 1 // all but the sources' own
	sources := r.fanoutSources
	mirrors, err := observe(r.cluster.watch.CoreV1().RESTClient(), r.kind, labelPrefix+"/namespace="+fanoutNamespace)
	if err != nil {
		return err
	}
	defer mirrors.close()
	steps := []phase{
		{fmt.Sprintf("create %d sources × every namespace", sources), func(ctx context.Context) (time.Duration, time.Duration, error) {
			start := time.Now()
			for i := range sources {
				source := r.kind.build(metav1.ObjectMeta{
					Name: fmt.Sprintf("fan-%02d", i), Namespace: fanoutNamespace,
					Labels:      map[string]string{labelPrefix + "/sync": "true"},
					Annotations: map[string]string{annotationNamespaces: "*"},
				}, r.secretSize, "v1")
				if _, err := r.kind.create(ctx, r.admin(), source); err != nil {
					return 0, 0, err
				}
			}
			took, err := waitFor(ctx, start, "every mirror", func() bool { return mirrors.total() == sources*targets })
			return took, 0, err
		}, mirrorsOnly(r.kind, sources*targets, sources)},
		{fmt.Sprintf("new namespace, %d sources (%d namespaces)", sources, r.newNamespaces), func(ctx context.Context) (time.Duration, time.Duration, error) {
			return r.timeNewNamespaces(ctx, fanoutPrefix, func(namespace string) bool {
				return mirrors.namespaceCount(namespace) == sources
			})
		}, mirrorsOnly(r.kind, sources*r.newNamespaces, anyEvents)},
	}
	for _, step := range steps {
		m, err := r.measure(ctx, step)
		if err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		r.rows = append(r.rows, r.merge(step, []measured{m}, nil))
	}
	return nil
}
