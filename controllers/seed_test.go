package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// seed is the README walkthrough, for one kind: a source in its namespace, asking for two
// namespaces that exist and one (missing) that does not.
type seed struct {
	kind                     testKind
	source                   client.Object
	target, target2, missing string
	operator                 *operator
}

// startSeed creates the walkthrough's namespaces and source with an operator running, and waits
// until both mirrors exist.
func startSeed(t *testing.T, k testKind, opts ...operatorOption) seed {
	t.Helper()
	ns := names("source", "target", "target2", "missing")
	s := seed{kind: k, target: ns[1], target2: ns[2], missing: ns[3]}
	createNamespaces(t, ns[0], s.target, s.target2)
	s.operator = startOperator(t, opts...)
	s.source = k.newSource(ns[0], "sync", s.target, s.target2, s.missing)
	create(t, s.source)
	s.waitForMirrors(t, s.target, s.target2)
	return s
}

// waitForMirrors waits until exactly namespaces hold a mirror of the source, each faithful to it.
func (s seed) waitForMirrors(t *testing.T, namespaces ...string) {
	t.Helper()
	waitForMirrorsOf(t, s.source, namespaces...)
}

// mirror reads the source's mirror in namespace live; nil when there is none.
func (s seed) mirror(t *testing.T, namespace string) client.Object {
	t.Helper()
	return getObject(t, kindOf(s.source), namespace, s.source.GetName())
}

// waitForMirrorsOf waits until exactly namespaces hold a mirror of source, each faithful to it.
func waitForMirrorsOf(t *testing.T, source client.Object, namespaces ...string) {
	t.Helper()
	slices.Sort(namespaces)
	k := kindOf(source)
	eventually(t, fmt.Sprintf("mirrors of %s in exactly %v", source.GetName(), namespaces), func() error {
		if got := sorted(mirrorsOf(t, source)); !slices.Equal(got, namespaces) {
			return fmt.Errorf("mirrors in %v", got)
		}
		for _, ns := range namespaces {
			if err := checkFaithful(source, getObject(t, k, ns, source.GetName())); err != nil {
				return fmt.Errorf("mirror in %s: %w", ns, err)
			}
		}
		return nil
	})
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

func TestSourceIsMirroredIntoListedNamespacesThatExist(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		errorsBefore := reconcileErrors(t)
		s := startSeed(t, k)
		ns := s.source.GetNamespace()

		// The seed's queries: sources by the sync label, mirrors by the mirror label.
		sources := listNamespacesOf(t, k, client.MatchingLabels{mirror.LabelSync: "true"}, ns, s.target, s.target2)
		if !slices.Equal(sources, []string{ns}) {
			t.Errorf("sources found by %s=true in the test's namespaces: %v, want only the source", mirror.LabelSync, sources)
		}
		mirrors := listNamespacesOf(t, k, client.MatchingLabels{mirror.LabelMirror: "true"}, ns, s.target, s.target2)
		if want := sorted([]string{s.target, s.target2}); !slices.Equal(sorted(mirrors), want) {
			t.Errorf("mirrors found by %s=true: %v, want %v", mirror.LabelMirror, mirrors, want)
		}
		wantLabels := map[string]string{mirror.LabelMirror: "true", mirror.LabelSourceName: "sync", mirror.LabelSourceNamespace: ns}
		if got := s.mirror(t, s.target).GetLabels(); !maps.Equal(got, wantLabels) {
			t.Errorf("mirror labels %v, want exactly %v", got, wantLabels)
		}
		if errs := reconcileErrors(t) - errorsBefore; errs != 0 {
			t.Errorf("%v reconcile errors for a source naming a missing namespace, want none", errs)
		}
		if attempts := s.operator.writes.in(s.missing); len(attempts) > 0 {
			t.Errorf("requests in the missing namespace: %v, want none", attempts)
		}
	})
}

