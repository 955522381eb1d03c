package bundle

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// repo is the repository root, seen from this package.
const repo = "../../../.."

func options() Options {
	return Options{
		ConfigDir:        filepath.Join(repo, "config", "manifests"),
		Package:          "whisperer",
		Version:          "1.2.3",
		Image:            "registry.example/whisperer:v1.2.3",
		Channels:         []string{"stable"},
		DefaultChannel:   "stable",
		ManagerContainer: "manager",
	}
}

// rulesOf reads the rules of the Role or ClusterRole in a file of config/rbac, without kustomize.
func rulesOf(t *testing.T, file string) []rbacv1.PolicyRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, "config", "rbac", file))
	if err != nil {
		t.Fatal(err)
	}
	var role struct{ Rules []rbacv1.PolicyRule }
	if err := yaml.Unmarshal(data, &role); err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 {
		t.Fatalf("%s has no rules", file)
	}
	return role.Rules
}

func TestGenerateTakesTheInstallStrategyFromConfig(t *testing.T) {
	b, err := Generate(options())
	if err != nil {
		t.Fatal(err)
	}
	csv := b.CSV
	if csv.Name != "whisperer.v1.2.3" || csv.Spec.Version.String() != "1.2.3" {
		t.Errorf("CSV %s version %s, want whisperer.v1.2.3 and 1.2.3", csv.Name, csv.Spec.Version)
	}
	if got := csv.Annotations["containerImage"]; got != options().Image {
		t.Errorf("containerImage %q, want %q", got, options().Image)
	}
	if len(csv.Spec.RelatedImages) == 0 || csv.Spec.RelatedImages[0].Image != options().Image {
		t.Errorf("relatedImages %v do not start with the operator image", csv.Spec.RelatedImages)
	}
	s := csv.Spec.InstallStrategy.StrategySpec
	if len(s.DeploymentSpecs) != 1 {
		t.Fatalf("%d deployments, want 1", len(s.DeploymentSpecs))
	}
	d := s.DeploymentSpecs[0]
	if d.Name != "whisperer-controller-manager" {
		t.Errorf("deployment %s, want whisperer-controller-manager (config/default's prefix)", d.Name)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != options().Image {
		t.Errorf("manager image %s, want %s", img, options().Image)
	}
	sa := d.Spec.Template.Spec.ServiceAccountName

	// The ClusterRoles bound to the Deployment's ServiceAccount, and its Role, as written in
	// config/rbac: manager-role (generated from the controllers' markers) and metrics-auth-role.
	wantCluster := append(rulesOf(t, "role.yaml"), rulesOf(t, "metrics_auth_role.yaml")...)
	if len(s.ClusterPermissions) != 1 || s.ClusterPermissions[0].ServiceAccountName != sa ||
		!equality.Semantic.DeepEqual(s.ClusterPermissions[0].Rules, wantCluster) {
		t.Errorf("clusterPermissions %+v, want %s with %+v", s.ClusterPermissions, sa, wantCluster)
	}
	wantNamespaced := rulesOf(t, "leader_election_role.yaml")
	if len(s.Permissions) != 1 || s.Permissions[0].ServiceAccountName != sa ||
		!equality.Semantic.DeepEqual(s.Permissions[0].Rules, wantNamespaced) {
		t.Errorf("permissions %+v, want %s with %+v", s.Permissions, sa, wantNamespaced)
	}

	// What OLM does not create from the strategy stays a manifest, without a namespace; the
	// Namespace, the ServiceAccount and the bindings are OLM's to create.
	var objects []string
	for _, o := range b.Objects {
		objects = append(objects, key(o))
		if o.GetNamespace() != "" {
			t.Errorf("%s keeps namespace %s", key(o), o.GetNamespace())
		}
	}
	want := "ClusterRole/whisperer-metrics-reader,Service/whisperer-controller-manager-metrics-service"
	if got := strings.Join(objects, ","); got != want {
		t.Errorf("other manifests %s, want %s", got, want)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	var outputs []map[string][]byte
	for range 2 {
		b, err := Generate(options())
		if err != nil {
			t.Fatal(err)
		}
		files, err := b.Files()
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, files)
	}
	if len(outputs[0]) != 4 {
		t.Errorf("%d files, want 4: the CSV, two manifests and annotations.yaml", len(outputs[0]))
	}
	for name, data := range outputs[0] {
		if !bytes.Equal(data, outputs[1][name]) {
			t.Errorf("%s differs between two runs on the same input", name)
		}
	}
}

func TestCreatedAtComesFromTheInput(t *testing.T) {
	opts := options()
	opts.CreatedAt = "2030-01-02T03:04:05Z"
	b, err := Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.CSV.Annotations["createdAt"]; got != opts.CreatedAt {
		t.Errorf("createdAt %q, want %q", got, opts.CreatedAt)
	}
	for _, bad := range []func(*Options){
		func(o *Options) { o.CreatedAt = "yesterday" },
		func(o *Options) { o.Version = "v1.2" },
		func(o *Options) { o.ManagerContainer = "nope" },
	} {
		opts := options()
		bad(&opts)
		if _, err := Generate(opts); err == nil {
			t.Errorf("Generate(%+v) succeeded, want an error", opts)
		}
	}
}

func TestIconIsIconSVG(t *testing.T) {
	b, err := Generate(options())
	if err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(repo, "config", "manifests", "icon.svg"))
	if err != nil {
		t.Fatal(err)
	}
	icon := b.CSV.Spec.Icon
	if len(icon) != 1 || icon[0].MediaType != "image/svg+xml" {
		t.Fatalf("icon %+v, want one image/svg+xml", icon)
	}
	data, err := base64.StdEncoding.DecodeString(icon[0].Data)
	if err != nil || !bytes.Equal(data, svg) {
		t.Errorf("the CSV base's icon is not config/manifests/icon.svg (err %v): re-encode it with base64 -w0", err)
	}
}

