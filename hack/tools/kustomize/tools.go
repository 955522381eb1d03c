//go:build tools

// Package kustomize pins the kustomize CLI that `make deploy` uses to set the image and render config/.
package kustomize

import _ "sigs.k8s.io/kustomize/kustomize/v5"
