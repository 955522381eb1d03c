// Command localcluster starts a local Kubernetes control plane when there is no cluster to use,
// so that whisperer can be run and tested on a machine with nothing installed.
//
//	localcluster reachable
//	    Exits 0 when the current kubeconfig reaches a cluster, 1 when it does not.
//	localcluster run [--assets DIR] [--kubeconfig PATH] [--log PATH] [--controllers LIST] [-- COMMAND [ARG...]]
//	    Starts etcd, kube-apiserver and kube-controller-manager on 127.0.0.1 (running the
//	    comma-separated kube-controller-manager controllers LIST, by default those of
//	    localcluster.DefaultControllers), writes an admin
//	    kubeconfig to PATH and runs COMMAND with KUBECONFIG set to it. When COMMAND exits, or on
//	    Ctrl-C, it stops COMMAND and then every process it started, and exits with COMMAND's
//	    status. Without COMMAND it runs until Ctrl-C.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/whisperer-operator/whisperer/test/localcluster"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: localcluster reachable | run [--assets DIR] [--kubeconfig PATH] [--log PATH] [--controllers LIST] [-- COMMAND [ARG...]]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "reachable":
		os.Exit(reachable())
	case "run":
		os.Exit(run(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "localcluster: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}

// reachable reports, by exit status, whether the current kubeconfig reaches an API server.
func reachable() int {
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(clientcmd.NewDefaultClientConfigLoadingRules(), nil)
	cfg, err := loader.ClientConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "No cluster in the current kubeconfig (%v).\n", err)
		return 1
	}
	cfg.Timeout = 5 * time.Second
	client, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err == nil {
		_, err = client.ServerVersion()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "The current kubeconfig does not reach a cluster at %s (%v).\n", cfg.Host, err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "Using the cluster of the current kubeconfig: %s\n", cfg.Host)
	return 0
}

func run(args []string) int {
	fs := flag.NewFlagSet("localcluster run", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", ".local/kubeconfig", "Where to write the admin kubeconfig.")
	logPath := fs.String("log", ".local/controlplane.log", "Where the control plane processes log.")
	assets := fs.String("assets", defaultAssets(), "Folder holding etcd, kube-apiserver and kube-controller-manager.")
	controllers := fs.String("controllers", strings.Join(localcluster.DefaultControllers, ","), "The kube-controller-manager controllers to run, comma-separated.")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	opts := localcluster.Options{AssetsDir: *assets, Controllers: strings.Split(*controllers, ",")}
	code, err := runCluster(opts, *kubeconfig, *logPath, fs.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// defaultAssets is $KUBEBUILDER_ASSETS, else bin/k8s where make control-plane builds them.
func defaultAssets() string {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	return filepath.Join("bin", "k8s")
}

func runCluster(opts localcluster.Options, kubeconfig, logPath string, command []string) (code int, err error) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	// A closed terminal or pipe (tee stopped by the same Ctrl-C) must not kill this process
	// before it has stopped the control plane.
	signal.Ignore(syscall.SIGPIPE)
	if kubeconfig, err = filepath.Abs(kubeconfig); err != nil {
		return 1, err
	}
	logFile, err := createFile(logPath)
	if err != nil {
		return 1, err
	}
	defer func() { err = errors.Join(err, logFile.Close()) }()

	fmt.Fprintf(os.Stderr, "Starting a local control plane (etcd, kube-apiserver, kube-controller-manager), logs in %s\n", logPath)
	opts.Output = logFile
	cluster, err := localcluster.Start(opts)
	if err != nil {
		return 1, err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "Stopping the local control plane")
		err = errors.Join(err, cluster.Stop(), os.Remove(kubeconfig))
	}()
	if err := writeFile(kubeconfig, cluster.Kubeconfig); err != nil {
		return 1, err
	}
	fmt.Fprintf(os.Stderr, "Local control plane ready at %s. To use it from another shell:\n\n    export KUBECONFIG=%s\n\n", cluster.Config.Host, kubeconfig)
	if len(command) == 0 {
		fmt.Fprintln(os.Stderr, "Press Ctrl-C to stop it.")
		<-signals
		return 0, nil
	}
	return runCommand(command, kubeconfig, signals)
}

// runCommand runs command against the cluster until it exits, passing on the first stop signal.
func runCommand(command []string, kubeconfig string, signals <-chan os.Signal) (int, error) {
	cmd := exec.Command(command[0], command[1:]...) //nolint:noctx // stopped by the signal forwarded to it, for a graceful shutdown
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	// Its own process group, so that a Ctrl-C reaches it once, from here: a second SIGINT
	// makes controller-runtime programs exit without a graceful shutdown.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return 1, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go forwardFirstSignal(ctx, cmd.Process, signals)
	err := <-done
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

func forwardFirstSignal(ctx context.Context, process *os.Process, signals <-chan os.Signal) {
	select {
	case sig := <-signals:
		_ = process.Signal(sig)
	case <-ctx.Done():
	}
}

func createFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	return os.Create(path)
}

func writeFile(path string, content []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	return os.WriteFile(path, content, 0o600)
}
