// Command whisperer runs the operator that mirrors labelled Secrets into other namespaces.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"

	"github.com/whisperer-operator/whisperer/controllers"
	"github.com/whisperer-operator/whisperer/internal/fencing"
	"github.com/whisperer-operator/whisperer/internal/options"
	"github.com/whisperer-operator/whisperer/internal/telemetry"
)

// leaderElectionID names whisperer's leader election Lease.
const leaderElectionID = "whisperer.secret-syncer.jeffl.es"

// newManager makes the manager, and, with leader election, the Lease whose freshness the
// reconcilers check before they write (see internal/fencing).
func newManager(o options.Options) (ctrl.Manager, *fencing.Lease, error) {
	var tlsOpts []func(*tls.Config)
	if !o.EnableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metrics := metricsserver.Options{BindAddress: o.MetricsAddr, SecureServing: o.SecureMetrics, TLSOpts: tlsOpts}
	if o.SecureMetrics {
		// TokenReview and SubjectAccessReview of each caller, as kube-rbac-proxy does.
		metrics.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	cfg, err := restConfig(o.Kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("no cluster to connect to: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.KubeAPIQPS), o.KubeAPIBurst
	var lease *fencing.Lease
	if o.LeaderElect {
		if lease, err = fencing.New(cfg, o.LeaderElectionNamespace, leaderElectionID); err != nil {
			return nil, nil, fmt.Errorf("leader election: %w", err)
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		// client-go's scheme, which client-go fills at start anyway: a scheme of our own would
		// hold a second copy of every type's registration (1.6 MiB measured).
		Scheme:                  clientgoscheme.Scheme,
		Cache:                   controllers.CacheOptions(o.AttachServiceAccounts, o.Kinds...),
		Metrics:                 metrics,
		HealthProbeBindAddress:  o.ProbeAddr,
		PprofBindAddress:        o.PprofAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		RenewDeadline:           ptr.To(fencing.RenewDeadline),
		// The process exits right after the manager stops: releasing the Lease then lets a
		// standby take over at once instead of after the lease duration.
		LeaderElectionReleaseOnCancel:       true,
		LeaderElectionResourceLockInterface: leaseLock(lease),
	})
	return mgr, lease, err
}

// leaseLock is lease as the manager's lock: none without leader election.
func leaseLock(lease *fencing.Lease) resourcelock.Interface {
	if lease == nil {
		return nil
	}
	return lease
}

// restConfig reads the kubeconfig file at path or, when path is empty, finds the configuration as
// kubectl does: $KUBECONFIG, the in-cluster configuration, then ~/.kube/config.
func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		return ctrl.GetConfig()
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: path}, &clientcmd.ConfigOverrides{}).ClientConfig()
}

func run(o options.Options) error {
	mgr, lease, err := newManager(o)
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	ctx := ctrl.SetupSignalHandler()
	stopTracing, err := telemetry.Setup(ctx)
	if err != nil {
		return fmt.Errorf("setting up tracing from the OTEL_* environment: %w", err)
	}
	defer func() {
		// The signal context is done by now: flushing gets a few seconds of its own.
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(flushCtx); err != nil {
			ctrl.Log.Error(err, "Flushing traces")
		}
	}()
	for _, kind := range o.Kinds {
		reconciler := &controllers.MirrorReconciler{
			Kind:                    kind,
			Client:                  mgr.GetClient(),
			APIReader:               mgr.GetAPIReader(),
			WriteConcurrency:        o.WriteConcurrency,
			MaxConcurrentReconciles: o.MaxConcurrentReconciles,
			ConflictRetryInterval:   o.ConflictRetryInterval,
			ResyncPeriod:            o.ResyncPeriod,
			Policy:                  o.Policy,
			AttachServiceAccounts:   o.AttachServiceAccounts,
		}
		if lease != nil {
			reconciler.LeaderCurrent = lease.Current
		}
		if err := reconciler.SetupWithManager(ctx, mgr); err != nil {
			return fmt.Errorf("setting up the controller of %s: %w", kind, err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
	}
	if len(o.Policy.SourceNamespaces) == 0 {
		// logr has no warning level: the message says it.
		ctrl.Log.Info("WARNING: any namespace may push Secrets into others: --source-namespaces is not set",
			"why", "a labelled Secret in any namespace is a source; restrict sources in a cluster shared by tenants (docs/security.md)")
	}
	ctrl.Log.Info("Starting whisperer")
	return mgr.Start(ctx)
}

func main() {
	o, err := options.Parse(os.Args[1:], os.LookupEnv, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.Zap)))
	if err := run(o); err != nil {
		ctrl.Log.Error(err, "Stopped")
		os.Exit(1)
	}
}
