package catalog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/operator-framework/operator-registry/alpha/declcfg"
	"github.com/operator-framework/operator-registry/alpha/property"
	"sigs.k8s.io/yaml"

	"github.com/whisperer-operator/whisperer/hack/olm/internal/testbundle"
)

func TestCatalogHasAnUpgradeEdgeAndSelfContainedBundles(t *testing.T) {
	old, current := testbundle.Write(t, "0.0.1", nil), testbundle.Write(t, "0.1.0", nil)
	cfg, err := Generate(Options{Package: "whisperer", Channel: "stable", BundleDirs: []string{old, current}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Packages) != 1 || cfg.Packages[0].DefaultChannel != "stable" || cfg.Packages[0].Icon == nil {
		t.Errorf("package %+v, want whisperer with default channel stable and an icon", cfg.Packages)
	}
	want := []declcfg.ChannelEntry{{Name: "whisperer.v0.0.1"}, {Name: "whisperer.v0.1.0", Replaces: "whisperer.v0.0.1"}}
	if len(cfg.Channels) != 1 || cfg.Channels[0].Name != "stable" || !reflect.DeepEqual(cfg.Channels[0].Entries, want) {
		t.Errorf("channels %+v, want stable with %+v", cfg.Channels, want)
	}

	// Each bundle has no image, and carries every file of its manifests/ as an object.
	for i, b := range cfg.Bundles {
		dir := []string{old, current}[i]
		if b.Image != "" {
			t.Errorf("bundle %s has image %q: OLM would unpack it in a Job", b.Name, b.Image)
		}
		props, err := property.Parse(b.Properties)
		if err != nil {
			t.Fatal(err)
		}
		if len(props.Packages) != 1 || props.Packages[0].Version != []string{"0.0.1", "0.1.0"}[i] {
			t.Errorf("bundle %s package properties %+v", b.Name, props.Packages)
		}
		entries, err := os.ReadDir(filepath.Join(dir, "manifests"))
		if err != nil {
			t.Fatal(err)
		}
		if len(props.BundleObjects) != len(entries) {
			t.Fatalf("bundle %s has %d objects, its folder %d files", b.Name, len(props.BundleObjects), len(entries))
		}
		for j, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, "manifests", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			fromFile, err := yaml.YAMLToJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			if !jsonEqual(t, props.BundleObjects[j].Data, fromFile) {
				t.Errorf("bundle %s object %d is not %s", b.Name, j, e.Name())
			}
		}
	}

	// What opm validate checks: the catalog, as written and read back, converts to a valid model.
	data, err := YAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := declcfg.LoadReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := declcfg.ConvertToModel(*loaded); err != nil {
		t.Errorf("the catalog is not valid: %v", err)
	}

	if _, err := Generate(Options{Package: "whisperer", Channel: "stable", BundleDirs: []string{current, old}}); err == nil {
		t.Error("a catalog where an older version replaces a newer one was generated")
	}
	if _, err := Generate(Options{Package: "other", Channel: "stable", BundleDirs: []string{current}}); err == nil {
		t.Error("a bundle of package whisperer went into package other")
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
