//go:build tools

// Package kwok pins kwok, which runs fake nodes for make test-olm and make test-helm: it plays the
// kubelet's part (node heartbeats, pods marked running and ready) without a container runtime.
package kwok

import _ "sigs.k8s.io/kwok/cmd/kwok"
