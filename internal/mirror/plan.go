package mirror

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// Action is one write to one mirror. The object it writes is built when the write is made, not
// when it is planned, so that a plan for thousands of namespaces holds no copy of the source.
type Action struct {
	Kind ActionKind
	// Namespace is the namespace of the mirror.
	Namespace string
	// Existing is the mirror as last seen, nil for Create. Deletes and updates are made
	// conditional on its resourceVersion, so that nothing changed since the ownership check is
	// overwritten or deleted.
	Existing metav1.Object
}

// State is what exists now for one source.
type State struct {
	Kind Kind
	// Key names the source being reconciled.
	Key types.NamespacedName
	// Source is the source, nil when it is gone or no longer a source: then no mirror is wanted.
	Source *Source
	// Policy is what the administrator allows.
	Policy Policy
	// Namespaces lists every namespace of the cluster.
	Namespaces []Namespace
	// Mirrors lists the objects that claim Key (see SourceOf); Plan only acts on those OwnedBy it.
	Mirrors []metav1.Object
	// ContentOf summarises the content of a mirror, as it is at its resourceVersion, and reports
	// whether it is known.
	ContentOf func(metav1.Object) (Content, bool)
	// ServiceAccountsIn returns the ServiceAccounts of a namespace; nil when the operator does
	// not attach pull secrets to ServiceAccounts.
	ServiceAccountsIn func(namespace string) []ServiceAccount
}

// Result is what Plan decided for one source.
type Result struct {
	// Actions are the writes that take the mirrors to exactly the wanted set, sorted by namespace.
	Actions []Action
	// Wanted counts the namespaces that must hold a mirror.
	Wanted int
	// Refusal says why the source may not be mirrored at all, or is "": a refused source has its
	// mirrors deleted.
	Refusal string
	// Invalid lists the entries of the source's annotations that were ignored, with the reason.
	Invalid []string
	// NotAllowed counts the namespaces the source asks for that may not have its mirror: those
	// the policy excludes, or all of them when the source is refused.
	NotAllowed int
	// Unknown counts the wanted mirrors whose content is not known: nothing is planned for them.
	Unknown int
	// Attachments are the writes to ServiceAccounts' imagePullSecrets: detaches, then attaches.
	Attachments []Attachment
	// InvalidServiceAccounts says why the service-accounts annotation is ignored, or what of it
	// is, or is "".
	InvalidServiceAccounts string
	// Copied is what the mirrors copy of the source's labels and annotations.
	Copied Copied
}

// Plan returns the writes that take the mirrors of s.Key to exactly what the source asks for and
// the policy allows. It is level-based: it does not matter which event led here, or what happened
// while whisperer was down. A mirror that is being deleted counts as gone: its namespace gets a
// new mirror once the deletion has ended, which raises an event of its own. A wanted mirror whose
// content is not known is left as it is (Result.Unknown): the caller learns it and plans again.
func Plan(s State) Result {
	var r Result
	if s.Source != nil {
		r.Invalid = s.Source.Targets.Invalid
		r.Refusal = s.Policy.Refusal(s.Kind, s.Source)
		r.Copied = s.Policy.copied(s.Source)
	}
	attachTo, ignored := s.attachmentsAsked()
	r.InvalidServiceAccounts = ignored
	if attachTo != nil && len(attachTo.Invalid) > 0 {
		r.InvalidServiceAccounts = fmt.Sprintf("ignored entries of %s: %s", AnnotationServiceAccounts, strings.Join(attachTo.Invalid, "; "))
	}
	wanted, terminating, asked := s.classifyNamespaces(r.Refusal == "")
	if r.Refusal == "" {
		r.Refusal = s.Policy.tooManyTargets(len(wanted))
	}
	if r.Refusal != "" {
		wanted = nil
	}
	r.Wanted, r.NotAllowed = len(wanted), asked-len(wanted)

	owner := newOwner(s.Key)
	seen := map[string]bool{}
	for _, existing := range s.Mirrors {
		namespace := existing.GetNamespace()
		if !owner.owns(existing) {
			continue
		}
		seen[namespace] = true
		switch {
		case existing.GetDeletionTimestamp() != nil, terminating[namespace]:
			// Going already: nothing to write, and nothing to wait for.
		case !wanted[namespace]:
			r.Actions = append(r.Actions, Action{Kind: Delete, Namespace: namespace, Existing: existing})
		default:
			content, known := s.ContentOf(existing)
			if !known {
				r.Unknown++
			} else if kind := diff(owner, s.Source, r.Copied, existing, content); kind != "" {
				r.Actions = append(r.Actions, Action{Kind: kind, Namespace: namespace, Existing: existing})
			}
		}
	}
	for namespace := range wanted {
		if !seen[namespace] {
			r.Actions = append(r.Actions, Action{Kind: Create, Namespace: namespace})
		}
	}
	slices.SortFunc(r.Actions, func(a, b Action) int { return cmp.Compare(a.Namespace, b.Namespace) })
	r.Attachments = s.planAttachments(attachTo, wanted, seen)
	return r
}

// Diff returns the write that makes existing, a mirror of source whose content is content,
// faithful to it, copied being what it copies of the source's metadata (Result.Copied): Update,
// Recreate, or "" when it is.
func Diff(source *Source, copied Copied, existing metav1.Object, content Content) ActionKind {
	return diff(newOwner(source.Key()), source, copied, existing, content)
}

func diff(owner owner, source *Source, copied Copied, existing metav1.Object, content Content) ActionKind {
	if kind := source.Content.diff(content); kind != "" {
		return kind
	}
	if !owner.marks(existing, copied) {
		return Update
	}
	return ""
}

// classifyNamespaces returns the namespaces that must hold a mirror (none unless allowed), the
// terminating ones, and how many namespaces the source asks for.
func (s State) classifyNamespaces(allowed bool) (wanted, terminating map[string]bool, asked int) {
	wanted, terminating = map[string]bool{}, map[string]bool{}
	for _, ns := range s.Namespaces {
		switch {
		case ns.Terminating:
			terminating[ns.Name] = true
		case s.asks(ns):
			asked++
			if allowed && s.Policy.AllowsTarget(ns) {
				wanted[ns.Name] = true
			}
		}
	}
	return wanted, terminating, asked
}

// asks reports whether the source asks for ns: its annotations match it, and it is not the
// source's own namespace.
func (s State) asks(ns Namespace) bool {
	return s.Source != nil && ns.Name != s.Key.Namespace && s.Source.Targets.Matches(ns)
}
