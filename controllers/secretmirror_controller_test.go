package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// seed is the README walkthrough: a source in its namespace, asking for two namespaces that
// exist and one (missing) that does not.
type seed struct {
	source                   *corev1.Secret
	target, target2, missing string
	operator                 *operator
}

// startSeed creates the walkthrough's namespaces and source with an operator running, and waits
// until both mirrors exist.
func startSeed(t *testing.T) seed {
	t.Helper()
	ns := names("source", "target", "target2", "missing")
	s := seed{target: ns[1], target2: ns[2], missing: ns[3]}
	createNamespaces(t, ns[0], s.target, s.target2)
	s.operator = startOperator(t)
	s.source = sourceSecret(ns[0], "sync", s.target, s.target2, s.missing)
	create(t, s.source)
	s.waitForMirrors(t, s.target, s.target2)
	return s
}

// waitForMirrors waits until exactly namespaces hold a mirror of the source, each faithful to it.
func (s seed) waitForMirrors(t *testing.T, namespaces ...string) {
	t.Helper()
	slices.Sort(namespaces)
	eventually(t, fmt.Sprintf("mirrors of %s in exactly %v", s.source.Name, namespaces), func() error {
		if got := sorted(mirrorsOf(t, s.source)); !slices.Equal(got, namespaces) {
			return fmt.Errorf("mirrors in %v", got)
		}
		for _, ns := range namespaces {
			if err := checkFaithful(s.source, getSecret(t, ns, s.source.Name)); err != nil {
				return fmt.Errorf("mirror in %s: %w", ns, err)
			}
		}
		return nil
	})
}

// checkFaithful returns why m is not a faithful mirror of source, or nil. Labels that others
// add to a mirror are allowed.
func checkFaithful(source, m *corev1.Secret) error {
	if m == nil {
		return fmt.Errorf("no mirror")
	}
	wantLabels := map[string]string{mirror.LabelMirror: "true", mirror.LabelSourceName: mirror.NameLabelValue(source.Name), mirror.LabelSourceNamespace: source.Namespace}
	for key, value := range wantLabels {
		if m.Labels[key] != value {
			return fmt.Errorf("labels %v, want %v among them", m.Labels, wantLabels)
		}
	}
	_, annotated := m.Annotations[mirror.AnnotationNamespaces]
	switch {
	case m.Labels[mirror.LabelSync] != "":
		return fmt.Errorf("carries the sync label")
	case annotated:
		return fmt.Errorf("carries the namespaces annotation")
	case m.Type != corev1.SecretTypeOpaque:
		return fmt.Errorf("type %q, want Opaque", m.Type)
	case !maps.EqualFunc(m.Data, source.Data, slices.Equal):
		return fmt.Errorf("data differs from the source's")
	}
	return nil
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

func TestSourceIsMirroredIntoListedNamespacesThatExist(t *testing.T) {
	errorsBefore := reconcileErrors(t)
	s := startSeed(t)

	// The seed's queries: sources by the sync label, mirrors by the mirror label.
	sources := listNamespacesOf(t, client.MatchingLabels{mirror.LabelSync: "true"}, s.source.Namespace, s.target, s.target2)
	if !slices.Equal(sources, []string{s.source.Namespace}) {
		t.Errorf("sources found by %s=true in the test's namespaces: %v, want only the source", mirror.LabelSync, sources)
	}
	mirrors := listNamespacesOf(t, client.MatchingLabels{mirror.LabelMirror: "true"}, s.source.Namespace, s.target, s.target2)
	if want := sorted([]string{s.target, s.target2}); !slices.Equal(sorted(mirrors), want) {
		t.Errorf("mirrors found by %s=true: %v, want %v", mirror.LabelMirror, mirrors, want)
	}
	wantLabels := map[string]string{mirror.LabelMirror: "true", mirror.LabelSourceName: "sync", mirror.LabelSourceNamespace: s.source.Namespace}
	if got := getSecret(t, s.target, "sync").Labels; !maps.Equal(got, wantLabels) {
		t.Errorf("mirror labels %v, want exactly %v", got, wantLabels)
	}
	if errs := reconcileErrors(t) - errorsBefore; errs != 0 {
		t.Errorf("%v reconcile errors for a source naming a missing namespace, want none", errs)
	}
}

func TestDeletedMirrorIsRecreated(t *testing.T) {
	s := startSeed(t)
	deleted := getSecret(t, s.target, s.source.Name)
	if err := k8s.Delete(context.Background(), deleted); err != nil {
		t.Fatal(err)
	}
	eventually(t, "mirror recreated", func() error {
		m := getSecret(t, s.target, s.source.Name)
		if m == nil || m.UID == deleted.UID {
			return fmt.Errorf("not recreated yet")
		}
		return checkFaithful(s.source, m)
	})
}

func TestDeletedSourceRemovesEveryMirror(t *testing.T) {
	s := startSeed(t)
	if err := k8s.Delete(context.Background(), s.source); err != nil {
		t.Fatal(err)
	}
	s.waitForMirrors(t)
}

func TestNamespaceCreatedLaterGetsItsMirror(t *testing.T) {
	s := startSeed(t)
	createNamespaces(t, s.missing)
	s.waitForMirrors(t, s.target, s.target2, s.missing)
}

func TestSourceDeletedWhileOperatorIsDownLosesItsMirrorsAtRestart(t *testing.T) {
	s := startSeed(t)
	s.operator.stop()
	if err := k8s.Delete(context.Background(), s.source); err != nil {
		t.Fatal(err)
	}
	if got := mirrorsOf(t, s.source); len(got) != 2 {
		t.Fatalf("mirrors changed while no operator ran: %v", got)
	}
	startOperator(t)
	s.waitForMirrors(t)
}

func TestHandEditedMirrorDataIsRestored(t *testing.T) {
	s := startSeed(t)
	m := getSecret(t, s.target2, s.source.Name)
	m.Data["secret"] = []byte("edited by hand")
	m.Data["extra"] = []byte("added by hand")
	if err := k8s.Update(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	s.waitForMirrors(t, s.target, s.target2)
}

// listNamespacesOf lists, live, the namespaces among within that hold a Secret matching labels.
func listNamespacesOf(t *testing.T, labels client.MatchingLabels, within ...string) []string {
	t.Helper()
	list := &corev1.SecretList{}
	if err := k8s.List(context.Background(), list, labels); err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, s := range list.Items {
		if slices.Contains(within, s.Namespace) {
			found = append(found, s.Namespace)
		}
	}
	return found
}

// reconcileErrors reads controller-runtime's count of failed reconciles of this controller.
func reconcileErrors(t *testing.T) float64 {
	t.Helper()
	return counterValue(t, "controller_runtime_reconcile_errors_total", "secretmirror")
}

// counterValue sums the counter family's series of one controller.
func counterValue(t *testing.T, family, controller string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != family {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, label := range m.GetLabel() {
				if label.GetName() == "controller" && label.GetValue() == controller {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
