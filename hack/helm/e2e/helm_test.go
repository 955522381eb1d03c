//go:build helm_e2e

// Package e2e installs the packaged chart with the Helm SDK's install action, the code of helm
// install, on a local control plane; runs bin/whisperer exactly as the Deployment the chart
// created would run it (its arguments, its environment, its ServiceAccount's token) and passes the
// kuttl suite with it; upgrades the release with changed values and checks that the Deployment
// and the operator follow; uninstalls it and checks that the chart's objects are gone and the
// mirrors kept. `make test-helm` runs it inside `localcluster run`, in a network namespace of its
// own, with the cluster and checks of hack/clustertest, which make test-olm shares.
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	ri "helm.sh/helm/v4/pkg/release"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/whisperer-operator/whisperer/hack/clustertest"
)

// The release, as the chart's README installs it.
const (
	releaseName = "whisperer"
	namespace   = "whisperer-system"
	// helmTimeout bounds each wait of helm install --wait, helm upgrade --wait, helm uninstall --wait.
	helmTimeout = 5 * time.Minute
)

var (
	// env holds the run's files (.local/helm), tools and admin kubeconfig.
	env clustertest.Env
	// chartPackage is what make helm-package wrote, the chart as it would be published.
	chartPackage string
)

func TestMain(m *testing.M) {
	var err error
	if env, err = clustertest.EnvFromEnviron(); err == nil {
		if chartPackage = os.Getenv("HELM_E2E_CHART"); chartPackage == "" {
			err = fmt.Errorf("the Helm end-to-end test needs HELM_E2E_CHART, the packaged chart: run it with make test-helm")
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// policySources is where the upgrade allows sources, and only there.
const policySources = "helm-sources"

// upgradeValues change a policy value, the replicas, and switch ConfigMaps off, which takes them
// out of the ClusterRole; the install uses the chart's defaults.
func upgradeValues() map[string]any {
	return map[string]any{
		"replicaCount": 3,
		"policy":       map[string]any{"sourceNamespaces": []any{policySources}},
		"features":     map[string]any{"mirrorConfigMaps": false},
	}
}

func TestInstallRunUpgradeUninstall(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client(t, clientgoscheme.Scheme)
	env.StartNodeLayer(t, ctx, c)
	helm := helmConfiguration(t)
	pkg, err := loader.Load(chartPackage)
	if err != nil {
		t.Fatal(err)
	}

	var rel *release.Release
	t.Run("install", func(t *testing.T) {
		i := action.NewInstall(helm)
		i.ReleaseName, i.Namespace, i.CreateNamespace = releaseName, namespace, true
		i.WaitStrategy, i.Timeout = kube.StatusWatcherStrategy, helmTimeout
		r, err := i.RunWithContext(ctx, pkg, nil)
		rel = released(t, r, err)
		checkRelease(t, ctx, c, rel, 1, pkg)
		dep, _ := deployment(t, ctx, c, rel)
		if *dep.Spec.Replicas != 2 {
			t.Errorf("the Deployment has %d replicas, want the default 2", *dep.Spec.Replicas)
		}
		clustertest.CheckPermissions(t, ctx, c, namespace, dep.Spec.Template.Spec.ServiceAccountName)
	})
	if t.Failed() {
		return
	}
	t.Run("run as the Deployment", func(t *testing.T) {
		operator, sa := startAsDeployment(t, ctx, c, rel)
		t.Run("no other Lease", func(t *testing.T) { env.CheckLeaseRequests(t, ctx, c, namespace, sa) })
		t.Run("metrics", func(t *testing.T) {
			metrics := clustertest.ServiceTargetAddress(t, ctx, c, client.ObjectKey{Namespace: namespace, Name: releaseName + "-metrics"})
			env.CheckMetrics(t, ctx, c, metrics, releaseName+"-metrics-reader")
		})
		t.Run("kuttl", func(t *testing.T) { env.RunKuttl(t, ctx, operator, sa) })
		// The subtest's cleanup stops whisperer, as it stops every process the subtest started.
	})
	if t.Failed() {
		return
	}
	var mirrors map[string]string
	t.Run("upgrade", func(t *testing.T) {
		u := action.NewUpgrade(helm)
		u.Namespace = namespace
		u.WaitStrategy, u.Timeout = kube.StatusWatcherStrategy, helmTimeout
		r, err := u.RunWithContext(ctx, releaseName, pkg, upgradeValues())
		rel = released(t, r, err)
		checkRelease(t, ctx, c, rel, 2, pkg)
		dep, _ := deployment(t, ctx, c, rel)
		if *dep.Spec.Replicas != 3 {
			t.Errorf("the Deployment has %d replicas after the upgrade, want 3", *dep.Spec.Replicas)
		}
		for _, arg := range []string{"--source-namespaces=" + policySources, "--resources=secrets,serviceaccounts"} {
			if !slices.Contains(dep.Spec.Template.Spec.Containers[0].Args, arg) {
				t.Errorf("the Deployment's args %v lack %s after the upgrade", dep.Spec.Template.Spec.Containers[0].Args, arg)
			}
		}
		sa := dep.Spec.Template.Spec.ServiceAccountName
		if clustertest.Allowed(t, ctx, c, namespace, sa, authorizationv1.ResourceAttributes{Verb: "list", Resource: "configmaps"}) {
			t.Errorf("ServiceAccount %s may still list ConfigMaps with features.mirrorConfigMaps false", sa)
		}
		if !clustertest.Allowed(t, ctx, c, namespace, sa, authorizationv1.ResourceAttributes{Verb: "create", Resource: "secrets", Namespace: "any-namespace"}) {
			t.Errorf("ServiceAccount %s may no longer create Secrets with features.mirrorConfigMaps false", sa)
		}
		// The operator, run as the upgraded Deployment, applies the new policy with the narrower
		// ClusterRole, and asks for nothing it does not grant: a watch it may not make would keep
		// it from starting, and the deferred check says which.
		defer env.CheckNothingForbidden(t)
		startAsDeployment(t, ctx, c, rel)
		mirrors = clustertest.CheckPolicy(t, ctx, c, policySources, "helm-elsewhere", "helm-target-a", "helm-target-b")
	})
	if t.Failed() {
		return
	}
	t.Run("uninstall", func(t *testing.T) {
		un := action.NewUninstall(helm)
		un.WaitStrategy, un.Timeout = kube.StatusWatcherStrategy, helmTimeout
		if _, err := un.Run(releaseName); err != nil {
			t.Fatal(err)
		}
		checkUninstalled(t, ctx, c, rel, mirrors)
	})
}

// helmConfiguration is what the helm command builds from its flags: a REST client getter for the
// admin kubeconfig, and releases stored as Secrets in the release's namespace. Helm logs to
// helm.log.
func helmConfiguration(t *testing.T) *action.Configuration {
	t.Helper()
	logFile, err := os.Create(filepath.Join(env.WorkDir, "helm.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := logFile.Close(); err != nil {
			t.Errorf("Helm's log: %v", err)
		}
	})
	getter := genericclioptions.NewConfigFlags(false)
	ns := namespace
	getter.KubeConfig, getter.Namespace = &env.Kubeconfig, &ns
	helm := action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err := helm.Init(getter, namespace, "secret"); err != nil {
		t.Fatal(err)
	}
	return helm
}

// released returns the release an install or upgrade action returned, failing on its error.
func released(t *testing.T, r ri.Releaser, err error) *release.Release {
	t.Helper()
	if err != nil {
		t.Fatalf("%v (Helm's log: %s)", err, filepath.Join(env.WorkDir, "helm.log"))
	}
	rel, ok := r.(*release.Release)
	if !ok {
		t.Fatalf("the action returned a %T", r)
	}
	return rel
}

// manifestObjects are the objects of the release's manifest, as Helm applied them.
func manifestObjects(t *testing.T, rel *release.Release) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range releaseutil.SplitManifests(rel.Manifest) {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		t.Fatal("the release has no objects")
	}
	return out
}

// checkRelease checks that Helm recorded the release as deployed, at revision, from the chart
// package, and that every object of its manifest exists, labelled as Helm's.
func checkRelease(t *testing.T, ctx context.Context, c client.Client, rel *release.Release, revision int, pkg *chart.Chart) {
	t.Helper()
	if rel.Info.Status != "deployed" || rel.Version != revision || rel.Chart.Metadata.Version != pkg.Metadata.Version {
		t.Errorf("release %s: status %s, revision %d, chart %s; want deployed, revision %d, chart %s",
			rel.Name, rel.Info.Status, rel.Version, rel.Chart.Metadata.Version, revision, pkg.Metadata.Version)
	}
	if !strings.Contains(rel.Info.Notes, "kubectl rollout status deployment/"+releaseName) {
		t.Errorf("the release's notes do not say how to check it:\n%s", rel.Info.Notes)
	}
	for _, want := range manifestObjects(t, rel) {
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(want.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
			t.Errorf("%s %s of the release: %v", want.GetKind(), want.GetName(), err)
			continue
		}
		if got.GetLabels()["app.kubernetes.io/managed-by"] != "Helm" || got.GetAnnotations()["meta.helm.sh/release-name"] != releaseName {
			t.Errorf("%s %s is not the release's: labels %v, annotations %v", want.GetKind(), want.GetName(), got.GetLabels(), got.GetAnnotations())
		}
	}
}

// deployment waits for the release's Deployment to have rolled out, its pods running on the kwok
// node as its ServiceAccount with the chart's image, and returns it and its pods.
func deployment(t *testing.T, ctx context.Context, c client.Client, rel *release.Release) (*appsv1.Deployment, []corev1.Pod) {
	t.Helper()
	dep, pods := clustertest.WaitRolledOut(t, ctx, c, client.ObjectKey{Namespace: namespace, Name: releaseName})
	if image, want := dep.Spec.Template.Spec.Containers[0].Image, "ghcr.io/whisperer-operator/whisperer:v"+rel.Chart.Metadata.AppVersion; image != want {
		t.Errorf("the Deployment runs %s, want %s", image, want)
	}
	return dep, pods
}

// startAsDeployment runs bin/whisperer as a pod of the release's rolled-out Deployment runs the
// image (clustertest.StartAsPod), and returns it and the pod's ServiceAccount.
func startAsDeployment(t *testing.T, ctx context.Context, c client.Client, rel *release.Release) (*clustertest.Process, string) {
	t.Helper()
	_, pods := deployment(t, ctx, c, rel)
	return env.StartAsPod(t, ctx, c, &pods[0]), pods[0].Spec.ServiceAccountName
}

// checkUninstalled checks that every object of the release is gone, its pods too, and Helm's
// record of it; and that the mirrors are kept, the same objects as before.
func checkUninstalled(t *testing.T, ctx context.Context, c client.Client, rel *release.Release, mirrors map[string]string) {
	t.Helper()
	objects := manifestObjects(t, rel)
	clustertest.WaitFor(t, ctx, "the release's objects and pods gone", func(ctx context.Context) (bool, string, error) {
		var left []string
		for _, o := range objects {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(o.GroupVersionKind())
			err := c.Get(ctx, client.ObjectKeyFromObject(o), got)
			switch {
			case err == nil:
				left = append(left, o.GetKind()+" "+o.GetName())
			case !apierrors.IsNotFound(err):
				return false, "", err
			}
		}
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/instance": releaseName}); err != nil {
			return false, "", err
		}
		for _, p := range pods.Items {
			left = append(left, "Pod "+p.Name)
		}
		return len(left) == 0, "left: " + strings.Join(left, ", "), nil
	})
	secrets := &corev1.SecretList{}
	if err := c.List(ctx, secrets, client.InNamespace(namespace), client.MatchingLabels{"owner": "helm", "name": releaseName}); err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) > 0 {
		t.Errorf("Helm's record of the release is left: %d Secrets", len(secrets.Items))
	}
	for ns, uid := range mirrors {
		mirror := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: clustertest.AllowedSource}, mirror); err != nil {
			t.Errorf("the mirror in %s after uninstalling: %v", ns, err)
		} else if string(mirror.UID) != uid {
			t.Errorf("the mirror in %s was replaced (uid %s, was %s)", ns, mirror.UID, uid)
		}
	}
	if len(mirrors) == 0 {
		t.Error("no mirrors to check")
	}
	// What the release did not create stays, as the chart's README says: the namespace, and the
	// Lease the operator made there.
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "whisperer.secret-syncer.jeffl.es"}, &coordinationv1.Lease{}); err != nil {
		t.Errorf("the leader election Lease after uninstalling: %v", err)
	}
}
