// Package options reads whisperer's settings: each from its command-line flag or, when the flag
// is not given, from the environment variable named after it (EnvName). Both forms matter: a
// Deployment sets args, but an OLM Subscription can only set the container's environment
// (spec.config.env), so every setting must work from either.
package options

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/whisperer-operator/whisperer/controllers"
	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// Options are the operator's settings.
type Options struct {
	MetricsAddr             string
	SecureMetrics           bool
	EnableHTTP2             bool
	ProbeAddr               string
	LeaderElect             bool
	LeaderElectionNamespace string
	MaxConcurrentReconciles int
	WriteConcurrency        int
	ConflictRetryInterval   time.Duration
	ResyncPeriod            time.Duration
	KubeAPIQPS              float64
	KubeAPIBurst            int
	PprofAddr               string
	// Kubeconfig is the kubeconfig file to use; empty means $KUBECONFIG, the in-cluster
	// configuration, then ~/.kube/config.
	Kubeconfig string
	Policy     mirror.Policy
	// Kinds are the kinds of objects whisperer mirrors.
	Kinds []controllers.Kind
	// AttachServiceAccounts attaches mirrored pull secrets to ServiceAccounts.
	AttachServiceAccounts bool
	Zap                   zap.Options
}

// DefaultExcludedNamespaces never receive mirrors unless the administrator clears
// --exclude-namespaces: a tenant's Secret named like a system component's (aws-auth,
// argocd-secret) pushed into kube-system is how a push becomes a cluster takeover.
const DefaultExcludedNamespaces = "kube-system,kube-public,kube-node-lease"

// EnvPrefix starts the name of every setting's environment variable.
const EnvPrefix = "WHISPERER_"

// EnvName returns the environment variable that stands for the flag named name when the flag is
// not given: --source-namespaces is WHISPERER_SOURCE_NAMESPACES.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// legacyEnv are names the logging flags' variables had before every flag had one; they are
// still read, after the names EnvName gives.
var legacyEnv = map[string]string{
	"zap-log-level": "WHISPERER_LOG_LEVEL",
	"zap-encoder":   "WHISPERER_LOG_FORMAT",
}

// Parse reads the settings from args and, for the flags args does not give, from lookupEnv
// (os.LookupEnv in the operator). A malformed flag or variable is an error that names it.
// With -h or --help it prints the usage to out and returns flag.ErrHelp.
func Parse(args []string, lookupEnv func(string) (string, bool), out io.Writer) (Options, error) {
	o := Options{}
	fs := flag.NewFlagSet("whisperer", flag.ContinueOnError)
	fs.SetOutput(out)
	o.register(fs)
	fs.VisitAll(func(f *flag.Flag) { f.Usage += " [" + strings.Join(envNames(f.Name), ", ") + "]" })
	fs.Usage = func() {
		// Like fs.PrintDefaults below, a usage message has no one to report a failed write to.
		_, _ = fmt.Fprintf(fs.Output(), "Usage of whisperer:\n\nEvery flag can also be set by the environment variable in brackets, "+
			"used when the flag is not given.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return o, applyEnv(fs, lookupEnv)
}

// register defines every flag, with its default, on fs.
func (o *Options) register(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", "0", "Address the metrics endpoint binds to, "+
		"for example :8443 (HTTPS) or :8080 (HTTP). 0 disables it.")
	fs.BoolVar(&o.SecureMetrics, "metrics-secure", true, "Serve metrics over HTTPS, to callers authenticated and "+
		"authorized by the API server.")
	fs.BoolVar(&o.EnableHTTP2, "enable-http2", false, "Serve metrics over HTTP/2 too. Off by default because of "+
		"the HTTP/2 Stream Cancellation and Rapid Reset CVEs.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader among replicas, so that only one writes.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader election "+
		"Lease; defaults to the operator's namespace when it runs in a cluster.")
	fs.IntVar(&o.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "Sources reconciled at once.")
	fs.IntVar(&o.WriteConcurrency, "mirror-write-concurrency", 32, "Mirror writes of one source made at once.")
	fs.DurationVar(&o.ConflictRetryInterval, "conflict-retry-interval", time.Minute,
		"How often a source whose mirror is blocked by another Secret of the same name looks again.")
	fs.DurationVar(&o.ResyncPeriod, "resync-period", 10*time.Minute, "How often each source is reconciled "+
		"without an event, as a safety net; it writes nothing when mirrors are in sync. 0 disables it.")
	fs.Float64Var(&o.KubeAPIQPS, "kube-api-qps", -1, "Client-side limit of API requests per second, for each "+
		"resource type. Negative, the default: none. whisperer's load is bounded by the writes it keeps in flight "+
		"(--max-concurrent-reconciles times --mirror-write-concurrency), and API Priority and Fairness protects the API server.")
	fs.IntVar(&o.KubeAPIBurst, "kube-api-burst", 2000, "Client-side burst of API requests above a positive --kube-api-qps.")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", "0", "Address of the pprof endpoint, for profiling. 0 disables it.")
	o.Kinds, o.AttachServiceAccounts = slices.Clone(controllers.AllKinds), true
	fs.Var(resourcesValue{&o.Kinds, &o.AttachServiceAccounts}, "resources", "Comma-separated resources whisperer "+
		"works on: secrets and configmaps, which it mirrors, and serviceaccounts, to which it attaches mirrored pull "+
		"secrets. Without one, whisperer watches none of that resource and needs no right on it.")
	o.registerPolicy(fs)
	o.Zap.BindFlags(fs)
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "Kubeconfig file to use. Without it: $KUBECONFIG, "+
		"the in-cluster configuration, then ~/.kube/config.")
}

