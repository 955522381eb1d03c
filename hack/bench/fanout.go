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
	targetNames := fanoutTargets(namespaces.Items)
	targets := len(targetNames)
	raw, err := r.rawFanout(ctx, targetNames)
	if err != nil {
		return err
	}
	mirrors, err := r.observeGroups(ctx, labelPrefix+"/namespace="+fanoutNamespace)
	if err != nil {
		return err
	}
	defer mirrors.close()
	all := mirrors.all
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
		}, created, "create"},
		{fmt.Sprintf("new namespace, %s (%d namespaces)", sources, r.newNamespaces), func(ctx context.Context) (time.Duration, time.Duration, error) {
			return r.timeNewNamespaces(ctx, fanoutPrefix, func(namespace string) bool {
				return all(func(g fanoutGroup, mirrors *observer) bool { return mirrors.namespaceCount(namespace) == g.sources })
			})
		}, added, ""},
	}
	return r.measureEach(ctx, steps, raw)
}

// rawFanout makes the writes of the fan-out's create phase with the raw writer, once at each of
// its concurrencies: as many objects of each kind as the groups' mirrors, named as theirs and
// with labels of the same sizes, in the same namespaces, source by source as whisperer writes
// them. After each, it deletes them (untimed), so that whisperer's phase starts on the same
// cluster.
func (r *run) rawFanout(ctx context.Context, targets []string) (*rawResult, error) {
	selector := rawLabelPrefix + "/namespace=" + fanoutNamespace
	observers, err := r.observeGroups(ctx, selector)
	if err != nil {
		return nil, err
	}
	defer observers.close()
	type write struct {
		kind            kind
		namespace, name string
	}
	var writes []write
	for _, g := range r.fanout {
		for i := range g.sources {
			for _, namespace := range targets {
				writes = append(writes, write{g.kind, namespace, fmt.Sprintf("fan-%02d", i)})
			}
		}
	}
	var phases []rawPhase
	for _, c := range r.rawConcurrency {
		client, err := r.rawClient()
		if err != nil {
			return nil, err
		}
		p, err := r.measureRaw(ctx, c, "create "+describeGroups(r.fanout), func() error {
			return parallel(len(writes), c, func(i int) error {
				w := writes[i]
				_, err := w.kind.create(ctx, client, w.kind.build(rawMeta(w.namespace, w.name, fanoutNamespace), r.secretSize, "v1"))
				return err
			})
		}, func() bool {
			return observers.all(func(g fanoutGroup, o *observer) bool { return o.count("v1") == g.sources*len(targets) })
		})
		if err != nil {
			return nil, err
		}
		phases = append(phases, p)
		if err := parallel(len(targets)*len(r.fanout), c, func(i int) error {
			return client.Delete().Namespace(targets[i/len(r.fanout)]).Resource(r.fanout[i%len(r.fanout)].kind.resource).
				Param("labelSelector", selector).Do(ctx).Error()
		}); err != nil {
			return nil, fmt.Errorf("deleting the raw fan-out: %w", err)
		}
		if _, err := waitFor(ctx, time.Now(), "raw fan-out deleted", func() bool {
			return observers.all(func(_ fanoutGroup, o *observer) bool { return o.total() == 0 })
		}); err != nil {
			return nil, err
		}
	}
	return fastest(phases, r.rawConcurrency), nil
}

// groupObservers watch the objects of each fan-out group's kind.
type groupObservers struct {
	groups    []fanoutGroup
	observers []*observer
}

// observeGroups watches, for each of r.fanout, the objects of its kind that match selector.
func (r *run) observeGroups(ctx context.Context, selector string) (*groupObservers, error) {
	g := &groupObservers{groups: r.fanout}
	for _, group := range r.fanout {
		o, err := observe(ctx, r.cluster.watch.CoreV1().RESTClient(), group.kind, selector)
		if err != nil {
			g.close()
			return nil, err
		}
		g.observers = append(g.observers, o)
	}
	return g, nil
}

// all reports whether cond holds for every group and the observer of its kind.
func (g *groupObservers) all(cond func(group fanoutGroup, o *observer) bool) bool {
	for i, group := range g.groups {
		if !cond(group, g.observers[i]) {
			return false
		}
	}
	return true
}

func (g *groupObservers) close() {
	for _, o := range g.observers {
		o.close()
	}
}
