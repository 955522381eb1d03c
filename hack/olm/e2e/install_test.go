//go:build olm_e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/operator-registry/alpha/declcfg"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/hack/clustertest"
)

// previousCatalog writes the catalog as it was before the current version was published: the
// committed catalog in dir without its channel head, so that the previous version is the head.
// It returns the folder it wrote.
func previousCatalog(t *testing.T, dir, previous string) string {
	t.Helper()
	cfg, err := declcfg.LoadFS(context.Background(), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Bundles = slices.DeleteFunc(cfg.Bundles, func(b declcfg.Bundle) bool { return b.Name != previous })
	for i := range cfg.Channels {
		cfg.Channels[i].Entries = []declcfg.ChannelEntry{{Name: previous}}
	}
	if len(cfg.Bundles) != 1 {
		t.Fatalf("catalog %s has no bundle %s", dir, previous)
	}
	out := filepath.Join(env.WorkDir, "catalog-previous")
	if err := os.MkdirAll(filepath.Join(out, packageName), 0o750); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(out, packageName, "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(declcfg.WriteYAML(*cfg, f), f.Close()); err != nil {
		t.Fatal(err)
	}
	return out
}

// serveCatalog runs `opm serve dir` on port, and returns once it accepts connections.
func serveCatalog(t *testing.T, ctx context.Context, dir string, port int) *clustertest.Process {
	t.Helper()
	name := "opm-serve-" + filepath.Base(dir)
	p := env.Start(t, name, nil, env.Bin("opm"), "serve", dir, fmt.Sprintf("--port=%d", port),
		"--pprof-addr=", "--termination-log="+filepath.Join(env.WorkDir, name+".termination.log"))
	deadline := time.Now().Add(clustertest.WaitTimeout)
	dialer := net.Dialer{Timeout: time.Second}
	for {
		conn, err := dialer.DialContext(ctx, "tcp", loopback(port))
		if err == nil {
			_ = conn.Close() // it connected, which is all this asks
			t.Logf("opm serves %s on %s", dir, loopback(port))
			return p
		}
		if !p.Running() || time.Now().After(deadline) {
			t.Fatalf("opm serve %s did not start serving (%v); see %s", dir, err, p.Log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// subscribe points a CatalogSource at the catalog's gRPC address and subscribes to the stable
// channel of whisperer, with automatic approval and a setting in spec.config.env: docs/olm.md's
// install.
func subscribe(t *testing.T, ctx context.Context, c client.Client, port int) {
	t.Helper()
	source := &operatorsv1alpha1.CatalogSource{
		ObjectMeta: metav1.ObjectMeta{Name: catalogSourceName, Namespace: catalogNamespace},
		Spec: operatorsv1alpha1.CatalogSourceSpec{
			SourceType:  operatorsv1alpha1.SourceTypeGrpc,
			Address:     loopback(port),
			DisplayName: "whisperer (test catalog)",
			Publisher:   "whisperer-operator",
		},
	}
	if err := c.Create(ctx, source); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, ctx, "the CatalogSource is connected", func(ctx context.Context) (bool, string, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(source), source); err != nil {
			return false, "", err
		}
		if source.Status.GRPCConnectionState == nil {
			return false, "no connection state", nil
		}
		state := source.Status.GRPCConnectionState.LastObservedState
		return state == "READY", "connection " + state, nil
	})
	sub := &operatorsv1alpha1.Subscription{
		ObjectMeta: metav1.ObjectMeta{Name: packageName, Namespace: operatorNamespace},
		Spec: &operatorsv1alpha1.SubscriptionSpec{
			CatalogSource:          catalogSourceName,
			CatalogSourceNamespace: catalogNamespace,
			Package:                packageName,
			Channel:                channelName,
			InstallPlanApproval:    operatorsv1alpha1.ApprovalAutomatic,
			Config: &operatorsv1alpha1.SubscriptionConfig{
				Env: []corev1.EnvVar{{Name: sourceNamespacesVar, Value: sourceNamespaces}},
			},
		},
	}
	if err := c.Create(ctx, sub); err != nil {
		t.Fatal(err)
	}
}

// waitInstalled waits for the Subscription to have installed csvName, for that CSV to succeed,
// and checks what that takes: the operator's Deployment available with its Pods running. It
// returns one of those Pods.
func waitInstalled(t *testing.T, ctx context.Context, c client.Client, csvName string) *corev1.Pod {
	t.Helper()
	sub := &operatorsv1alpha1.Subscription{}
	clustertest.WaitFor(t, ctx, "the Subscription installed "+csvName, func(ctx context.Context) (bool, string, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: packageName}, sub); err != nil {
			return false, "", err
		}
		s := sub.Status
		return s.InstalledCSV == csvName && s.CurrentCSV == csvName,
			fmt.Sprintf("state %s, currentCSV %s, installedCSV %s, conditions %v", s.State, s.CurrentCSV, s.InstalledCSV, subscriptionConditions(sub)), nil
	})
	csv := &operatorsv1alpha1.ClusterServiceVersion{}
	clustertest.WaitFor(t, ctx, "CSV "+csvName+" Succeeded", func(ctx context.Context) (bool, string, error) {
		if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: csvName}, csv); err != nil {
			return false, "", err
		}
		return csv.Status.Phase == operatorsv1alpha1.CSVPhaseSucceeded,
			fmt.Sprintf("phase %s (%s): %s", csv.Status.Phase, csv.Status.Reason, csv.Status.Message), nil
	})

	// OLM says Succeeded only once the Deployment is available; check that it is, with the
	// image of this CSV and the Subscription's setting, and that its Pods really run, on the
	// kwok node, as the ServiceAccount.
	want := csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs
	if len(want) != 1 {
		t.Fatalf("CSV %s installs %d deployments, want 1", csvName, len(want))
	}
	key := client.ObjectKey{Namespace: operatorNamespace, Name: want[0].Name}
	// OLM gives the operator the Subscription's spec.config.env through the Deployment. It finds
	// the Subscription by its installedCSV, which the catalog operator may set only after the olm
	// operator has created the new CSV's Deployment: after an upgrade the Deployment can be
	// available without the variable for a moment, until the Subscription's change has the olm
	// operator sync the CSV again.
	setting := corev1.EnvVar{Name: sourceNamespacesVar, Value: sourceNamespaces}
	clustertest.WaitFor(t, ctx, "Deployment "+key.String()+" has the Subscription's "+sourceNamespacesVar, func(ctx context.Context) (bool, string, error) {
		dep := &appsv1.Deployment{}
		if err := c.Get(ctx, key, dep); err != nil {
			return false, "", err
		}
		vars := dep.Spec.Template.Spec.Containers[0].Env
		return slices.Contains(vars, setting), fmt.Sprintf("environment %v", vars), nil
	})
	dep, pods := clustertest.WaitRolledOut(t, ctx, c, key)
	if got, img := dep.Spec.Template.Spec.Containers[0].Image, want[0].Spec.Template.Spec.Containers[0].Image; got != img {
		t.Errorf("deployment %s runs %s, want the image of %s: %s", dep.Name, got, csvName, img)
	}
	if sa := dep.Spec.Template.Spec.ServiceAccountName; sa != serviceAccount {
		t.Errorf("deployment %s runs as %s, want %s", dep.Name, sa, serviceAccount)
	}
	if !slices.Contains(dep.Spec.Template.Spec.Containers[0].Env, setting) {
		t.Errorf("deployment %s lost the Subscription's %s while rolling out", dep.Name, sourceNamespacesVar)
	}
	return &pods[0]
}

