// Package testbundle writes whisperer's bundle, generated from config/, for tests.
package testbundle

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/whisperer-operator/whisperer/hack/olm/internal/bundle"
)

// Options are make bundle's options for version, with config/ of this repository.
func Options(version string) bundle.Options {
	_, file, _, _ := runtime.Caller(0)
	return bundle.Options{
		ConfigDir:        filepath.Join(filepath.Dir(file), "..", "..", "..", "..", "config", "manifests"),
		Package:          "whisperer",
		Version:          version,
		Image:            "ghcr.io/whisperer-operator/whisperer:v" + version,
		Channels:         []string{"stable"},
		DefaultChannel:   "stable",
		ManagerContainer: "manager",
	}
}

// Write generates the bundle of version, lets change alter it (if not nil), writes it into a
// temporary folder and returns that folder.
func Write(t testing.TB, version string, change func(*bundle.Bundle)) string {
	t.Helper()
	b, err := bundle.Generate(Options(version))
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(b)
	}
	files, err := b.Files()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := bundle.Write(dir, files); err != nil {
		t.Fatal(err)
	}
	return dir
}
