package helm

import (
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/common"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// futureRole is config/rbac/role.yaml as controller-gen writes it once whisperer mirrors
// ConfigMaps and attaches pull secrets to ServiceAccounts: it merges the rules of resources that
// have the same verbs, so configmaps shares the rule of secrets.
const futureRole = `---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: manager-role
rules:
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: [create, delete, get, list, update, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get, list, update, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
`

// TestAFeatureSwitchedOffLosesItsRules checks how the ClusterRole drops the resources of the
// features that are off (whisperer.resourcesOff), on the role above with configmaps and
// serviceaccounts off: a rule keeps its other resources, a rule left with none goes, the others
// stay as they are. With nothing off, the role is rendered as it is.
func TestAFeatureSwitchedOffLosesItsRules(t *testing.T) {
	c := loadChart(t)
	replace(t, c.Files, "files/rbac/role.yaml", "", futureRole)
	o, _ := renderChart(t, c, "")
	var all rbacv1.ClusterRole
	if err := yaml.Unmarshal([]byte(futureRole), &all); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(all.Rules, rules(t, o, "ClusterRole", releaseName)); diff != "" {
		t.Errorf("with every feature on, the ClusterRole differs from role.yaml (-role.yaml +chart):\n%s", diff)
	}

	replace(t, c.Templates, "templates/_helpers.tpl", "{{- $off := list -}}", `{{- $off := list "configmaps" "serviceaccounts" -}}`)
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "delete", "get", "list", "update", "watch"}},
		all.Rules[1],
		all.Rules[3],
	}
	o, _ = renderChart(t, c, "")
	if diff := cmp.Diff(want, rules(t, o, "ClusterRole", releaseName)); diff != "" {
		t.Errorf("with configmaps and serviceaccounts off (-want +chart):\n%s", diff)
	}
}

// replace replaces old with new in the chart file name; an empty old replaces the whole file.
func replace(t *testing.T, files []*common.File, name, old, new string) {
	t.Helper()
	for _, f := range files {
		if f.Name != name {
			continue
		}
		if old == "" {
			f.Data = []byte(new)
			return
		}
		if !strings.Contains(string(f.Data), old) {
			t.Fatalf("%s no longer holds %q", name, old)
		}
		f.Data = []byte(strings.Replace(string(f.Data), old, new, 1))
		return
	}
	t.Fatalf("the chart has no file %s", name)
}

// TestNotesSayHowToCheck checks that NOTES.txt gives the walkthrough's first command, on a sample
// that exists, and says when the policy makes the sample refused.
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
}
