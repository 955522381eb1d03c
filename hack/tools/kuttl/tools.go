//go:build tools

// Package kuttl pins the kuttl CLI that runs the declarative end-to-end suite in tests/kuttl.
package kuttl

import _ "github.com/kudobuilder/kuttl/cmd/kubectl-kuttl"
