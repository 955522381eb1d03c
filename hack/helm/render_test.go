// Package helm checks the chart in charts/whisperer with the Helm SDK, the code of the helm
// command: rendered with its default values, it installs what config/default installs (the same
// RBAC rules, arguments, environment, probes and security contexts); every value it documents
// has its effect; its schema refuses misspelt and mistyped values with a message that names
// them; and helm lint finds nothing to warn about. `make verify` runs it (make chart-check).
package helm

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	repo     = "../.."
	chartDir = repo + "/charts/whisperer"
	// The release the tests render: named and placed as README installs it, which is also where
	// config/default puts the operator.
	releaseName      = "whisperer"
	releaseNamespace = "whisperer-system"
	// csvBase holds minKubeVersion, the oldest Kubernetes whisperer supports.
	csvBase = repo + "/config/manifests/bases/whisperer.clusterserviceversion.yaml"
)

// objects are rendered manifests by "Kind/name".
type objects map[string]*unstructured.Unstructured

func (o objects) keys() []string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// get returns the object of kind and name, failing the test when there is none.
func (o objects) get(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	u, ok := o[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s %s among %v", kind, name, o.keys())
	}
	return u
}

// decode converts the object of kind and name into into, a typed API object.
func (o objects) decode(t *testing.T, kind, name string, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.get(t, kind, name).Object, into, true); err != nil {
		t.Fatalf("%s %s: %v", kind, name, err)
	}
}

func (o objects) add(t *testing.T, manifest []byte) {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(manifest, &u.Object); err != nil {
		t.Fatalf("%v:\n%s", err, manifest)
	}
	if len(u.Object) == 0 {
		return
	}
	key := u.GetKind() + "/" + u.GetName()
	if _, dup := o[key]; dup {
		t.Fatalf("%s rendered twice", key)
	}
	o[key] = u
}

// loadChart loads charts/whisperer as helm install does from a folder.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// minKubeVersion is the oldest Kubernetes whisperer supports, from the OLM bundle's base.
func minKubeVersion(t *testing.T) string {
	t.Helper()
	var csv struct {
		Spec struct {
			MinKubeVersion string `json:"minKubeVersion"`
		} `json:"spec"`
	}
	content, err := os.ReadFile(csvBase)
	if err == nil {
		err = yaml.Unmarshal(content, &csv)
	}
	if err != nil || csv.Spec.MinKubeVersion == "" {
		t.Fatalf("minKubeVersion of %s: %v", csvBase, err)
	}
	return csv.Spec.MinKubeVersion
}

// install runs helm install --dry-run=client (helm template) on c with vals, for a cluster of
// Kubernetes kubeVersion: the chart is rendered and its values validated against its schema
// exactly as a real install does, without a cluster.
func install(c *chart.Chart, vals map[string]any, kubeVersion string) (*release.Release, error) {
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	i := action.NewInstall(action.NewConfiguration())
	i.DryRunStrategy = action.DryRunClient
	i.ReleaseName, i.Namespace, i.KubeVersion = releaseName, releaseNamespace, kv
	rel, err := i.Run(c, vals)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("install returned a %T", rel)
	}
	return r, nil
}

// render renders charts/whisperer with vals (YAML) on the oldest supported Kubernetes.
func render(t *testing.T, vals string) (objects, *release.Release) {
	t.Helper()
	return renderChart(t, loadChart(t), vals)
}

func renderChart(t *testing.T, c *chart.Chart, vals string) (objects, *release.Release) {
	t.Helper()
	rel, err := install(c, parseValues(t, vals), minKubeVersion(t))
	if err != nil {
		t.Fatalf("rendering with %s: %v", vals, err)
	}
	return manifestObjects(t, rel.Manifest), rel
}

func manifestObjects(t *testing.T, manifest string) objects {
	t.Helper()
	out := objects{}
	for _, doc := range releaseutil.SplitManifests(manifest) {
		out.add(t, []byte(doc))
	}
	return out
}

func parseValues(t *testing.T, vals string) map[string]any {
	t.Helper()
	out := map[string]any{}
	if err := yaml.Unmarshal([]byte(vals), &out); err != nil {
		t.Fatalf("values %s: %v", vals, err)
	}
	return out
}

// kustomize renders a kustomization of config/ as kustomize build does.
func kustomize(t *testing.T, dir string) objects {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(repo, "config", dir))
	if err != nil {
		t.Fatalf("kustomize build config/%s: %v", dir, err)
	}
	out := objects{}
	for _, r := range resources.Resources() {
		content, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		out.add(t, content)
	}
	return out
}

// readObject reads a manifest of config/.
func readObject(t *testing.T, path string) *unstructured.Unstructured {
	t.Helper()
	content, err := os.ReadFile(filepath.Join(repo, "config", path))
	if err != nil {
		t.Fatal(err)
	}
	o := objects{}
	o.add(t, content)
	if len(o) != 1 {
		t.Fatalf("config/%s holds %d objects, want 1", path, len(o))
	}
	return o[o.keys()[0]]
}

// convert decodes in, a part of a parsed manifest, into out.
func convert(in, out any) error {
	content, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(content, out)
}
