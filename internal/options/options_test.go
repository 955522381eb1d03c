package options

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/whisperer-operator/whisperer/controllers"
	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// exampleValues holds, for every flag, a valid value other than its default. A flag added
// without an example fails TestEveryFlagHasAnEnvironmentVariable.
var exampleValues = map[string]string{
	"metrics-bind-address":      ":8443",
	"metrics-secure":            "false",
	"enable-http2":              "true",
	"health-probe-bind-address": ":9091",
	"leader-elect":              "true",
	"leader-election-namespace": "operators",
	"max-concurrent-reconciles": "7",
	"mirror-write-concurrency":  "3",
	"conflict-retry-interval":   "17s",
	"resync-period":             "1h",
	"kube-api-qps":              "50",
	"kube-api-burst":            "60",
	"pprof-bind-address":        ":6060",
	"source-namespaces":         "secrets-admin,platform-*",
	"exclude-namespaces":        "kube-*",
	"require-target-label":      "allow-mirrors=true",
	"max-source-size":           "65536",
	"resources":                 "secrets",
	"max-targets-per-source":    "2000",
	"deny-metadata":             "example.com/owner,team.example.com/*",
	"kubeconfig":                "/tmp/kubeconfig",
	"zap-devel":                 "true",
	"zap-encoder":               "console",
	"zap-log-level":             "debug",
	"zap-stacktrace-level":      "panic",
	"zap-time-encoding":         "iso8601",
}

func noEnv(string) (string, bool) { return "", false }

func envOf(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// flagNames lists the flags --help shows, checking that each names its environment variable.
func flagNames(t *testing.T) []string {
	t.Helper()
	var help bytes.Buffer
	if _, err := Parse([]string{"--help"}, noEnv, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v, want flag.ErrHelp", err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -(\S+)`).FindAllStringSubmatch(help.String(), -1) {
		names = append(names, m[1])
		if !strings.Contains(help.String(), "["+EnvName(m[1])) {
			t.Errorf("--help does not name %s for --%s", EnvName(m[1]), m[1])
		}
	}
	if len(names) < len(exampleValues) {
		t.Fatalf("--help lists %d flags (%v), fewer than the %d examples", len(names), names, len(exampleValues))
	}
	return names
}

// view is what a test compares of Options: reflect.DeepEqual cannot compare zap's functions, so
// they are summarised.
type view struct {
	Options
	Development, HasEncoder, HasTimeEncoder bool
	Level, Stacktrace                       zapcore.Level
}

func viewOf(o Options) view {
	v := view{Development: o.Zap.Development, HasEncoder: o.Zap.NewEncoder != nil, HasTimeEncoder: o.Zap.TimeEncoder != nil}
	if o.Zap.Level != nil {
		v.Level = levelOf(o.Zap.Level)
	}
	if o.Zap.StacktraceLevel != nil {
		v.Stacktrace = levelOf(o.Zap.StacktraceLevel)
	}
	o.Zap = zap.Options{}
	v.Options = o
	return v
}

// levelOf returns the lowest level enabler enables.
func levelOf(enabler zapcore.LevelEnabler) zapcore.Level {
	for l := zapcore.Level(-10); l < zapcore.FatalLevel; l++ {
		if enabler.Enabled(l) {
			return l
		}
	}
	return zapcore.FatalLevel
}

func mustParse(t *testing.T, args []string, env map[string]string) Options {
	t.Helper()
	o, err := Parse(args, envOf(env), io.Discard)
	if err != nil {
		t.Fatalf("Parse(%q, %v): %v", args, env, err)
	}
	return o
}

func TestEveryFlagHasAnEnvironmentVariable(t *testing.T) {
	defaults := viewOf(mustParse(t, nil, nil))
	for _, name := range flagNames(t) {
		t.Run(name, func(t *testing.T) {
			value, ok := exampleValues[name]
			if !ok {
				t.Fatalf("no example value for --%s: add one", name)
			}
			byFlag := viewOf(mustParse(t, []string{"--" + name + "=" + value}, nil))
			byEnv := viewOf(mustParse(t, nil, map[string]string{EnvName(name): value}))
			if reflect.DeepEqual(byFlag, defaults) {
				t.Fatalf("--%s=%s changes nothing: pick an example that differs from the default", name, value)
			}
			if !reflect.DeepEqual(byEnv, byFlag) {
				t.Errorf("%s=%s gives\n%+v\nwant what --%s=%s gives\n%+v", EnvName(name), value, byEnv, name, value, byFlag)
			}
			malformed := map[string]string{EnvName(name): "\x00not valid{"}
			if _, err := Parse(nil, envOf(malformed), io.Discard); err != nil && !strings.Contains(err.Error(), EnvName(name)) {
				t.Errorf("error %q does not name %s", err, EnvName(name))
			}
		})
	}
}

func TestFlagWinsOverEnvironment(t *testing.T) {
	o := mustParse(t, []string{"--source-namespaces=from-flag"}, map[string]string{"WHISPERER_SOURCE_NAMESPACES": "from-env"})
	if got := o.Policy.SourceNamespaces.String(); got != "from-flag" {
		t.Errorf("source namespaces %q, want the flag's", got)
	}
}

func TestMalformedEnvironmentStopsTheStart(t *testing.T) {
	for env, value := range map[string]string{
		"WHISPERER_SOURCE_NAMESPACES":    "Not_A_Namespace",
		"WHISPERER_REQUIRE_TARGET_LABEL": "a in (",
		"WHISPERER_RESYNC_PERIOD":        "often",
		"WHISPERER_LOG_LEVEL":            "loud",
		"WHISPERER_LOG_FORMAT":           "xml",
		"WHISPERER_RESOURCES":            "secrets,pods",
		"WHISPERER_DENY_METADATA":        "example.com/*,not a key",
	} {
		_, err := Parse(nil, envOf(map[string]string{env: value}), io.Discard)
		if err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%s=%q: error %v, want one that names the variable", env, value, err)
		}
	}
}

