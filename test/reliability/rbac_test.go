//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/yaml"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
)

// The operator runs with exactly the RBAC that config/ generates, through a ServiceAccount
// token, and the README's walkthrough (config/samples/sync.yaml) works: not one request denied.
func TestGeneratedRBAC(t *testing.T) {
	e := newEnv(t)
	rendered := renderKustomize(t, "../../config/default")
	var rbac []*unstructured.Unstructured
	var account *unstructured.Unstructured
	for _, obj := range rendered {
		switch obj.GetKind() {
		case "Namespace", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			rbac = append(rbac, obj)
		case "ServiceAccount":
			rbac = append(rbac, obj)
			account = obj
		}
	}
	if account == nil {
		t.Fatal("config/default renders no ServiceAccount")
	}
	checkLeastPrivilege(t, rbac, account)
	e.apply(rbac)
	namespace := account.GetNamespace()
	op, user := e.runAsServiceAccount("rbac", types.NamespacedName{Namespace: namespace, Name: account.GetName()},
		"--leader-elect", "--leader-election-namespace="+namespace)
	eventually(t, time.Minute, "the operator holds the Lease", func(ctx context.Context) error {
		holder, err := e.leaseHolder(ctx, namespace)
		if err == nil && holder == "" {
			err = errors.New("no holder")
		}
		return err
	})

	// The walkthrough.
	for _, obj := range readYAML(t, "../../config/samples/sync.yaml") {
		if err := e.admin.Create(t.Context(), obj); err != nil {
			t.Fatal(err)
		}
	}
	source := types.NamespacedName{Namespace: "source", Name: "sync"}
	want := sets.New("target", "target2")
	e.waitMirrors(source, want, time.Minute)
	mirror := &corev1.Secret{}
	if err := e.admin.Get(t.Context(), types.NamespacedName{Namespace: "target", Name: "sync"}, mirror); err != nil {
		t.Fatal(err)
	}
	e.deleteSecret("target", "sync")
	eventually(t, time.Minute, "the deleted mirror comes back", func(ctx context.Context) error {
		restored := &corev1.Secret{}
		if err := e.admin.Get(ctx, types.NamespacedName{Namespace: "target", Name: "sync"}, restored); err != nil {
			return err
		}
		if restored.UID == mirror.UID {
			return errors.New("not deleted yet")
		}
		return e.checkMirrors(ctx, source, want)
	})
	e.createNamespaces("missing")
	want.Insert("missing")
	e.waitMirrors(source, want, time.Minute)
	events, err := e.clientset.EventsV1().Events("source").List(t.Context(), metav1.ListOptions{FieldSelector: "reason=Mirrored"})
	if err != nil || len(events.Items) == 0 {
		t.Errorf("no Mirrored Event on the source (%v)", err)
	}
	e.deleteSecret(source.Namespace, source.Name)
	e.waitMirrors(source, sets.New[string](), time.Minute)
	settle()
	op.requireRunning()

	requests := e.audit.events(t, by(user, time.Time{}, time.Time{}))
	var denied []auditEvent
	for _, ev := range requests {
		if ev.Code() == 401 || ev.Code() == 403 {
			denied = append(denied, ev)
		}
	}
	got := countSecretWrites(requests)
	t.Logf("generated RBAC: %d requests as %s, %d denied; Secret writes: %s", len(requests), user, len(denied), got)
	if len(denied) > 0 {
		t.Errorf("requests denied to the operator:\n%s", describe(denied))
	}
	if got.create < 4 || got.delete < 3 {
		t.Errorf("Secret writes as %s: %s; the walkthrough needs at least 4 creates and 3 deletes", user, got)
	}
}

// apply creates objects in dependency order: namespaces and definitions first, then accounts
// and roles, then bindings and the rest.
func (e *env) apply(objects []*unstructured.Unstructured) {
	e.t.Helper()
	order := map[string]int{"Namespace": 0, "CustomResourceDefinition": 0, "ServiceAccount": 1, "ClusterRole": 1, "Role": 1}
	rank := func(obj *unstructured.Unstructured) int {
		if r, ok := order[obj.GetKind()]; ok {
			return r
		}
		return 2
	}
	objects = slices.Clone(objects)
	slices.SortStableFunc(objects, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })
	for _, obj := range objects {
		if err := e.admin.Create(e.t.Context(), obj); err != nil {
			e.t.Fatalf("applying %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
}

// runAsServiceAccount runs bin/whisperer as a pod of account would reach the API server: with a
// token of account, verifying the API server's certificate. It returns the operator and the
// user the API server knows it as.
func (e *env) runAsServiceAccount(name string, account types.NamespacedName, args ...string) (*operator, string) {
	e.t.Helper()
	token := e.token(account)
	user := "system:serviceaccount:" + account.Namespace + ":" + account.Name
	reach := &clientcmdapi.Cluster{Server: e.cluster.Config.Host, CertificateAuthorityData: e.cluster.Config.CAData}
	return e.runOperator(name, user, kubeconfig(e.t, reach, &clientcmdapi.AuthInfo{Token: token}), args...), user
}

// token returns a token of the ServiceAccount, valid for an hour.
func (e *env) token(account types.NamespacedName) string {
	e.t.Helper()
	token, err := e.clientset.CoreV1().ServiceAccounts(account.Namespace).CreateToken(e.t.Context(), account.Name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return token.Status.Token
}

// renderKustomize runs `kustomize build dir`, as `make deploy` does.
func renderKustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), kustomizeBin, "build", dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v: %s", dir, err, stderr.String())
	}
	return decodeYAML(t, out)
}

