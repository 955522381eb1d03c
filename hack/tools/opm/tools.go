//go:build tools

// Package opm pins opm, the operator-registry CLI that validates and serves the file-based
// catalog in catalog/ (make catalog-validate, make test-olm).
package opm

import _ "github.com/operator-framework/operator-registry/cmd/opm"
