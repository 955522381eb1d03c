package mirror

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ServiceAccount is what planning knows of a ServiceAccount: its imagePullSecrets, and which of
// them whisperer added (AnnotationImagePullSecrets).
type ServiceAccount struct {
	Namespace, Name string
	// ResourceVersion is the version these fields were read at; a write is conditional on it.
	ResourceVersion string
	// PullSecrets are the names in its imagePullSecrets, in order.
	PullSecrets []string
	// Added are the names whisperer added to them.
	Added []string
}

// AddedOf parses the value of AnnotationImagePullSecrets.
func AddedOf(annotation string) []string {
	var added []string
	for name := range strings.SplitSeq(annotation, ",") {
		if name = strings.TrimSpace(name); name != "" && !slices.Contains(added, name) {
			added = append(added, name)
		}
	}
	return added
}

// AttachmentKind names a write to a ServiceAccount's imagePullSecrets.
type AttachmentKind string

const (
	// Attach adds the mirror to the ServiceAccount's imagePullSecrets, at the end, and records
	// that whisperer added it.
	Attach AttachmentKind = "attach"
	// Detach removes the mirror from the ServiceAccount's imagePullSecrets if whisperer added it,
	// and forgets that it did.
	Detach AttachmentKind = "detach"
)

// Attachment is one write to one ServiceAccount, for the mirror named Secret in its namespace.
type Attachment struct {
	Kind    AttachmentKind
	Account ServiceAccount
	Secret  string
}

// Reattaching reports whether an Attach puts back an entry whisperer had added and someone
// removed: done again and again, it is a fight with another writer.
func (a Attachment) Reattaching() bool {
	return a.Kind == Attach && slices.Contains(a.Account.Added, a.Secret)
}

// pullSecretTypes are the Secret types a Pod can pull images with.
var pullSecretTypes = []corev1.SecretType{corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg}

// attachmentsAsked returns the ServiceAccounts the source asks its mirrors to be attached to, and
// why the annotation is ignored, if it is: the source is no pull secret, or attaching is off.
func (s State) attachmentsAsked() (accounts *Names, ignored string) {
	if s.Source == nil {
		return nil, ""
	}
	annotation, asked := s.Source.Object.GetAnnotations()[AnnotationServiceAccounts]
	if !asked {
		return nil, ""
	}
	switch {
	case s.Kind != KindSecret:
		return nil, fmt.Sprintf("%s is ignored: only Secrets of type %s or %s are pull secrets", AnnotationServiceAccounts, pullSecretTypes[0], pullSecretTypes[1])
	case !slices.Contains(pullSecretTypes, corev1.SecretType(s.Source.Content.Type)):
		return nil, fmt.Sprintf("%s is ignored: Secrets of type %s are not pull secrets (%s, %s)", AnnotationServiceAccounts, s.Source.Content.Type, pullSecretTypes[0], pullSecretTypes[1])
	case s.ServiceAccountsIn == nil:
		return nil, fmt.Sprintf("%s is ignored: the operator does not attach pull secrets to ServiceAccounts (serviceaccounts is not in its --resources)", AnnotationServiceAccounts)
	}
	names := parseNames(annotation, serviceAccountNames)
	if names.TooLarge != "" {
		return nil, names.TooLarge
	}
	return &names, ""
}

// planAttachments returns the writes that make the ServiceAccounts of the namespaces in wanted,
// and of those that hold a mirror of the source, reference the mirror exactly where the source
// asks: detaches first (they are made before the mirrors are deleted), then attaches (made once
// the mirrors exist).
func (s State) planAttachments(accounts *Names, wanted map[string]bool, mirrorIn map[string]bool) []Attachment {
	if s.ServiceAccountsIn == nil {
		return nil
	}
	var detach, attach []Attachment
	for _, namespace := range sortedKeys(wanted, mirrorIn) {
		for _, sa := range s.ServiceAccountsIn(namespace) {
			want := accounts != nil && wanted[namespace] && accounts.Match(sa.Name)
			has, ours := slices.Contains(sa.PullSecrets, s.Key.Name), slices.Contains(sa.Added, s.Key.Name)
			switch {
			case want && !has:
				attach = append(attach, Attachment{Kind: Attach, Account: sa, Secret: s.Key.Name})
			case !want && ours:
				detach = append(detach, Attachment{Kind: Detach, Account: sa, Secret: s.Key.Name})
			}
		}
	}
	return append(detach, attach...)
}

// sortedKeys returns the keys of the maps, sorted, once each.
func sortedKeys(maps ...map[string]bool) []string {
	var keys []string
	for _, m := range maps {
		for k := range m {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}