func TestLegacyLogVariables(t *testing.T) {
	o := mustParse(t, nil, map[string]string{"WHISPERER_LOG_LEVEL": "3", "WHISPERER_LOG_FORMAT": "console"})
	if v := viewOf(o); v.Level != zapcore.Level(-3) || !v.HasEncoder {
		t.Errorf("WHISPERER_LOG_LEVEL=3, WHISPERER_LOG_FORMAT=console: level %v, encoder set %v", v.Level, v.HasEncoder)
	}
	o = mustParse(t, nil, map[string]string{"WHISPERER_ZAP_LOG_LEVEL": "error", "WHISPERER_LOG_LEVEL": "debug"})
	if v := viewOf(o); v.Level != zapcore.ErrorLevel {
		t.Errorf("WHISPERER_ZAP_LOG_LEVEL=error beside WHISPERER_LOG_LEVEL=debug: level %v, want error", v.Level)
	}
}

func TestSystemNamespacesAreExcludedUnlessCleared(t *testing.T) {
	want := mirror.Patterns{"kube-system", "kube-public", "kube-node-lease"}
	if got := mustParse(t, nil, nil).Policy.ExcludedNamespaces; !reflect.DeepEqual(got, want) {
		t.Errorf("default exclusions %v, want %v", got, want)
	}
	if got := mustParse(t, []string{"--exclude-namespaces="}, nil).Policy.ExcludedNamespaces; len(got) != 0 {
		t.Errorf("--exclude-namespaces= leaves %v excluded, want none", got)
	}
	if got := mustParse(t, nil, map[string]string{"WHISPERER_EXCLUDE_NAMESPACES": ""}).Policy.ExcludedNamespaces; len(got) != 0 {
		t.Errorf("WHISPERER_EXCLUDE_NAMESPACES= leaves %v excluded, want none", got)
	}
}

func TestReadmeListsEveryVariable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range flagNames(t) {
		if !strings.Contains(string(readme), "`"+EnvName(name)+"`") {
			t.Errorf("README.md does not list %s (--%s)", EnvName(name), name)
		}
	}
}

func TestResources(t *testing.T) {
	if o := mustParse(t, nil, nil); !slices.Equal(o.Kinds, []controllers.Kind{controllers.Secrets, controllers.ConfigMaps}) || !o.AttachServiceAccounts {
		t.Errorf("default kinds %v, attach %v; want Secrets and ConfigMaps, and ServiceAccounts attached", o.Kinds, o.AttachServiceAccounts)
	}
	if o := mustParse(t, []string{"--resources=secrets"}, nil); !slices.Equal(o.Kinds, []controllers.Kind{controllers.Secrets}) || o.AttachServiceAccounts {
		t.Errorf("--resources=secrets: kinds %v, attach %v; want Secrets alone", o.Kinds, o.AttachServiceAccounts)
	}
	if o := mustParse(t, []string{"--resources=serviceaccounts,secrets"}, nil); !o.AttachServiceAccounts {
		t.Error("--resources=serviceaccounts,secrets: ServiceAccounts not attached")
	}
	if got := mustParse(t, nil, map[string]string{"WHISPERER_RESOURCES": " configmaps , configmaps "}).Kinds; !slices.Equal(got, []controllers.Kind{controllers.ConfigMaps}) {
		t.Errorf("WHISPERER_RESOURCES=configmaps: kinds %v, want ConfigMaps alone", got)
	}
	for _, bad := range []string{"", " , ", "pods", "configmaps,serviceaccounts"} {
		if _, err := Parse([]string{"--resources=" + bad}, noEnv, io.Discard); err == nil {
			t.Errorf("--resources=%q accepted", bad)
		}
	}
}