func TestDeletedMirrorIsRecreated(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		deleted := s.mirror(t, s.target)
		deleteObject(t, deleted)
		eventually(t, "mirror recreated", func() error {
			m := s.mirror(t, s.target)
			if m == nil || m.GetUID() == deleted.GetUID() {
				return fmt.Errorf("not recreated yet")
			}
			return checkFaithful(s.source, m)
		})
	})
}

func TestDeletedSourceRemovesEveryMirror(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		deleteObject(t, s.source)
		s.waitForMirrors(t)
	})
}

func TestNamespaceCreatedLaterGetsItsMirror(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		createNamespaces(t, s.missing)
		s.waitForMirrors(t, s.target, s.target2, s.missing)
	})
}

func TestSourceDeletedWhileOperatorIsDownLosesItsMirrorsAtRestart(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		s.operator.stop()
		deleteObject(t, s.source)
		if got := mirrorsOf(t, s.source); len(got) != 2 {
			t.Fatalf("mirrors changed while no operator ran: %v", got)
		}
		startOperator(t)
		s.waitForMirrors(t)
	})
}

func TestHandEditedMirrorDataIsRestored(t *testing.T) {
	forEachKind(t, func(t *testing.T, k testKind) {
		s := startSeed(t, k)
		edit(t, s.mirror(t, s.target2), func(m client.Object) {
			data := k.data(m)
			for key := range data {
				data[key] = "edited by hand"
			}
			data["extra"] = "added by hand"
			k.setData(m, data)
		})
		s.waitForMirrors(t, s.target, s.target2)
	})
}

// listNamespacesOf lists, live, the namespaces among within that hold an object of kind k
// the labels of matching.
func listNamespacesOf(t *testing.T, k testKind, matching client.MatchingLabels, within ...string) []string {
	t.Helper()
	list := k.newList()
	if err := k8s.List(context.Background(), list, matching); err != nil {
		t.Fatal(err)
	}
	var found []string
	_ = meta.EachListItem(list, func(obj runtime.Object) error {
		if ns := obj.(client.Object).GetNamespace(); slices.Contains(within, ns) {
			found = append(found, ns)
		}
		return nil
	})
	return found
}

// reconcileErrors reads controller-runtime's count of failed reconciles of every kind's controller.
func reconcileErrors(t *testing.T) float64 {
	t.Helper()
	var sum float64
	for _, k := range testKinds {
		sum += sumSeries(t, "controller_runtime_reconcile_errors_total", map[string]string{"controller": controllerName(k)})
	}
	return sum
}

// sumSeries sums the values of a counter or gauge family's series that carry every label of
// match (all of its series for none).
func sumSeries(t *testing.T, family string, match map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	selector := labels.SelectorFromSet(match)
	var sum float64
	for _, f := range families {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.GetMetric() {
			series := labels.Set{}
			for _, label := range m.GetLabel() {
				series[label.GetName()] = label.GetValue()
			}
			if selector.Matches(series) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// With --resources=secrets, whisperer makes no request about ConfigMaps at all, so it needs no
// right on them.
func TestSecretsAloneMakeNoConfigMapRequest(t *testing.T) {
	s := startSeed(t, secretKindT, withKinds(Secrets))
	configMap := configMapKindT.newSource(s.source.GetNamespace(), "not-mirrored", s.target)
	create(t, configMap)
	createNamespaces(t, s.missing)
	s.waitForMirrors(t, s.target, s.target2, s.missing)
	if got := s.operator.writes.of("secrets"); len(got) == 0 {
		t.Fatal("the recorder saw no Secret request: it records nothing")
	}
	if got := s.operator.writes.of("configmaps"); len(got) > 0 {
		t.Errorf("requests about ConfigMaps: %v, want none", got)
	}
	if got := mirrorsOf(t, configMap); len(got) > 0 {
		t.Errorf("a ConfigMap source was mirrored into %v", got)
	}
}
