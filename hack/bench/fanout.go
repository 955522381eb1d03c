package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/whisperer-operator/whisperer/internal/mirror"
	"github.com/whisperer-operator/whisperer/internal/options"
)

const (
	fanoutNamespace = "fanout"
	fanoutPrefix    = "fanout-late-"
)

// fanoutGroup is sources of one kind that each select every namespace (namespaces: "*"), the
// main use of whisperer. A run's groups are all measured together.
type fanoutGroup struct {
	kind    kind
	sources int
}

// excluded are the namespaces whisperer never mirrors into with its defaults, which the benchmark
// runs it with.
var excluded = must(mirror.ParsePatterns(options.DefaultExcludedNamespaces))

// fanoutTargets returns the names of the namespaces that sources with namespaces "*" mirror into:
// all but their own and those whisperer excludes.
func fanoutTargets(namespaces []corev1.Namespace) []string {
	var targets []string
	for _, ns := range namespaces {
		if ns.Name != fanoutNamespace && !excluded.Matches(ns.Name) {
			targets = append(targets, ns.Name)
		}
	}
	return targets
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func describeGroups(groups []fanoutGroup) string {
	var parts []string
	for _, g := range groups {
		parts = append(parts, fmt.Sprintf("%d %s", g.sources, g.kind.name))
	}
	return strings.Join(parts, " + ") + " sources"
}

// fanoutPhases measures r.fanout: the time to mirror every source into every namespace, then what
// a new namespace waits until it holds every source's mirror.
func (r *run) fanoutPhases(ctx context.Context) error {
	if err := r.createNamespaces(ctx, []string{fanoutNamespace}); err != nil {
		return err
	}
	namespaces, err := r.cluster.admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	targets := len(fanoutTargets(namespaces.Items))
	mirrors := make([]*observer, len(r.fanout))
	for i, g := range r.fanout {
		if mirrors[i], err = observe(ctx, r.cluster.watch.CoreV1().RESTClient(), g.kind, labelPrefix+"/namespace="+fanoutNamespace); err != nil {
			return err
		}
		defer mirrors[i].close()
	}
	all := func(cond func(g fanoutGroup, mirrors *observer) bool) bool {
		for i, g := range r.fanout {
			if !cond(g, mirrors[i]) {
				return false
			}
		}
		return true
	}
	// Each source records one Event when it first mirrors; new namespaces repeat that Event.
	created, added := expect{writeCounts{}, 0}, expect{writeCounts{}, anyEvents}
	for _, g := range r.fanout {
		created.writes[g.kind.resource] += g.sources * targets
		created.events += g.sources
		added.writes[g.kind.resource] += g.sources * r.newNamespaces
	}
	sources := describeGroups(r.fanout)
	steps := []phase{
		{fmt.Sprintf("create %s × every namespace", sources), func(ctx context.Context) (time.Duration, time.Duration, error) {
			start := time.Now()
			for _, g := range r.fanout {
				for i := range g.sources {
					source := g.kind.build(metav1.ObjectMeta{
						Name: fmt.Sprintf("fan-%02d", i), Namespace: fanoutNamespace,
						Labels:      map[string]string{labelPrefix + "/sync": "true"},
						Annotations: map[string]string{annotationNamespaces: "*"},
					}, r.secretSize, "v1")
					if _, err := g.kind.create(ctx, r.admin(), source); err != nil {
						return 0, 0, err
					}
				}
			}
			took, err := waitFor(ctx, start, "every mirror", func() bool {
				return all(func(g fanoutGroup, mirrors *observer) bool { return mirrors.total() == g.sources*targets })
			})
			return took, 0, err
		}, created, ""},
		{fmt.Sprintf("new namespace, %s (%d namespaces)", sources, r.newNamespaces), func(ctx context.Context) (time.Duration, time.Duration, error) {
			return r.timeNewNamespaces(ctx, fanoutPrefix, func(namespace string) bool {
				return all(func(g fanoutGroup, mirrors *observer) bool { return mirrors.namespaceCount(namespace) == g.sources })
			})
		}, added, ""},
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
