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

	"k8s.io/apimachinery/pkg/labels"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/whisperer-operator/whisperer/controllers"
	"github.com/whisperer-operator/whisperer/internal/metricsauth"
	"github.com/whisperer-operator/whisperer/internal/mirror"
	"github.com/whisperer-operator/whisperer/internal/telemetry"
)

// options are the command-line flags.
type options struct {
	metricsAddr             string
	secureMetrics           bool
	enableHTTP2             bool
	probeAddr               string
	leaderElect             bool
	leaderElectionNamespace string
	maxConcurrentReconciles int
	writeConcurrency        int
	conflictRetryInterval   time.Duration
	resyncPeriod            time.Duration
	kubeAPIQPS              float64
	kubeAPIBurst            int
	pprofAddr               string
	policy                  mirror.Policy
	zap                     zap.Options
}

// logEnv maps environment variables to the logging flags they stand for when the flag is not
// given, so that the log level can be switched without editing the command line.
var logEnv = map[string]string{
	"WHISPERER_LOG_LEVEL":  "zap-log-level",
	"WHISPERER_LOG_FORMAT": "zap-encoder",
}

func parseOptions(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("whisperer", flag.ContinueOnError)
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, "+
		"for example :8443 (HTTPS) or :8080 (HTTP). 0 disables it.")
	fs.BoolVar(&o.secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, to callers authenticated and "+
		"authorized by the API server.")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false, "Serve metrics over HTTP/2 too. Off by default because of "+
		"the HTTP/2 Stream Cancellation and Rapid Reset CVEs.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader among replicas, so that only one writes.")
	fs.StringVar(&o.leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election "+
		"Lease; defaults to the operator's namespace when it runs in a cluster.")
	fs.IntVar(&o.maxConcurrentReconciles, "max-concurrent-reconciles", 4, "Sources reconciled at once.")
	fs.IntVar(&o.writeConcurrency, "mirror-write-concurrency", 16, "Mirror writes of one source made at once.")
	fs.DurationVar(&o.conflictRetryInterval, "conflict-retry-interval", controllers.DefaultConflictRetryInterval,
		"How often a source whose mirror is blocked by another Secret of the same name looks again.")
	fs.DurationVar(&o.resyncPeriod, "resync-period", 10*time.Minute, "How often each source is reconciled "+
		"without an event, as a safety net; it writes nothing when mirrors are in sync. 0 disables it.")
	fs.Float64Var(&o.kubeAPIQPS, "kube-api-qps", 1000, "Client-side limit of API requests per second. "+
		"API Priority and Fairness protects the API server; this only smooths bursts. A negative value disables it.")
	fs.IntVar(&o.kubeAPIBurst, "kube-api-burst", 2000, "Client-side burst of API requests above --kube-api-qps.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address of the pprof endpoint, for profiling. 0 disables it.")
	fs.Func("source-namespaces", "Comma-separated namespaces and globs (team-*) whose Secrets may be sources; "+
		"a labelled Secret elsewhere is refused with a Warning Event. Empty (the default) allows every namespace: "+
		"set this first in a multi-tenant cluster.", func(v string) (err error) {
		o.policy.SourceNamespaces, err = mirror.ParsePatterns(v)
		return err
	})
	fs.Func("exclude-namespaces", "Comma-separated namespaces and globs that never receive a mirror, whatever a "+
		"source asks (for example kube-*). Namespaces labelled "+mirror.LabelIgnore+"=true are excluded too.",
		func(v string) (err error) {
			o.policy.ExcludedNamespaces, err = mirror.ParsePatterns(v)
			return err
		})
	fs.Func("require-target-label", "A label selector (key, key=value) that every namespace must match to "+
		"receive mirrors, for example secret-syncer.jeffl.es/allow-mirrors=true. Empty (the default) requires none.",
		func(v string) (err error) {
			o.policy.TargetSelector, err = labels.Parse(v)
			return err
		})
	o.zap.BindFlags(fs)
	// --kubeconfig, read by ctrl.GetConfig; without it: $KUBECONFIG, in-cluster, ~/.kube/config.
	config.RegisterFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of whisperer:\n")
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nEnvironment, used when the matching flag is not given:\n"+
			"  WHISPERER_LOG_LEVEL   like --zap-log-level (debug, info, error, or a verbosity such as 2)\n"+
			"  WHISPERER_LOG_FORMAT  like --zap-encoder (json or console)\n")
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	return o, applyLogEnv(fs)
}

func applyLogEnv(fs *flag.FlagSet) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for env, name := range logEnv {
		if value, ok := os.LookupEnv(env); ok && !given[name] {
			if err := fs.Set(name, value); err != nil {
				return fmt.Errorf("%s=%q: %w", env, value, err)
			}
		}
	}
	return nil
}

func newManager(o options) (ctrl.Manager, error) {
	var tlsOpts []func(*tls.Config)
	if !o.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metrics := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.secureMetrics, TLSOpts: tlsOpts}
	if o.secureMetrics {
		metrics.FilterProvider = metricsauth.Filter
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster to connect to: %w", err)
	}
	cfg.QPS, cfg.Burst = float32(o.kubeAPIQPS), o.kubeAPIBurst
	return ctrl.NewManager(cfg, ctrl.Options{
		// client-go's scheme, which client-go fills at start anyway: a scheme of our own would
		// hold a second copy of every type's registration (1.6 MiB measured).
		Scheme:                  clientgoscheme.Scheme,
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metrics,
		HealthProbeBindAddress:  o.probeAddr,
		PprofBindAddress:        o.pprofAddr,
		LeaderElection:          o.leaderElect,
		LeaderElectionID:        "whisperer.secret-syncer.jeffl.es",
		LeaderElectionNamespace: o.leaderElectionNamespace,
		// The process exits right after the manager stops: releasing the Lease then lets a
		// standby take over at once instead of after the lease duration.
		LeaderElectionReleaseOnCancel: true,
	})
}

func run(o options) error {
	mgr, err := newManager(o)
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
	reconciler := &controllers.SecretMirrorReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("whisperer"),
		WriteConcurrency:        o.writeConcurrency,
		MaxConcurrentReconciles: o.maxConcurrentReconciles,
		ConflictRetryInterval:   o.conflictRetryInterval,
		ResyncPeriod:            o.resyncPeriod,
		Policy:                  o.policy,
	}
	if err := reconciler.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding readiness check: %w", err)
	}
	ctrl.Log.Info("Starting whisperer")
	return mgr.Start(ctx)
}

func main() {
	o, err := parseOptions(os.Args[1:])
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case err != nil:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	if released, err := releaseStartupPages(); err != nil {
		ctrl.Log.Info("Cannot release the executable's startup pages: the RSS stays higher, nothing else changes", "reason", err.Error())
	} else {
		ctrl.Log.V(1).Info("Released the executable's startup pages", "bytes", released)
	}
	ctrl.Log.V(1).Info("Garbage collector target", "gcPercent", setGCPercent())
	if err := run(o); err != nil {
		ctrl.Log.Error(err, "Stopped")
		os.Exit(1)
	}
}
