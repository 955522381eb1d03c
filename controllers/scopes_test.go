package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

func TestScopes(t *testing.T) {
	s := newScopes()
	a := types.NamespacedName{Namespace: "n", Name: "a"}
	if got := s.take(a); got != nil {
		t.Errorf("a reconcile no event asked for looks at %v, want every namespace (nil)", got)
	}
	s.add(a, "x")
	s.add(a, "y")
	if got := s.take(a); !got.Equal(sets.New("x", "y")) {
		t.Errorf("scope %v, want the namespaces the events named", got)
	}
	if got := s.take(a); got != nil {
		t.Errorf("a second take gives %v, want every namespace: the scope was used", got)
	}
	s.add(a, "x")
	s.all(a)
	s.add(a, "z")
	if got := s.take(a); got != nil {
		t.Errorf("scope %v after a change of the source, want every namespace", got)
	}
}
