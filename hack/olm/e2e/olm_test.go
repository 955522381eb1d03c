//go:build olm_e2e

// Package e2e installs and upgrades whisperer with the Operator Lifecycle Manager on a local
// control plane, as a user of OperatorHub would, with a setting in the Subscription; then runs
// the operator exactly as the Deployment OLM created would run it (its arguments, its
// environment, its ServiceAccount's token), checks that the setting holds and passes the kuttl
// suite. `make test-olm` runs it inside `localcluster run` (etcd, kube-apiserver,
// kube-controller-manager), in a network namespace of its own, with KUBECONFIG set to the
// cluster's admin kubeconfig.
//
// Nothing runs in a container: there is no container runtime. What a cluster would run in
// pods runs here as local processes (OLM's olm and catalog operators, opm serving the catalog,
// and finally whisperer itself), and kwok plays the kubelet of one fake node, so that the
// Deployment OLM creates gets real Pods, scheduled by kube-scheduler and made Ready by kwok,
// and becomes available through the real deployment and replicaset controllers.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/operator-framework/operator-registry/alpha/declcfg"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/hack/clustertest"
)

// What the test installs, and where, as docs/olm.md's Installing does.
const (
	catalogNamespace  = "olm"
	operatorNamespace = "operators"
	packageName       = "whisperer"
	channelName       = "stable"
	catalogSourceName = "whisperer-catalog"
	serviceAccount    = "whisperer-controller-manager"
)

// catalogPort is opm serve's, its default: on 127.0.0.1, free in the test's own network
// namespace, where nothing listens but what the test starts, and below the range the kernel picks
// from for the control plane's ports.
const catalogPort = 50051

// The setting the Subscription gives whisperer, in spec.config.env, where OperatorHub users
// configure it: sources only in the namespaces of the kuttl suite (source, *-source), of the
// upgrade (upgrade-source) and of the policy check (policySources). The policy check's refused
// source is in none of them.
const (
	policySources       = "olm-sources"
	sourceNamespacesVar = "WHISPERER_SOURCE_NAMESPACES"
	sourceNamespaces    = "source,*-source," + policySources
)

// env holds the run's files (.local/olm), tools and admin kubeconfig.
var env clustertest.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = clustertest.EnvFromEnviron(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

func TestInstallUpgradeAndRunUnderOLM(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client(t, scheme)

	// The committed catalog is the one the test upgrades to: the previous version and the
	// current one, which replaces it. It starts from the previous version alone.
	committed := filepath.Join(env.RepoDir, "catalog")
	current, previous := channelHead(t, committed)
	first := previousCatalog(t, committed, previous)

	env.StartNodeLayer(t, ctx, c)
	startOLM(t, ctx, c)
	opm := serveCatalog(t, ctx, first, catalogPort)

	// pod is one of the Pods of the Deployment OLM created for the installed CSV, which
	// whisperer runs as.
	var pod *corev1.Pod
	t.Run("install", func(t *testing.T) {
		subscribe(t, ctx, c, catalogPort)
		pod = waitInstalled(t, ctx, c, previous)
		checkPermissions(t, ctx, c, previous)
	})
	if t.Failed() {
		return
	}
	var before map[string]string
	t.Run("mirror with the previous version", func(t *testing.T) {
		operator := env.StartAsPod(t, ctx, c, pod)
		before = mirrorBeforeUpgrade(t, ctx, c)
		if err := operator.Stop(); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	t.Run("upgrade", func(t *testing.T) {
		// Publishing a version is serving a catalog that has it: OLM reconnects, sees the new
		// channel head and upgrades the Subscription.
		if err := opm.Stop(); err != nil {
			t.Fatal(err)
		}
		serveCatalog(t, ctx, committed, catalogPort)
		pod = waitInstalled(t, ctx, c, current)
		waitReplaced(t, ctx, c, previous)
		checkPermissions(t, ctx, c, current)
	})
	if t.Failed() {
		return
	}
	t.Run("run as the Deployment OLM created", func(t *testing.T) {
		operator := env.StartAsPod(t, ctx, c, pod)
		t.Run("mirrors of the previous version", func(t *testing.T) { manageAfterUpgrade(t, ctx, c, before) })
		t.Run("no other Lease", func(t *testing.T) { env.CheckLeaseRequests(t, ctx, c, operatorNamespace, serviceAccount) })
		t.Run("the Subscription's setting", func(t *testing.T) {
			clustertest.CheckPolicy(t, ctx, c, policySources, "olm-elsewhere", "olm-target-a", "olm-target-b")
		})
		t.Run("metrics", func(t *testing.T) {
			metrics := clustertest.ServiceTargetAddress(t, ctx, c, client.ObjectKey{Namespace: operatorNamespace, Name: "whisperer-controller-manager-metrics-service"})
			env.CheckMetrics(t, ctx, c, metrics, "whisperer-metrics-reader")
		})
		t.Run("kuttl", func(t *testing.T) { env.RunKuttl(t, ctx, operator, serviceAccount) })
		if err := operator.Stop(); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	t.Run("uninstall", func(t *testing.T) {
		uninstall(t, ctx, c, current, previous)
	})
}

// channelHead reads the catalog in dir and returns the head of the stable channel and the
// entry it replaces.
func channelHead(t *testing.T, dir string) (head, replaces string) {
	t.Helper()
	cfg, err := declcfg.LoadFS(context.Background(), os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range cfg.Channels {
		if ch.Package != packageName || ch.Name != channelName {
			continue
		}
		replaced := map[string]bool{}
		for _, e := range ch.Entries {
			replaced[e.Replaces] = true
		}
		for _, e := range ch.Entries {
			if !replaced[e.Name] {
				if head != "" {
					t.Fatalf("channel %s has two heads: %s and %s", channelName, head, e.Name)
				}
				head, replaces = e.Name, e.Replaces
			}
		}
	}
	if head == "" || replaces == "" {
		t.Fatalf("catalog %s has no upgrade edge in channel %s (head %q replaces %q)", dir, channelName, head, replaces)
	}
	if !strings.HasPrefix(head, packageName+".v") {
		t.Fatalf("unexpected channel head %s", head)
	}
	return head, replaces
}