// TestRolesBoundToOthersStay runs on a configuration of its own: a ClusterRole bound both to
// the operator and to a group stays a manifest, with the group's binding.
func TestRolesBoundToOthersStay(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"kustomization.yaml": "resources: [csv.yaml, objects.yaml]\n",
		"csv.yaml":           "apiVersion: operators.coreos.com/v1alpha1\nkind: ClusterServiceVersion\nmetadata: {name: x}\nspec: {install: {strategy: deployment}}\n",
		"objects.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: op, namespace: ns}
spec:
  selector: {matchLabels: {a: b}}
  template:
    metadata: {labels: {a: b}}
    spec:
      serviceAccountName: op
      containers: [{name: manager, image: old}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: op, namespace: ns}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shared}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: op-shared}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: shared}
subjects: [{kind: ServiceAccount, name: op, namespace: ns}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: group-shared}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: shared}
subjects: [{kind: Group, name: auditors, apiGroup: rbac.authorization.k8s.io}]
`,
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	opts := options()
	opts.ConfigDir = dir
	b, err := Generate(opts)
	if err != nil {
		t.Fatal(err)
	}
	if cp := b.CSV.Spec.InstallStrategy.StrategySpec.ClusterPermissions; len(cp) != 1 || cp[0].Rules[0].Resources[0] != "pods" {
		t.Errorf("clusterPermissions %+v, want the shared role's rules for op", cp)
	}
	var objects []string
	for _, o := range b.Objects {
		objects = append(objects, key(o))
	}
	if got, want := strings.Join(objects, ","), "ClusterRole/shared,ClusterRoleBinding/group-shared"; got != want {
		t.Errorf("other manifests %s, want %s", got, want)
	}

	// A binding that names the operator and someone else cannot be split safely: refused.
	mixed := strings.Replace(files["objects.yaml"], "subjects: [{kind: ServiceAccount, name: op, namespace: ns}]",
		"subjects: [{kind: ServiceAccount, name: op, namespace: ns}, {kind: User, name: alice}]", 1)
	if err := os.WriteFile(filepath.Join(dir, "objects.yaml"), []byte(mixed), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(opts); err == nil || !strings.Contains(err.Error(), "other subjects") {
		t.Errorf("Generate with a mixed binding: %v, want an error about other subjects", err)
	}
}

// TestMalformedManifestsAreErrors: a CSV base or Deployment that does not convert to its type is
// reported, not turned into an empty install strategy.
func TestMalformedManifestsAreErrors(t *testing.T) {
	for kind, manifest := range map[string]string{
		"ClusterServiceVersion": "apiVersion: operators.coreos.com/v1alpha1\nkind: ClusterServiceVersion\nmetadata: {name: x}\nspec: {installModes: not-a-list}\n",
		"Deployment":            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: op}\nspec: {replicas: many}\n",
	} {
		t.Run(kind, func(t *testing.T) {
			var object map[string]any
			if err := yaml.Unmarshal([]byte(manifest), &object); err != nil {
				t.Fatal(err)
			}
			if _, err := sortObjects([]*unstructured.Unstructured{{Object: object}}); err == nil {
				t.Errorf("sortObjects accepted a malformed %s", kind)
			}
		})
	}
}