// registerPolicy defines the administrator's policy flags (docs/security.md).
func (o *Options) registerPolicy(fs *flag.FlagSet) {
	p := &o.Policy
	fs.Var(patternsValue{&p.SourceNamespaces}, "source-namespaces", "Comma-separated namespaces and globs "+
		"(team-*) whose Secrets may be sources; a labelled Secret elsewhere is refused with a Warning Event. "+
		"Empty (the default) allows every namespace: set this first in a multi-tenant cluster.")
	p.ExcludedNamespaces = mustPatterns(DefaultExcludedNamespaces)
	fs.Var(patternsValue{&p.ExcludedNamespaces}, "exclude-namespaces", "Comma-separated namespaces and globs "+
		"that never receive a mirror, whatever a source asks. Namespaces labelled "+mirror.LabelIgnore+
		"=true are excluded too. An empty value excludes none.")
	fs.Var(selectorValue{&p.TargetSelector}, "require-target-label", "A label selector (key, key=value) that every "+
		"namespace must match to receive mirrors, for example secret-syncer.jeffl.es/allow-mirrors=true. "+
		"Empty (the default) requires none.")
	fs.IntVar(&p.MaxSourceSize, "max-source-size", 0, "Largest source, in bytes of data, that is mirrored; "+
		"a larger one is refused with a Warning Event. 0 (the default) allows up to the API server's limit.")
	fs.IntVar(&p.MaxTargetsPerSource, "max-targets-per-source", 0, "Most namespaces one source may be mirrored "+
		"into; a source that asks for more is refused with a Warning Event. 0 (the default) sets no limit.")
	fs.Var(keysValue{&p.DeniedMetadata}, "deny-metadata", "Comma-separated label and annotation keys and globs "+
		"(example.com/owner, example.com/*) never copied to a mirror, besides the built-in deny-list.")
}

// applyEnv sets, from the environment, every flag that fs.Parse did not see.
func applyEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) error {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		for _, env := range envNames(f.Name) {
			if value, ok := lookupEnv(env); ok {
				if setErr := fs.Set(f.Name, value); setErr != nil {
					err = fmt.Errorf("environment variable %s=%q (for --%s): %w", env, value, f.Name, setErr)
				}
				return
			}
		}
	})
	return err
}

func envNames(flagName string) []string {
	names := []string{EnvName(flagName)}
	if legacy, ok := legacyEnv[flagName]; ok {
		names = append(names, legacy)
	}
	return names
}

// patternsValue is a flag of comma-separated namespace names and globs.
type patternsValue struct{ patterns *mirror.Patterns }

func (v patternsValue) String() string {
	if v.patterns == nil {
		return ""
	}
	return v.patterns.String()
}

func (v patternsValue) Set(s string) error {
	parsed, err := mirror.ParsePatterns(s)
	if err == nil {
		*v.patterns = parsed
	}
	return err
}

// keysValue is a flag of comma-separated label and annotation keys and globs.
type keysValue struct{ keys *mirror.Keys }

func (v keysValue) String() string {
	if v.keys == nil {
		return ""
	}
	return v.keys.String()
}

func (v keysValue) Set(s string) error {
	parsed := mirror.ParseKeys(s)
	if len(parsed.Invalid) > 0 {
		return errors.New(strings.Join(parsed.Invalid, "; "))
	}
	*v.keys = parsed
	return nil
}

// resourcesValue is a flag of comma-separated resources: secrets, configmaps, serviceaccounts.
type resourcesValue struct {
	kinds                 *[]controllers.Kind
	attachServiceAccounts *bool
}

const serviceAccounts = "serviceaccounts"

func (v resourcesValue) String() string {
	if v.kinds == nil {
		return ""
	}
	var names []string
	for _, k := range *v.kinds {
		names = append(names, k.String())
	}
	if *v.attachServiceAccounts {
		names = append(names, serviceAccounts)
	}
	return strings.Join(names, ",")
}

func (v resourcesValue) Set(s string) error {
	var kinds []controllers.Kind
	attach := false
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		i := slices.IndexFunc(controllers.AllKinds, func(k controllers.Kind) bool { return k.String() == entry })
		switch {
		case entry == "":
		case entry == serviceAccounts:
			attach = true
		case i < 0:
			return fmt.Errorf("%q: not one of secrets, configmaps, serviceaccounts", entry)
		case !slices.Contains(kinds, controllers.AllKinds[i]):
			kinds = append(kinds, controllers.AllKinds[i])
		}
	}
	if len(kinds) == 0 {
		return fmt.Errorf("no kind to mirror: name secrets, configmaps or both")
	}
	if attach && !slices.Contains(kinds, controllers.Secrets) {
		return fmt.Errorf("serviceaccounts attaches mirrored Secrets: it needs secrets too")
	}
	*v.kinds, *v.attachServiceAccounts = kinds, attach
	return nil
}

// selectorValue is a flag holding a label selector; empty means none.
type selectorValue struct{ selector *labels.Selector }

func (v selectorValue) String() string {
	if v.selector == nil || *v.selector == nil {
		return ""
	}
	return (*v.selector).String()
}

func (v selectorValue) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		*v.selector = nil
		return nil
	}
	parsed, err := labels.Parse(s)
	if err == nil {
		*v.selector = parsed
	}
	return err
}

func mustPatterns(list string) mirror.Patterns {
	p, err := mirror.ParsePatterns(list)
	if err != nil {
		panic(err) // only reached with a malformed constant
	}
	return p
}
