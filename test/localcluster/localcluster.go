// Package localcluster runs a local Kubernetes control plane for development and tests: etcd,
// kube-apiserver and kube-controller-manager, built from Go modules (make control-plane) and
// bound to 127.0.0.1. The controller manager runs the namespace and garbage collection
// controllers, so namespaces really finish deleting, as in a real cluster.
package localcluster

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// stopTimeout is how long each process gets to exit on SIGTERM before it is killed. The API
// server must be gone before etcd stops: it hangs in its graceful shutdown once etcd is gone.
const stopTimeout = 10 * time.Second

// startTimeout is how long etcd and kube-apiserver each get to become ready. envtest's default,
// 20 seconds, is too short on a loaded 2-core machine: kube-apiserver was seen to miss it there
// while other builds and tests ran.
const startTimeout = 2 * time.Minute

// DefaultControllers are the kube-controller-manager controllers a local cluster runs.
var DefaultControllers = []string{"namespace", "garbagecollector", "serviceaccount", "serviceaccount-token"}

// Options configure a local cluster.
type Options struct {
	// AssetsDir holds the etcd, kube-apiserver and kube-controller-manager binaries. Empty means
	// $KUBEBUILDER_ASSETS, the variable envtest and kuttl read.
	AssetsDir string
	// Controllers lists the kube-controller-manager controllers to run; empty means DefaultControllers.
	Controllers []string
	// Output receives the control plane processes' logs; nil discards them.
	Output io.Writer
	// APIServerFlags are extra kube-apiserver flags, by name without the leading dashes, for
	// example "audit-log-path".
	APIServerFlags map[string]string
}

// Cluster is a running local control plane.
type Cluster struct {
	// Config reaches the API server as a member of system:masters.
	Config *rest.Config
	// Kubeconfig is Config as a kubeconfig file's content.
	Kubeconfig []byte

	env         *envtest.Environment
	dir         string
	controllers *exec.Cmd
	exited      chan struct{}
}

// Start starts etcd, kube-apiserver and kube-controller-manager and returns once the API server
// is ready. The caller must call Stop, which stops them all.
func Start(opts Options) (*Cluster, error) {
	assets := opts.AssetsDir
	if assets == "" {
		assets = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if assets == "" {
		return nil, errors.New("no control plane binaries: set KUBEBUILDER_ASSETS (make control-plane builds them into bin/k8s)")
	}
	dir, err := os.MkdirTemp("", "whisperer-localcluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, env: &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: startTimeout,
		ControlPlaneStopTimeout:  stopTimeout,
		AttachControlPlaneOutput: opts.Output != nil,
	}}
	apiServer := c.env.ControlPlane.GetAPIServer()
	// A certificate folder of our own, removed by Stop: envtest would remove one it created
	// when the API server stops, and StartAPIServer needs the same certificates again.
	apiServer.CertDir = filepath.Join(dir, "apiserver")
	if err := os.Mkdir(apiServer.CertDir, 0o700); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	for name, value := range opts.APIServerFlags {
		apiServer.Configure().Set(name, value)
	}
	if opts.Output != nil {
		apiServer.Out, apiServer.Err = opts.Output, opts.Output
		c.env.ControlPlane.Etcd = &envtest.Etcd{Out: opts.Output, Err: opts.Output}
	}
	if err := c.start(assets, opts); err != nil {
		return nil, errors.Join(err, c.Stop())
	}
	return c, nil
}

func (c *Cluster) start(assets string, opts Options) error {
	if _, err := c.env.Start(); err != nil {
		return fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	admin, err := c.env.AddUser(envtest.User{Name: "whisperer-localcluster-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding admin user: %w", err)
	}
	c.Config = admin.Config()
	if c.Kubeconfig, err = admin.KubeConfig(); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return c.startControllerManager(assets, opts)
}

func (c *Cluster) startControllerManager(assets string, opts Options) error {
	kubeconfig := filepath.Join(c.dir, "controller-manager.kubeconfig")
	if err := os.WriteFile(kubeconfig, c.Kubeconfig, 0o600); err != nil {
		return err
	}
	caFile := filepath.Join(c.dir, "ca.crt")
	if err := os.WriteFile(caFile, c.Config.CAData, 0o600); err != nil {
		return err
	}
	controllers := opts.Controllers
	if len(controllers) == 0 {
		controllers = DefaultControllers
	}
	//nolint:noctx // Stop ends it with SIGTERM, in order after the operator; a context would kill it
	cmd := exec.Command(filepath.Join(assets, "kube-controller-manager"),
		"--kubeconfig="+kubeconfig,
		"--controllers="+strings.Join(controllers, ","),
		"--service-account-private-key-file="+filepath.Join(c.env.ControlPlane.APIServer.CertDir, "sa-signer.key"),
		"--root-ca-file="+caFile,
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=0",
	)
	cmd.Stdout, cmd.Stderr = opts.Output, opts.Output
	// Its own process group: a Ctrl-C in the terminal must not reach it before the operator
	// it serves has stopped. Stop signals it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	c.controllers, c.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(c.exited) }()
	return nil
}

// AddUser returns a config and a kubeconfig that reach the API server as a new user of that name
// and groups, authenticated by a client certificate. Group system:masters may do anything.
func (c *Cluster) AddUser(name string, groups ...string) (*rest.Config, []byte, error) {
	user, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("adding user %s: %w", name, err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, nil, fmt.Errorf("writing kubeconfig of %s: %w", name, err)
	}
	return user.Config(), kubeconfig, nil
}

// EtcdURL is the client URL of the cluster's etcd.
func (c *Cluster) EtcdURL() *url.URL {
	return c.env.ControlPlane.Etcd.URL
}

// StopAPIServer stops kube-apiserver alone, as an outage would; etcd and kube-controller-manager
// keep running. StartAPIServer brings it back.
func (c *Cluster) StopAPIServer() error {
	return c.env.ControlPlane.APIServer.Stop()
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, on the same address, with the
// same certificates and etcd, and returns once it is ready: existing clients and users work
// again unchanged.
func (c *Cluster) StartAPIServer() error {
	if err := c.env.ControlPlane.APIServer.Start(); err != nil {
		return fmt.Errorf("starting kube-apiserver: %w", err)
	}
	return nil
}

// Stop stops kube-controller-manager, then kube-apiserver, then etcd, each with SIGTERM and,
// after stopTimeout, SIGKILL; it returns once all have exited and their files are removed.
func (c *Cluster) Stop() error {
	var errs []error
	if c.controllers != nil {
		errs = append(errs, stopProcess(c.controllers, c.exited))
	}
	errs = append(errs, c.env.Stop(), os.RemoveAll(c.dir))
	return errors.Join(errs...)
}

func stopProcess(cmd *exec.Cmd, exited <-chan struct{}) error {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(stopTimeout):
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%s did not stop within %s and was killed", filepath.Base(cmd.Path), stopTimeout)
	}
}
