//go:build tools

// Package controllergen pins controller-gen, which generates the RBAC manifests in
// config/rbac from the kubebuilder markers in controllers/.
package controllergen

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"
