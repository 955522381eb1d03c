//go:build olm_e2e

// Package e2e installs and upgrades whisperer with the Operator Lifecycle Manager on a local
// control plane, as a user of OperatorHub would, then runs the operator with the credentials
// OLM gave it and passes the kuttl suite with them. `make test-olm` runs it inside
// `localcluster run` (etcd, kube-apiserver, kube-controller-manager), in a network namespace of
// its own, with KUBECONFIG set to the cluster's admin kubeconfig.
//
// Nothing runs in a container: there is no container runtime. What a cluster would run in
// pods runs here as local processes (OLM's olm and catalog operators, opm serving the catalog,
// and finally whisperer itself), and kwok plays the kubelet of one fake node, so that the
// Deployment OLM creates gets real Pods, scheduled by kube-scheduler and made Ready by kwok,
// and becomes available through the real deployment and replicaset controllers.
package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/operator-framework/operator-registry/alpha/declcfg"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
)

// What the test installs, and where, as README's "Install from OperatorHub" does.
const (
	catalogNamespace  = "olm"
	operatorNamespace = "operators"
	packageName       = "whisperer"
	channelName       = "stable"
	catalogSourceName = "whisperer-catalog"
	serviceAccount    = "whisperer-controller-manager"
	// leaseName is whisperer's leader election Lease.
	leaseName = "whisperer.secret-syncer.jeffl.es"
	// sourceNamespacesPolicy is the WHISPERER_SOURCE_NAMESPACES the Subscription sets: the source
	// namespaces of the kuttl suite and of the upgrade test, and no others.
	sourceNamespacesPolicy = "source,*-source"
)

var (
	// workDir holds the logs, catalogs and kubeconfigs of a run (.local/olm).
	workDir string
	// repoDir is the repository's root.
	repoDir string
	// binDir holds the tools make builds (bin/).
	binDir string
	// adminKubeconfig is the control plane's admin kubeconfig.
	adminKubeconfig string
)

func TestMain(m *testing.M) {
	for name, v := range map[string]*string{
		"OLM_E2E_WORKDIR": &workDir,
		"OLM_E2E_REPO":    &repoDir,
		"OLM_E2E_BIN":     &binDir,
		"KUBECONFIG":      &adminKubeconfig,
	} {
		*v = os.Getenv(name)
		if *v == "" {
			os.Stderr.WriteString("the OLM end-to-end test needs " + name + ": run it with make test-olm\n")
			os.Exit(2)
		}
	}
	os.Exit(m.Run())
}

func TestInstallUpgradeAndRunUnderOLM(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.GetConfig()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// The committed catalog is the one the test upgrades to: the previous version and the
	// current one, which replaces it. It starts from the previous version alone.
	committed := filepath.Join(repoDir, "catalog")
	current, previous := channelHead(t, committed)
	first := previousCatalog(t, committed, previous)

	startNodeLayer(t, ctx, c)
	startOLM(t, ctx, c)
	catalogPort := freePort(t)
	opm := serveCatalog(t, first, catalogPort)

	t.Run("install", func(t *testing.T) {
		subscribe(t, ctx, c, catalogPort)
		waitInstalled(t, ctx, c, previous)
		checkPermissions(t, ctx, c, previous)
	})
	if t.Failed() {
		return
	}
	var before map[string]string
	t.Run("mirror with the previous version", func(t *testing.T) {
		operator := startOperator(t, ctx, c)
		before = mirrorBeforeUpgrade(t, ctx, c)
		if err := operator.stop(); err != nil {
			t.Error(err)
		}
	})
	if t.Failed() {
		return
	}
	t.Run("upgrade", func(t *testing.T) {
		// Publishing a version is serving a catalog that has it: OLM reconnects, sees the new
		// channel head and upgrades the Subscription.
		if err := opm.stop(); err != nil {
			t.Fatal(err)
		}
		serveCatalog(t, committed, catalogPort)
		waitInstalled(t, ctx, c, current)
		waitReplaced(t, ctx, c, previous)
		checkPermissions(t, ctx, c, current)
	})
	if t.Failed() {
		return
	}
	t.Run("run with the permissions OLM granted", func(t *testing.T) {
		operator := startOperator(t, ctx, c)
		t.Run("mirrors of the previous version", func(t *testing.T) { manageAfterUpgrade(t, ctx, c, before) })
		t.Run("metrics", func(t *testing.T) { checkMetrics(t, ctx, c, operator.metricsPort) })
		t.Run("kuttl", func(t *testing.T) { runKuttl(t, ctx, operator.log) })
		t.Run("policy from the Subscription", func(t *testing.T) { checkSourcePolicy(t, ctx, c) })
		t.Run("no other Lease", func(t *testing.T) { checkLeaseDenied(t, ctx, c) })
		if !operator.running() {
			t.Errorf("whisperer exited during the tests; see %s", operator.log)
		}
		if err := operator.stop(); err != nil {
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
