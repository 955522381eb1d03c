//go:build tools

// Package etcdutl pins etcdutl, which restores the local control plane's etcd from a snapshot
// (test/reliability), at the version of the etcd server in hack/tools/etcd.
package etcdutl

import _ "go.etcd.io/etcd/etcdutl/v3"
