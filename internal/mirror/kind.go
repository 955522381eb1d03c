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

// publishedConfigMaps are the ConfigMaps that Kubernetes and OpenShift publish into every
// namespace themselves. A source of that name would fight them in every target namespace.
var publishedConfigMaps = map[string]string{
	"kube-root-ca.crt":         "kube-controller-manager publishes it, with the cluster's CA, into every namespace",
	"openshift-service-ca.crt": "OpenShift's service CA operator publishes it into every namespace",
}

// kindRefusal returns why source must never be mirrored because of what it is, or "".
func (k Kind) kindRefusal(source *Source) string {
	if k == KindConfigMap {
		if why, ok := publishedConfigMaps[source.Object.GetName()]; ok {
			return fmt.Sprintf("ConfigMaps named %s are never mirrored: %s", source.Object.GetName(), why)
		}
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
