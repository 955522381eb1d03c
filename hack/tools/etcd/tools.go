//go:build tools

// Package etcd pins the etcd server that the local control plane and envtest run.
package etcd

import _ "go.etcd.io/etcd/server/v3"
