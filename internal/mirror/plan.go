package mirror

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ActionKind names a write to one mirror.
type ActionKind string

const (
	Create ActionKind = "create"
	Update ActionKind = "update"
	// Recreate deletes and creates a mirror whose type or immutability must change.
	Recreate ActionKind = "recreate"
	Delete   ActionKind = "delete"
)

// Action is one write to one mirror.
type Action struct {
	Kind ActionKind
	// Namespace is the namespace of the mirror.
	Namespace string
	// Existing is the mirror as last seen, nil for Create. Deletes and updates are made
	// conditional on its resourceVersion, so that nothing changed since the ownership check is
	// overwritten or deleted.
	Existing *corev1.Secret
}

// Object returns the object that the action writes for source: nil for Delete. It is built when
// the write is made, not when it is planned, so that a plan for thousands of namespaces holds no
// copy of the source's data.
func (a Action) Object(source *corev1.Secret) *corev1.Secret {
	switch a.Kind {
	case Create, Recreate:
		return Build(source, a.Namespace)
	case Update:
		return Updated(source, a.Existing)
	}
	return nil
}

// State is what exists now for one source.
type State struct {
	// Source names the source being reconciled.
	Source types.NamespacedName
	// Secret is the source, nil when it is gone or is no longer a source: then no mirror is wanted.
	Secret *corev1.Secret
	// Targets is what the source asks for.
	Targets Targets
	// Refusal says why the source must not be mirrored (see Policy.Refusal); then no mirror is wanted.
	Refusal string
	// Policy says which namespaces may receive mirrors at all.
	Policy Policy
	// Namespaces lists every namespace of the cluster.
	Namespaces []Namespace
	// Mirrors lists the Secrets that claim Source (see SourceOf); Plan only touches those OwnedBy it.
	Mirrors []*corev1.Secret
}

// Plan returns the writes that take the mirrors of s.Source to exactly the wanted set, sorted by
// namespace, and that set: the namespaces that must hold a mirror of s.Source. It is level-based:
// it does not matter which event led here, or what happened while whisperer was down.
func Plan(s State) (actions []Action, wanted map[string]bool) {
	wanted, terminating := s.classifyNamespaces()
	seen := map[string]bool{}
	compare := NewComparer(s.Secret)
	for _, existing := range s.Mirrors {
		if !OwnedBy(existing, s.Source) {
			continue
		}
		seen[existing.Namespace] = true
		if action, ok := planExisting(compare, existing, wanted[existing.Namespace], terminating[existing.Namespace]); ok {
			actions = append(actions, action)
		}
	}
	for namespace := range wanted {
		if !seen[namespace] {
			actions = append(actions, Action{Kind: Create, Namespace: namespace})
		}
	}
	slices.SortFunc(actions, func(a, b Action) int { return cmp.Compare(a.Namespace, b.Namespace) })
	return actions, wanted
}

// planExisting returns the write that an existing mirror needs, if any. It compares only wanted
// mirrors, which have a source.
func planExisting(compare *Comparer, existing *corev1.Secret, wanted, terminating bool) (Action, bool) {
	namespace := existing.Namespace
	switch {
	case terminating:
		return Action{}, false
	case !wanted:
		return Action{Kind: Delete, Namespace: namespace, Existing: existing}, true
	}
	if kind := compare.Diff(existing); kind != "" {
		return Action{Kind: kind, Namespace: namespace, Existing: existing}, true
	}
	return Action{}, false
}

// Refused counts the namespaces the source asks for that may not have its mirror: excluded by the
// policy, or all of them when the source itself is refused.
func (s State) Refused() int {
	n := 0
	for _, ns := range s.Namespaces {
		if s.asks(ns) && !s.allows(ns) {
			n++
		}
	}
	return n
}

// classifyNamespaces returns the namespaces that must hold a mirror of s.Source and the
// terminating ones.
func (s State) classifyNamespaces() (wanted, terminating map[string]bool) {
	wanted, terminating = map[string]bool{}, map[string]bool{}
	for _, ns := range s.Namespaces {
		switch {
		case ns.Terminating:
			terminating[ns.Name] = true
		case s.asks(ns) && s.allows(ns):
			wanted[ns.Name] = true
		}
	}
	return wanted, terminating
}

// asks reports whether the source asks for ns: its annotations match it, it exists and is not
// terminating, and it is not the source's own namespace.
func (s State) asks(ns Namespace) bool {
	return s.Secret != nil && !ns.Terminating && ns.Name != s.Source.Namespace && s.Targets.Matches(ns)
}

// allows reports whether the source may have a mirror in ns.
func (s State) allows(ns Namespace) bool {
	return s.Refusal == "" && s.Policy.AllowsTarget(ns)
}
