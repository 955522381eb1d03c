// Command bundle generates whisperer's OLM bundle from config/: `make bundle` runs it.
//
//	bundle --version 0.1.0 --image ghcr.io/whisperer-operator/whisperer:v0.1.0 [--out bundle] [--dockerfile bundle.Dockerfile]
//
// It writes <out>/manifests and <out>/metadata/annotations.yaml, replacing what was there, and
// the bundle image's Dockerfile. Same input, same bytes: nothing depends on the clock.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/whisperer-operator/whisperer/hack/olm/internal/bundle"
)

func main() {
	opts := bundle.Options{Package: "whisperer", ManagerContainer: "manager"}
	flag.StringVar(&opts.ConfigDir, "config", "config/manifests", "The kustomization to render: the CSV base and the operator's manifests.")
	flag.StringVar(&opts.Version, "version", "", "The bundle's version, without a leading v (required).")
	flag.StringVar(&opts.Image, "image", "", "The operator image (required).")
	flag.StringVar(&opts.CreatedAt, "created-at", "", "Replaces the base's createdAt annotation (RFC 3339).")
	channels := flag.String("channels", "stable", "Comma-separated channels of the bundle.")
	flag.StringVar(&opts.DefaultChannel, "default-channel", "stable", "The package's default channel.")
	out := flag.String("out", "bundle", "The bundle folder to write.")
	dockerfile := flag.String("dockerfile", "bundle.Dockerfile", "Where to write the bundle image's Dockerfile; empty for none.")
	flag.Parse()
	if opts.Version == "" || opts.Image == "" {
		fmt.Fprintln(os.Stderr, "bundle: --version and --image are required")
		os.Exit(2)
	}
	opts.Channels = strings.Split(*channels, ",")
	if err := run(opts, *out, *dockerfile); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

func run(opts bundle.Options, out, dockerfile string) error {
	b, err := bundle.Generate(opts)
	if err != nil {
		return err
	}
	files, err := b.Files()
	if err != nil {
		return err
	}
	if err := bundle.Write(out, files); err != nil {
		return err
	}
	if dockerfile == "" {
		return nil
	}
	// The Dockerfile is built from its own folder, so it names the bundle relative to it.
	rel, err := filepath.Rel(filepath.Dir(dockerfile), out)
	if err != nil {
		return err
	}
	return os.WriteFile(dockerfile, b.Dockerfile(filepath.ToSlash(rel)), 0o644) //nolint:gosec // a file of the repository, which git and the bundle image keep readable to all
}