func subscriptionConditions(sub *operatorsv1alpha1.Subscription) []string {
	var out []string
	for _, c := range sub.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			out = append(out, fmt.Sprintf("%s: %s", c.Type, c.Message))
		}
	}
	return out
}

// waitReplaced waits for the CSV that was upgraded from to be gone.
func waitReplaced(t *testing.T, ctx context.Context, c client.Client, csvName string) {
	t.Helper()
	clustertest.WaitFor(t, ctx, "CSV "+csvName+" replaced and deleted", func(ctx context.Context) (bool, string, error) {
		csv := &operatorsv1alpha1.ClusterServiceVersion{}
		err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: csvName}, csv)
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		return false, fmt.Sprintf("phase %s (%s)", csv.Status.Phase, csv.Status.Reason), err
	})
}

// checkPermissions checks the RBAC OLM created for csvName: the ServiceAccount, a Role bound
// to it in the operator's namespace and ClusterRoles bound to it, with exactly the rules of
// the CSV; and asks the API server whether the ServiceAccount may do what whisperer does.
func checkPermissions(t *testing.T, ctx context.Context, c client.Client, csvName string) {
	t.Helper()
	csv := &operatorsv1alpha1.ClusterServiceVersion{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: csvName}, csv); err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: serviceAccount}, sa); err != nil {
		t.Fatalf("the ServiceAccount OLM creates: %v", err)
	}
	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: serviceAccount, Namespace: operatorNamespace}
	owned := client.MatchingLabels{"olm.owner": csvName, "olm.owner.namespace": operatorNamespace}

	var roleRules, clusterRules []rbacv1.PolicyRule
	roles := &rbacv1.RoleList{}
	bindings := &rbacv1.RoleBindingList{}
	if err := c.List(ctx, roles, client.InNamespace(operatorNamespace), owned); err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, bindings, client.InNamespace(operatorNamespace), owned); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles.Items {
		if boundTo(r.Name, "Role", subject, bindingsOf(bindings.Items)) {
			roleRules = append(roleRules, r.Rules...)
		}
	}
	clusterRoles := &rbacv1.ClusterRoleList{}
	clusterBindings := &rbacv1.ClusterRoleBindingList{}
	if err := c.List(ctx, clusterRoles, owned); err != nil {
		t.Fatal(err)
	}
	if err := c.List(ctx, clusterBindings, owned); err != nil {
		t.Fatal(err)
	}
	for _, r := range clusterRoles.Items {
		if boundTo(r.Name, "ClusterRole", subject, clusterBindingsOf(clusterBindings.Items)) {
			clusterRules = append(clusterRules, r.Rules...)
		}
	}
	// OLM binds the CSV's permissions in the operator's namespace and its clusterPermissions
	// cluster-wide. Under an AllNamespaces OperatorGroup it also grants the permissions in every
	// namespace (a ClusterRole), and read access to namespaces: more rules than the CSV's, but
	// every rule of the CSV must be there.
	strategy := csv.Spec.InstallStrategy.StrategySpec
	if missing := missingRules(roleRules, rulesOf(strategy.Permissions)); len(missing) > 0 {
		t.Errorf("rules of the CSV's permissions that OLM did not bind in %s for %s: %v", operatorNamespace, csvName, missing)
	}
	if missing := missingRules(clusterRules, rulesOf(strategy.ClusterPermissions)); len(missing) > 0 {
		t.Errorf("rules of the CSV's clusterPermissions that OLM did not bind for %s: %v", csvName, missing)
	}

	// What whisperer does, and what it must not, asked of the API server's authorizer.
	clustertest.CheckPermissions(t, ctx, c, operatorNamespace, serviceAccount)

	// The bundle's other manifests: the metrics Service and the ClusterRole for scrapers.
	if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "whisperer-controller-manager-metrics-service"}, &corev1.Service{}); err != nil {
		t.Errorf("metrics service: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: "whisperer-metrics-reader"}, &rbacv1.ClusterRole{}); err != nil {
		t.Errorf("metrics reader ClusterRole: %v", err)
	}
}

