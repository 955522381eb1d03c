// Package catalog builds a file-based catalog (FBC) from registry+v1 bundle folders: one
// package, one channel whose entries form an upgrade chain (each bundle replaces the one before
// it), and one olm.bundle per bundle folder.
//
// The bundles carry their manifests as olm.bundle.object properties and have no image: OLM's
// catalog operator then installs them from the catalog alone, without running the bundle
// image in an unpack Job (which needs a kubelet and a registry). That is what `opm render` makes
// of a bundle folder.
package catalog

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"

	"github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/operator-registry/alpha/declcfg"
	"github.com/operator-framework/operator-registry/alpha/property"
	"sigs.k8s.io/yaml"
)

// Options say which catalog to build.
type Options struct {
	Package string
	Channel string
	// BundleDirs are bundle folders (manifests/ and metadata/), oldest first: each replaces the
	// one before it in the channel.
	BundleDirs []string
}

// Generate builds the catalog. The package's icon and description are the newest bundle's.
func Generate(opts Options) (*declcfg.DeclarativeConfig, error) {
	if len(opts.BundleDirs) == 0 {
		return nil, fmt.Errorf("no bundle")
	}
	cfg := &declcfg.DeclarativeConfig{}
	channel := declcfg.Channel{Schema: declcfg.SchemaChannel, Name: opts.Channel, Package: opts.Package}
	var newest *v1alpha1.ClusterServiceVersion
	var previous *v1alpha1.ClusterServiceVersion
	for _, dir := range opts.BundleDirs {
		b, csv, err := bundleFromDir(dir, opts.Package)
		if err != nil {
			return nil, err
		}
		entry := declcfg.ChannelEntry{Name: csv.Name}
		if previous != nil {
			if !csv.Spec.Version.GT(previous.Spec.Version.Version) {
				return nil, fmt.Errorf("bundle %s (%s) does not come after %s (%s)", csv.Name, csv.Spec.Version, previous.Name, previous.Spec.Version)
			}
			entry.Replaces = previous.Name
		}
		channel.Entries = append(channel.Entries, entry)
		cfg.Bundles = append(cfg.Bundles, b)
		previous, newest = csv, csv
	}
	pkg := declcfg.Package{
		Schema:         declcfg.SchemaPackage,
		Name:           opts.Package,
		DefaultChannel: opts.Channel,
		Description:    newest.Spec.Description,
	}
	if len(newest.Spec.Icon) > 0 {
		data, err := base64.StdEncoding.DecodeString(newest.Spec.Icon[0].Data)
		if err != nil {
			return nil, fmt.Errorf("icon of %s: %w", newest.Name, err)
		}
		pkg.Icon = &declcfg.Icon{Data: data, MediaType: newest.Spec.Icon[0].MediaType}
	}
	cfg.Packages = []declcfg.Package{pkg}
	cfg.Channels = []declcfg.Channel{channel}
	return cfg, nil
}

// bundleFromDir reads a bundle folder into an olm.bundle: the package property and one
// olm.bundle.object property per manifest, in file name order.
func bundleFromDir(dir, pkg string) (declcfg.Bundle, *v1alpha1.ClusterServiceVersion, error) {
	b := declcfg.Bundle{Schema: declcfg.SchemaBundle, Package: pkg}
	annotations, err := readAnnotations(dir)
	if err != nil {
		return b, nil, err
	}
	if got := annotations["operators.operatorframework.io.bundle.package.v1"]; got != pkg {
		return b, nil, fmt.Errorf("bundle %s is of package %q, not %q", dir, got, pkg)
	}
	manifests := filepath.Join(dir, "manifests")
	entries, err := os.ReadDir(manifests)
	if err != nil {
		return b, nil, err
	}
	var csv *v1alpha1.ClusterServiceVersion
	var objects []property.Property
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(manifests, e.Name()))
		if err != nil {
			return b, nil, err
		}
		object, err := yaml.YAMLToJSON(data)
		if err != nil {
			return b, nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(object, &meta); err != nil {
			return b, nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		if meta.Kind == v1alpha1.ClusterServiceVersionKind {
			if csv != nil {
				return b, nil, fmt.Errorf("bundle %s has two ClusterServiceVersions", dir)
			}
			csv = &v1alpha1.ClusterServiceVersion{}
			if err := yaml.Unmarshal(object, csv); err != nil {
				return b, nil, fmt.Errorf("%s: %w", e.Name(), err)
			}
		}
		objects = append(objects, property.MustBuildBundleObject(object))
	}
	if csv == nil {
		return b, nil, fmt.Errorf("bundle %s has no ClusterServiceVersion", dir)
	}
	b.Name = csv.Name
	b.Properties = append([]property.Property{property.MustBuildPackage(pkg, csv.Spec.Version.String())}, objects...)
	for _, ri := range csv.Spec.RelatedImages {
		b.RelatedImages = append(b.RelatedImages, declcfg.RelatedImage{Name: ri.Name, Image: ri.Image})
	}
	return b, csv, nil
}

func readAnnotations(dir string) (map[string]string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "metadata", "annotations.yaml"))
	if err != nil {
		return nil, err
	}
	var file struct{ Annotations map[string]string }
	if err := yaml.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("%s/metadata/annotations.yaml: %w", dir, err)
	}
	return file.Annotations, nil
}

// YAML returns the catalog as one YAML stream: the package, the channel, then the bundles.
func YAML(cfg *declcfg.DeclarativeConfig) ([]byte, error) {
	var buf bytes.Buffer
	if err := declcfg.WriteYAML(*cfg, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
