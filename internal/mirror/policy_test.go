package mirror

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func mustPatterns(t *testing.T, list string) Patterns {
	t.Helper()
	p, err := ParsePatterns(list)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParsePatterns(t *testing.T) {
	for _, bad := range []string{"Kube-System", "a_b", "[ab]", "!kube-system", strings.Repeat("a", 64)} {
		if _, err := ParsePatterns("ok," + bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParsePatterns(%q) error = %v, want one naming the entry", bad, err)
		}
	}
	got := mustPatterns(t, " kube-system , ,team-* ")
	if got.String() != "kube-system,team-*" {
		t.Errorf("ParsePatterns = %q", got)
	}
}

func TestPolicyRefusal(t *testing.T) {
	typed := func(namespace string, typ corev1.SecretType) *Source {
		return source("", func(c *cached) { c.Namespace = namespace; c.content.Type = string(typ) })
	}
	tests := []struct {
		name   string
		kind   Kind
		policy Policy
		source *Source
		// refused is a part of the refusal; empty means not refused.
		refused string
	}{
		{name: "zero policy allows every namespace", source: typed("anywhere", corev1.SecretTypeOpaque)},
		{name: "zero policy still refuses service account tokens", source: typed("a", corev1.SecretTypeServiceAccountToken), refused: "service account's credentials"},
		{name: "bootstrap tokens", source: typed("kube-system", corev1.SecretTypeBootstrapToken), refused: "cluster join credentials"},
		{name: "docker config is fine", source: typed("a", corev1.SecretTypeDockerConfigJson)},
		{name: "source namespace allowed by name", policy: Policy{SourceNamespaces: mustPatterns(t, "secrets,shared-*")}, source: typed("secrets", corev1.SecretTypeOpaque)},
		{name: "source namespace allowed by glob", policy: Policy{SourceNamespaces: mustPatterns(t, "secrets,shared-*")}, source: typed("shared-x", corev1.SecretTypeOpaque)},
		{name: "source namespace not allowed", policy: Policy{SourceNamespaces: mustPatterns(t, "secrets,shared-*")}, source: typed("team-a", corev1.SecretTypeOpaque), refused: "Secrets in namespace team-a cannot be sources"},
		{name: "the kind is named", kind: KindConfigMap, policy: Policy{SourceNamespaces: mustPatterns(t, "secrets")}, source: typed("team-a", ""), refused: "ConfigMaps in namespace team-a"},
		{name: "over the size limit", policy: Policy{MaxSourceSize: 1}, source: typed("a", corev1.SecretTypeOpaque), refused: "--max-source-size"},
		{name: "annotation over the limits", source: source(strings.Repeat("a,", MaxEntries+1)), refused: "1001 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind := tt.kind
			if kind == "" {
				kind = KindSecret
			}
			got := tt.policy.Refusal(kind, tt.source)
			if (got == "") != (tt.refused == "") || !strings.Contains(got, tt.refused) {
				t.Errorf("Refusal() = %q, want one containing %q", got, tt.refused)
			}
		})
	}
}

func TestPolicyAllowsTarget(t *testing.T) {
	required, _ := labels.Parse("secret-syncer.jeffl.es/allow-mirrors=true")
	tests := []struct {
		name   string
		policy Policy
		ns     Namespace
		want   bool
	}{
		{name: "zero policy", ns: Namespace{Name: "a"}, want: true},
		{name: "ignore label", ns: Namespace{Name: "a", Labels: map[string]string{LabelIgnore: "true"}}, want: false},
		{name: "ignore label not true", ns: Namespace{Name: "a", Labels: map[string]string{LabelIgnore: "no"}}, want: true},
		{name: "excluded by name", policy: Policy{ExcludedNamespaces: mustPatterns(t, "kube-system,kube-*")}, ns: Namespace{Name: "kube-system"}, want: false},
		{name: "excluded by glob", policy: Policy{ExcludedNamespaces: mustPatterns(t, "kube-*")}, ns: Namespace{Name: "kube-public"}, want: false},
		{name: "not excluded", policy: Policy{ExcludedNamespaces: mustPatterns(t, "kube-*")}, ns: Namespace{Name: "team"}, want: true},
		{name: "required label present", policy: Policy{TargetSelector: required}, ns: Namespace{Name: "a", Labels: map[string]string{"secret-syncer.jeffl.es/allow-mirrors": "true"}}, want: true},
		{name: "required label missing", policy: Policy{TargetSelector: required}, ns: Namespace{Name: "a"}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.policy.AllowsTarget(tt.ns); got != tt.want {
				t.Errorf("AllowsTarget(%+v) = %v, want %v", tt.ns, got, tt.want)
			}
		})
	}
}
