package mirror

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Kind names a kind of object whisperer mirrors. Planning is the same for every kind; what
// differs is which sources a kind refuses (kindRefusal) and what its content is (Content).
type Kind string

const (
	KindSecret    Kind = "Secret"
	KindConfigMap Kind = "ConfigMap"
)

// kindRefusal returns why source must never be mirrored because of what it is, or "".
func (k Kind) kindRefusal(source *Source) string {
	if k != KindSecret {
		return ""
	}
	switch corev1.SecretType(source.Content.Type) {
	case corev1.SecretTypeServiceAccountToken:
		// A copy in another namespace hands the service account's credentials to everyone who
		// can read Secrets there.
		return fmt.Sprintf("Secrets of type %s are never mirrored: a copy would leak the service account's credentials", source.Content.Type)
	case corev1.SecretTypeBootstrapToken:
		// In kube-system, a bootstrap token lets nodes join the cluster; copies forge that trust.
		return fmt.Sprintf("Secrets of type %s are never mirrored: a copy would forge cluster join credentials", source.Content.Type)
	}
	return ""
}