type binding struct {
	role     rbacv1.RoleRef
	subjects []rbacv1.Subject
}

func bindingsOf(items []rbacv1.RoleBinding) []binding {
	var out []binding
	for _, b := range items {
		out = append(out, binding{b.RoleRef, b.Subjects})
	}
	return out
}

func clusterBindingsOf(items []rbacv1.ClusterRoleBinding) []binding {
	var out []binding
	for _, b := range items {
		out = append(out, binding{b.RoleRef, b.Subjects})
	}
	return out
}

func boundTo(role, kind string, subject rbacv1.Subject, bindings []binding) bool {
	for _, b := range bindings {
		if b.role.Kind == kind && b.role.Name == role && slices.Contains(b.subjects, subject) {
			return true
		}
	}
	return false
}

func rulesOf(perms []operatorsv1alpha1.StrategyDeploymentPermissions) []rbacv1.PolicyRule {
	var out []rbacv1.PolicyRule
	for _, p := range perms {
		if p.ServiceAccountName == serviceAccount {
			out = append(out, p.Rules...)
		}
	}
	return out
}

// missingRules returns the rules of want that got does not have.
func missingRules(got, want []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	key := func(r rbacv1.PolicyRule) string {
		return fmt.Sprint(r.APIGroups, r.Resources, r.ResourceNames, r.NonResourceURLs, r.Verbs)
	}
	have := map[string]bool{}
	for _, r := range got {
		have[key(r)] = true
	}
	var missing []rbacv1.PolicyRule
	for _, r := range want {
		if !have[key(r)] {
			missing = append(missing, r)
		}
	}
	return missing
}

