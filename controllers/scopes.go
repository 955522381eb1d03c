package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// scopes says, for each source, what its next reconcile must look at. A change of the source,
// a resync or a retry needs every namespace: a full reconcile, whose cost grows with the
// cluster. A new or relabelled namespace, a mirror someone edited or deleted, a ServiceAccount
// created, an object that stopped blocking a mirror: each concerns one namespace, and a
// reconcile of just those namespaces costs in proportion to them. With 20 sources that select
// every namespace of 10,000, a new namespace then costs 20 small reconciles, not 20 over every
// namespace.
type scopes struct {
	mu       sync.Mutex
	bySource map[types.NamespacedName]*scope
}

type scope struct {
	all        bool
	namespaces sets.Set[string]
}

func newScopes() *scopes { return &scopes{bySource: map[types.NamespacedName]*scope{}} }

// all makes the next reconcile of source look at every namespace.
func (s *scopes) all(source types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bySource[source] = &scope{all: true}
}

// add makes the next reconcile of source look at namespace, unless it looks at all of them.
func (s *scopes) add(source types.NamespacedName, namespace string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.bySource[source]
	if sc == nil {
		sc = &scope{namespaces: sets.New[string]()}
		s.bySource[source] = sc
	}
	if !sc.all {
		sc.namespaces.Insert(namespace)
	}
}

// take returns what the reconcile of source about to run must look at: the namespaces, or nil
// for all of them, which is also what a reconcile no event asked for (a resync, a retry) gets.
func (s *scopes) take(source types.NamespacedName) sets.Set[string] {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.bySource[source]
	delete(s.bySource, source)
	if sc == nil || sc.all {
		return nil
	}
	return sc.namespaces
}
