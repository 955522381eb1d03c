//go:build tools

// Package kube pins the Kubernetes control plane commands that the local control plane,
// envtest and kuttl run: kube-apiserver, kube-controller-manager and kubectl; and kube-scheduler,
// which make test-olm adds to place pods on kwok's fake nodes.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