func readYAML(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return decodeYAML(t, content)
}

func decodeYAML(t *testing.T, content []byte) []*unstructured.Unstructured {
	t.Helper()
	decoder := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(content), 4096)
	var out []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		err := decoder.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			out = append(out, obj)
		}
	}
}

// allowed is what issue 5 grants the operator, by API group and resource: everything else is
// too much. The token and access reviews serve the metrics endpoint's authorization.
var (
	clusterAllowed = map[string]sets.Set[string]{
		"/secrets":                           sets.New("get", "list", "watch", "create", "update", "patch", "delete"),
		"/configmaps":                        sets.New("get", "list", "watch", "create", "update", "delete"),
		"/serviceaccounts":                   sets.New("get", "list", "watch", "patch"),
		"/namespaces":                        sets.New("get", "list", "watch"),
		"/events":                            sets.New("create", "patch"),
		"events.k8s.io/events":               sets.New("get", "create"),
		"authentication.k8s.io/tokenreviews": sets.New("create"),
		"authorization.k8s.io/subjectaccessreviews": sets.New("create"),
	}
	// Leases only in the operator's own namespace, through a Role: create any, read and renew
	// only its own (leaseRules checks the names).
	namespaceAllowed = map[string]sets.Set[string]{
		"coordination.k8s.io/leases": sets.New("get", "create", "update"),
		"/events":                    sets.New("create", "patch"),
	}
	// leaseVerbsByName are the Lease verbs that must be limited to the operator's own Lease.
	leaseVerbsByName = sets.New("get", "update")
	dangerousVerbs   = sets.New("escalate", "bind", "impersonate", "*")
)

// checkLeastPrivilege fails the test when a rendered role has a wildcard or a verb that lets
// its holder raise its own rights, or when the roles bound to account grant more than allowed.
func checkLeastPrivilege(t *testing.T, objects []*unstructured.Unstructured, account *unstructured.Unstructured) {
	t.Helper()
	roles := map[string][]rbacv1.PolicyRule{} // by "Kind namespace/name"
	var bindings []rbacv1.RoleBinding
	for _, obj := range objects {
		switch obj.GetKind() {
		case "ClusterRole", "Role":
			role := &rbacv1.Role{}
			fromUnstructured(t, obj, role)
			key := obj.GetKind() + " " + obj.GetNamespace() + "/" + obj.GetName()
			roles[key] = role.Rules
			for _, rule := range role.Rules {
				for _, field := range [][]string{rule.Verbs, rule.APIGroups, rule.Resources, rule.ResourceNames, rule.NonResourceURLs} {
					if slices.Contains(field, "*") {
						t.Errorf("%s has a wildcard: %+v", key, rule)
					}
				}
				if bad := dangerousVerbs.Intersection(sets.New(rule.Verbs...)); bad.Len() > 0 {
					t.Errorf("%s grants %v", key, sets.List(bad))
				}
			}
		case "ClusterRoleBinding", "RoleBinding":
			binding := rbacv1.RoleBinding{}
			fromUnstructured(t, obj, &binding)
			bindings = append(bindings, binding)
		}
	}
	granted := 0
	for _, binding := range bindings {
		if !slices.ContainsFunc(binding.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == account.GetName() && s.Namespace == account.GetNamespace()
		}) {
			continue
		}
		allowed, roleNamespace := clusterAllowed, ""
		if binding.Namespace != "" {
			allowed = namespaceAllowed
			if binding.Namespace != account.GetNamespace() {
				t.Errorf("RoleBinding %s/%s grants rights outside the operator's namespace", binding.Namespace, binding.Name)
			}
			if binding.RoleRef.Kind == "Role" {
				roleNamespace = binding.Namespace
			}
		}
		key := binding.RoleRef.Kind + " " + roleNamespace + "/" + binding.RoleRef.Name
		rules, ok := roles[key]
		if !ok {
			t.Errorf("binding %s refers to %s, which config/ does not define", binding.Name, key)
		}
		for _, rule := range rules {
			granted++
			if len(rule.NonResourceURLs) > 0 {
				t.Errorf("%s, bound to the operator, grants %+v", key, rule)
			}
			if slices.Contains(rule.Resources, "leases") && sets.New(rule.Verbs...).HasAny(sets.List(leaseVerbsByName)...) &&
				!slices.Equal(rule.ResourceNames, []string{leaseName}) {
				t.Errorf("%s, bound to the operator, grants %v on Leases other than %s: %+v", key, rule.Verbs, leaseName, rule)
			}
			for _, group := range rule.APIGroups {
				for _, resource := range rule.Resources {
					verbs := allowed[group+"/"+resource]
					if extra := sets.New(rule.Verbs...).Difference(verbs); extra.Len() > 0 {
						t.Errorf("%s, bound to the operator, grants %v on %s/%s, beyond what it needs", key, sets.List(extra), group, resource)
					}
				}
			}
		}
	}
	if granted == 0 {
		t.Errorf("no role of config/ is bound to ServiceAccount %s/%s", account.GetNamespace(), account.GetName())
	}
	t.Logf("generated RBAC: %d roles, %d bindings; no wildcard, no escalate/bind/impersonate; the operator's rules are within issue 5's list", len(roles), len(bindings))
}

func fromUnstructured(t *testing.T, obj *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into); err != nil {
		t.Fatalf("%s %s: %v", obj.GetKind(), obj.GetName(), err)
	}
}
