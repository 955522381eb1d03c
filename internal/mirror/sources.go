package mirror

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// IsSource reports whether secret asks to be mirrored. It repeats SourceSelector for objects
// that did not come through the source cache.
func IsSource(secret *corev1.Secret) bool {
	return secret.Labels[LabelSync] == "true" && !hasLabel(secret, LabelMirror)
}

// typeRefusal returns why a source of this type must never be mirrored, or "".
func typeRefusal(source *corev1.Secret) string {
	switch source.Type {
	case corev1.SecretTypeServiceAccountToken:
		// A copy in another namespace hands the service account's credentials to everyone who
		// can read Secrets there.
		return fmt.Sprintf("Secrets of type %s are never mirrored: a copy would leak the service account's credentials", source.Type)
	case corev1.SecretTypeBootstrapToken:
		// In kube-system, a bootstrap token lets nodes join the cluster; copies forge that trust.
		return fmt.Sprintf("Secrets of type %s are never mirrored: a copy would forge cluster join credentials", source.Type)
	}
	return ""
}
