// Command catalog writes whisperer's file-based catalog from bundle folders: `make catalog`
// runs it with the previous version's bundle and bundle/.
//
//	catalog [--package whisperer] [--channel stable] --out catalog/whisperer/catalog.yaml BUNDLE_DIR...
//
// The bundle folders come oldest first: each replaces the one before it in the channel.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/whisperer-operator/whisperer/hack/olm/internal/catalog"
)

func main() {
	opts := catalog.Options{}
	flag.StringVar(&opts.Package, "package", "whisperer", "The package name.")
	flag.StringVar(&opts.Channel, "channel", "stable", "The channel, which is also the default channel.")
	out := flag.String("out", "", "The catalog file to write (required).")
	flag.Parse()
	opts.BundleDirs = flag.Args()
	if *out == "" || len(opts.BundleDirs) == 0 {
		fmt.Fprintln(os.Stderr, "usage: catalog [--package P] [--channel C] --out FILE BUNDLE_DIR...")
		os.Exit(2)
	}
	if err := run(opts, *out); err != nil {
		fmt.Fprintln(os.Stderr, "catalog:", err)
		os.Exit(1)
	}
}

func run(opts catalog.Options, out string) error {
	cfg, err := catalog.Generate(opts)
	if err != nil {
		return err
	}
	data, err := catalog.YAML(cfg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil { //nolint:gosec // a folder of the repository, readable to all
		return err
	}
	return os.WriteFile(out, data, 0o644) //nolint:gosec // a file of the repository, which git and the catalog image keep readable to all
}
