//go:build tools

// Package olm pins the Operator Lifecycle Manager's two operators, olm and catalog, that
// make test-olm runs as local processes against the local control plane.
package olm

import (
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/catalog"
	_ "github.com/operator-framework/operator-lifecycle-manager/cmd/olm"
)