// uninstall removes whisperer as docs/olm.md says: the Subscription, then the CSV. OLM and the
// garbage collector remove the Deployment and the RBAC. OLM v0.41 leaves one object behind
// after an upgrade: the bundle's metrics reader ClusterRole, a cluster-scoped manifest whose
// owner labels the upgrade rewrote without the owner's kind; docs/olm.md's last step deletes it.
func uninstall(t *testing.T, ctx context.Context, c client.Client, csvName string, earlier ...string) {
	t.Helper()
	sub := &operatorsv1alpha1.Subscription{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: packageName}, sub); err != nil {
		t.Fatal(err)
	}
	if sub.Status.InstalledCSV != csvName {
		t.Fatalf("the Subscription's installedCSV is %q, want %s", sub.Status.InstalledCSV, csvName)
	}
	if err := c.Delete(ctx, sub); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &operatorsv1alpha1.ClusterServiceVersion{ObjectMeta: metav1.ObjectMeta{Name: sub.Status.InstalledCSV, Namespace: operatorNamespace}}); err != nil {
		t.Fatal(err)
	}
	const leftover = "whisperer-metrics-reader"
	remaining := func(ctx context.Context) ([]string, error) {
		var left []string
		for _, list := range []client.ObjectList{&appsv1.DeploymentList{}, &corev1.PodList{}, &rbacv1.RoleList{}, &rbacv1.RoleBindingList{}} {
			if err := c.List(ctx, list, client.InNamespace(operatorNamespace)); err != nil {
				return nil, err
			}
			left = append(left, names(list)...)
		}
		for _, owner := range append([]string{csvName}, earlier...) {
			for _, list := range []client.ObjectList{&rbacv1.ClusterRoleList{}, &rbacv1.ClusterRoleBindingList{}} {
				if err := c.List(ctx, list, client.MatchingLabels{"olm.owner": owner}); err != nil {
					return nil, err
				}
				left = append(left, names(list)...)
			}
		}
		return left, nil
	}
	clustertest.WaitFor(t, ctx, "the Deployment, its Pods and the RBAC of "+csvName+" are gone", func(ctx context.Context) (bool, string, error) {
		left, err := remaining(ctx)
		left = slices.DeleteFunc(left, func(s string) bool { return strings.HasPrefix(s, "clusterrole "+leftover+" ") })
		return len(left) == 0, "left: " + strings.Join(left, ", "), err
	})
	if err := c.Delete(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: leftover}}); client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	if left, err := remaining(ctx); err != nil || len(left) > 0 {
		t.Errorf("after uninstalling: %v %v", left, err)
	}
}

// names lists the kind and name of each item of list.
func names(list client.ObjectList) []string {
	items, err := apimeta.ExtractList(list)
	if err != nil {
		panic(err)
	}
	kind := strings.ToLower(strings.TrimSuffix(reflect.TypeOf(list).Elem().Name(), "List"))
	var out []string
	for _, item := range items {
		o := item.(client.Object)
		out = append(out, fmt.Sprintf("%s %s (labels %v, created %s)", kind, o.GetName(), o.GetLabels(), o.GetCreationTimestamp()))
	}
	return out
}
