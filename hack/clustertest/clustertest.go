// Package clustertest is what the install tests share: make test-olm (hack/olm/e2e) installs
// whisperer with the Operator Lifecycle Manager, make test-helm (hack/helm/e2e) with Helm, both
// on a local control plane that `localcluster run` starts, in a network namespace of their own
// (netns.sh). This package gives that cluster a node that runs pods without containers
// (kube-scheduler, and kwok playing the kubelet), runs bin/whisperer as a pod of the install's
// Deployment would run it (its arguments, its environment, a token of its ServiceAccount and
// nothing else), and checks it the same way in both: permissions, leader election, a source
// policy, metrics, and the whole kuttl suite.
//
// Nothing runs in a container: there is no container runtime. What a cluster would run in pods
// runs here as local processes, which the test stops when it ends.
package clustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Env is where a test run keeps its files and finds its tools and cluster.
type Env struct {
	// WorkDir holds the logs, kubeconfigs and kuttl artifacts of a run (.local/olm, .local/helm).
	WorkDir string
	// RepoDir is the repository's root.
	RepoDir string
	// BinDir holds what make builds (bin/): whisperer, kwok, kuttl.
	BinDir string
	// ControlPlaneDir holds kube-scheduler and kubectl, with the control plane: bin/k8s unless
	// make's KUBEBUILDER_ASSETS says otherwise.
	ControlPlaneDir string
	// Kubeconfig is the control plane's admin kubeconfig.
	Kubeconfig string
}

// EnvFromEnviron reads the Env that make passes: E2E_WORKDIR, E2E_REPO, E2E_BIN and
// KUBEBUILDER_ASSETS, and the KUBECONFIG that localcluster run sets.
func EnvFromEnviron() (Env, error) {
	var e Env
	for name, v := range map[string]*string{
		"E2E_WORKDIR": &e.WorkDir,
		"E2E_REPO":    &e.RepoDir,
		"E2E_BIN":     &e.BinDir,
		"KUBECONFIG":  &e.Kubeconfig,
	} {
		if *v = os.Getenv(name); *v == "" {
			return e, fmt.Errorf("the end-to-end tests need %s: run them with make test-olm or make test-helm", name)
		}
	}
	if e.ControlPlaneDir = os.Getenv("KUBEBUILDER_ASSETS"); e.ControlPlaneDir == "" {
		e.ControlPlaneDir = e.Bin("k8s")
	}
	return e, os.MkdirAll(e.WorkDir, 0o750)
}

// Bin is the path of a file under BinDir.
func (e Env) Bin(parts ...string) string {
	return filepath.Join(append([]string{e.BinDir}, parts...)...)
}

// RESTConfig reaches the cluster as its admin.
func (e Env) RESTConfig(t *testing.T) *rest.Config {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Client is a client of the cluster's admin, for the types of scheme.
func (e Env) Client(t *testing.T, scheme *runtime.Scheme) client.Client {
	t.Helper()
	c, err := client.New(e.RESTConfig(t), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// WaitTimeout bounds each wait for the cluster to reach a state.
const WaitTimeout = 4 * time.Minute

// WaitFor polls check every second until it returns true, and fails the test after WaitTimeout
// with check's last word on what it saw.
func WaitFor(t *testing.T, ctx context.Context, what string, check func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, WaitTimeout, true, func(ctx context.Context) (bool, error) {
		done, status, err := check(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			last = err.Error()
		case err == nil:
			last = status
		}
		return done, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last seen: %s", what, err, last)
	}
	t.Logf("%s", what)
}
