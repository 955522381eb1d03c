package mirror

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

var pullSecret = Content{Type: string(corev1.SecretTypeDockerConfigJson), Digest: "d", Size: 10}

func withAccounts(annotation string) func(*cached) {
	return func(c *cached) {
		c.content = pullSecret
		c.Annotations[AnnotationServiceAccounts] = annotation
	}
}

// accountsIn serves the ServiceAccounts of a namespace from a fixed list.
func accountsIn(accounts ...ServiceAccount) func(string) []ServiceAccount {
	return func(namespace string) []ServiceAccount {
		var in []ServiceAccount
		for _, sa := range accounts {
			if sa.Namespace == namespace {
				in = append(in, sa)
			}
		}
		return in
	}
}

func attachments(r Result) []string {
	var out []string
	for _, a := range r.Attachments {
		out = append(out, fmt.Sprintf("%s/%s/%s", a.Kind, a.Account.Namespace, a.Account.Name))
	}
	return out
}

func TestPlanAttachments(t *testing.T) {
	sa := func(namespace, name string, pullSecrets, added string) ServiceAccount {
		return ServiceAccount{Namespace: namespace, Name: name, PullSecrets: AddedOf(pullSecrets), Added: AddedOf(added)}
	}
	tests := []struct {
		name     string
		kind     Kind
		source   *Source
		ns       []Namespace
		mirrors  []*cached
		accounts []ServiceAccount
		noAttach bool
		want     []string
		invalid  string
	}{
		{
			name:   "the named ServiceAccount in every target gets the mirror",
			source: source("a,b", withAccounts("default")), ns: namespaces("source", "a", "b"),
			accounts: []ServiceAccount{sa("a", "default", "", ""), sa("b", "default", "", ""), sa("b", "builder", "", ""), sa("source", "default", "", "")},
			want:     []string{"attach/a/default", "attach/b/default"},
		},
		{
			name:   "globs and exclusions",
			source: source("a", withAccounts("*, !builder")), ns: namespaces("source", "a"),
			accounts: []ServiceAccount{sa("a", "default", "", ""), sa("a", "builder", "", ""), sa("a", "app.v2", "", "")},
			want:     []string{"attach/a/default", "attach/a/app.v2"},
		},
		{
			name:   "an entry there already is left alone, whoever put it there",
			source: source("a", withAccounts("default")), ns: namespaces("source", "a"),
			accounts: []ServiceAccount{sa("a", "default", "other,sync", "")},
		},
		{
			name:   "converged: nothing to write",
			source: source("a", withAccounts("default")), ns: namespaces("source", "a"), mirrors: []*cached{mirrorIn("a")},
			accounts: []ServiceAccount{sa("a", "default", "other,sync", "sync")},
		},
		{
			name:   "an entry whisperer added and someone removed is put back",
			source: source("a", withAccounts("default")), ns: namespaces("source", "a"), mirrors: []*cached{mirrorIn("a")},
			accounts: []ServiceAccount{sa("a", "default", "other", "sync")},
			want:     []string{"attach/a/default"},
		},
		{
			name: "the source gone: whisperer's entries go, before the mirrors",
			ns:   namespaces("source", "a"), mirrors: []*cached{mirrorIn("a")},
			accounts: []ServiceAccount{sa("a", "default", "sync", "sync"), sa("a", "theirs", "sync", "")},
			want:     []string{"detach/a/default"},
		},
		{
			name:   "a namespace no longer a target loses the entry",
			source: source("b", withAccounts("default")), ns: namespaces("source", "a", "b"), mirrors: []*cached{mirrorIn("a"), mirrorIn("b")},
			accounts: []ServiceAccount{sa("a", "default", "sync", "sync"), sa("b", "default", "sync", "sync")},
			want:     []string{"detach/a/default"},
		},
		{
			name:   "a ServiceAccount no longer named loses the entry",
			source: source("a", withAccounts("other")), ns: namespaces("source", "a"), mirrors: []*cached{mirrorIn("a")},
			accounts: []ServiceAccount{sa("a", "default", "sync", "sync")},
			want:     []string{"detach/a/default"},
		},
		{
			name:   "the annotation removed: the entries go",
			source: source("a"), ns: namespaces("source", "a"), mirrors: []*cached{mirrorIn("a")},
			accounts: []ServiceAccount{sa("a", "default", "sync", "sync")},
			want:     []string{"detach/a/default"},
		},
		{
			name:   "not a pull secret: ignored, with the reason, and what was attached goes",
			source: source("a", withAccounts("default"), withContent(opaque)), ns: namespaces("source", "a"), mirrors: []*cached{mirrorIn("a")},
			accounts: []ServiceAccount{sa("a", "default", "sync", "sync")},
			want:     []string{"detach/a/default"}, invalid: "Secrets of type Opaque are not pull secrets",
		},
		{
			name:   "a refused source: its entries go",
			source: source("a", withAccounts("default"), func(c *cached) { c.content.Type = string(corev1.SecretTypeServiceAccountToken) }),
			ns:     namespaces("source", "a"), mirrors: []*cached{mirrorIn("a")},
			accounts: []ServiceAccount{sa("a", "default", "sync", "sync")},
			want:     []string{"detach/a/default"}, invalid: "are not pull secrets",
		},
		{
			name: "ConfigMaps have no pull secrets",
			kind: KindConfigMap, source: source("a", withAccounts("default")), ns: namespaces("source", "a"),
			accounts: []ServiceAccount{sa("a", "default", "", "")}, invalid: "only Secrets of type",
		},
		{
			name:   "the operator does not attach",
			source: source("a", withAccounts("default")), ns: namespaces("source", "a"), noAttach: true,
			invalid: "serviceaccounts is not in its --resources",
		},
		{
			name:   "invalid entries are reported, the valid ones served",
			source: source("a", withAccounts("default,Default,a_b")), ns: namespaces("source", "a"),
			accounts: []ServiceAccount{sa("a", "default", "", "")},
			want:     []string{"attach/a/default"}, invalid: `"Default"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind := tt.kind
			if kind == "" {
				kind = KindSecret
			}
			state := State{Kind: kind, Key: sourceKey, Source: tt.source, Namespaces: tt.ns, ContentOf: contentOf}
			for _, m := range tt.mirrors {
				m.content = pullSecret
				state.Mirrors = append(state.Mirrors, m)
			}
			if !tt.noAttach {
				state.ServiceAccountsIn = accountsIn(tt.accounts...)
			}
			r := Plan(state)
			if got := attachments(r); !slices.Equal(got, tt.want) {
				t.Errorf("attachments %v, want %v", got, tt.want)
			}
			if (r.InvalidServiceAccounts == "") != (tt.invalid == "") || !strings.Contains(r.InvalidServiceAccounts, tt.invalid) {
				t.Errorf("InvalidServiceAccounts %q, want one containing %q", r.InvalidServiceAccounts, tt.invalid)
			}
		})
	}
}

func TestReattaching(t *testing.T) {
	lost := Attachment{Kind: Attach, Secret: "sync", Account: ServiceAccount{PullSecrets: []string{"other"}, Added: []string{"sync"}}}
	first := Attachment{Kind: Attach, Secret: "sync", Account: ServiceAccount{}}
	if !lost.Reattaching() || first.Reattaching() {
		t.Errorf("Reattaching: %v for an entry whisperer added and lost, %v for a first attach; want true, false", lost.Reattaching(), first.Reattaching())
	}
}

func TestAddedOf(t *testing.T) {
	if got := AddedOf(" a, ,b,a "); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("AddedOf = %v", got)
	}
}
