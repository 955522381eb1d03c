package helm

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	release "helm.sh/helm/v4/pkg/release/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// narrows checks what the chart renders with features off: the manager passes
// --resources=resources, and the ClusterRole grants the rules of the generated role
// (files/rbac/role.yaml) without the resources off, which the role must have: a rule keeps its
// other resources, a rule left with none goes, the others stay as they are.
func narrows(resources string, off ...string) func(t *testing.T, o objects, rel *release.Release) {
	return func(t *testing.T, o objects, rel *release.Release) {
		t.Helper()
		hasArg("--resources="+resources)(t, o, rel)
		var want []rbacv1.PolicyRule
		granted := map[string]bool{}
		for _, r := range generatedRules(t) {
			for _, res := range r.Resources {
				granted[res] = true
			}
			r.Resources = slices.DeleteFunc(r.Resources, func(res string) bool { return slices.Contains(off, res) })
			if len(r.Resources) > 0 {
				want = append(want, r)
			}
		}
		for _, res := range off {
			if !granted[res] {
				t.Errorf("files/rbac/role.yaml grants nothing on %s: the feature's resource has another name", res)
			}
		}
		if diff := cmp.Diff(want, rules(t, o, "ClusterRole", releaseName)); diff != "" {
			t.Errorf("the ClusterRole (-want +chart):\n%s", diff)
		}
	}
}

// generatedRules are the rules of the role controller-gen generates, as the chart holds them.
func generatedRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict([]byte(readString(t, chartDir+"/files/rbac/role.yaml")), &role); err != nil {
		t.Fatal(err)
	}
	return role.Rules
}

// TestEveryFeatureOnIsTheDefault checks that the features' defaults are all on, and that turning
// them all on explicitly renders what the defaults render: no --resources argument (config/manager
// passes none, TestDefaultsInstallWhatConfigDefaultInstalls checks), every rule of the role.
func TestEveryFeatureOnIsTheDefault(t *testing.T) {
	_, defaults := render(t, "")
	if want := map[string]any{"mirrorSecrets": true, "mirrorConfigMaps": true, "attachPullSecrets": true}; !cmp.Equal(defaults.Chart.Values["features"], want) {
		t.Errorf("features defaults to %v, want %v", defaults.Chart.Values["features"], want)
	}
	o, on := render(t, "features: {mirrorSecrets: true, mirrorConfigMaps: true, attachPullSecrets: true}")
	if on.Manifest != defaults.Manifest {
		t.Errorf("every feature on renders another manifest than the defaults:\n%s", cmp.Diff(defaults.Manifest, on.Manifest))
	}
	if args := manager(t, o).Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--resources") }) {
		t.Errorf("args %v: every feature on passes --resources", args)
	}
	if diff := cmp.Diff(generatedRules(t), rules(t, o, "ClusterRole", releaseName)); diff != "" {
		t.Errorf("with every feature on, the ClusterRole differs from role.yaml (-role.yaml +chart):\n%s", diff)
	}
}

// TestNotesSayHowToCheck checks that NOTES.txt gives the walkthrough's first command, on a sample
// that exists, and says when the policy makes the sample refused or whisperer mirrors no Secret.
func TestNotesSayHowToCheck(t *testing.T) {
	readme := readString(t, repo+"/README.md")
	first := regexp.MustCompile(`kubectl apply -f (config/samples/\S+)`).FindStringSubmatch(readme)
	if first == nil {
		t.Fatal("README's walkthrough no longer starts with kubectl apply -f config/samples/...")
	}
	readString(t, repo+"/"+first[1])

	_, rel := render(t, "")
	for _, want := range []string{
		"kubectl rollout status deployment/whisperer -n whisperer-system",
		"kubectl apply -f https://raw.githubusercontent.com/whisperer-operator/whisperer/v0.1.0/" + first[1],
		"kubectl get secrets -A -l secret-syncer.jeffl.es/mirror=true",
		"ClusterRole whisperer-metrics-reader",
	} {
		if !strings.Contains(rel.Info.Notes, want) {
			t.Errorf("NOTES.txt does not say %q:\n%s", want, rel.Info.Notes)
		}
	}
	_, rel = render(t, "policy: {sourceNamespaces: [secrets-admin], requireTargetLabel: mirrors=yes}")
	for _, want := range []string{"only in secrets-admin", "labelled mirrors=yes"} {
		if !strings.Contains(rel.Info.Notes, want) {
			t.Errorf("NOTES.txt with a policy does not say %q:\n%s", want, rel.Info.Notes)
		}
	}
	_, rel = render(t, "features: {mirrorSecrets: false, attachPullSecrets: false}")
	if want := "kubectl get configmaps -A -l secret-syncer.jeffl.es/mirror=true"; !strings.Contains(rel.Info.Notes, want) {
		t.Errorf("NOTES.txt without Secrets does not say %q:\n%s", want, rel.Info.Notes)
	}
}
