// Command bench measures whisperer at scale against the machine's real limit. For each size N
// it starts a plain local control plane, creates N namespaces, and for each kind of source
// (Secret, ConfigMap), in each of --rounds rounds, times plain client-go writers making the
// writes whisperer makes (create, update, delete one object per namespace) at several
// concurrencies, then the real whisperer binary, run with its defaults, doing them through a
// source with a glob; each phase's ratio is whisperer's median time over the fastest writer's.
// Both are timed the same way, from the first write until a protobuf watch of the benchmark's
// has seen every write. Then it times what costs nothing (resync, restart), what a new namespace
// waits, a pull secret attached to every namespace's default ServiceAccount, and 20 sources that
// select every namespace, against the raw writer making the same writes. The operator's writes
// come from the API server's request counters, its memory and the CPU time of every process
// from /proc, its Go heap from its metrics. `make bench` runs it; see docs/performance.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// settings are the command-line flags shared by every run.
type settings struct {
	assets, binary, workDir string
	secretSize              int
	// rawConcurrency lists the raw writer's concurrencies; the fastest is the baseline.
	rawConcurrency []int
	// rawWatching is the concurrency of a raw writer that watches its own writes, measured
	// besides the baseline; 0 for none.
	rawWatching  int
	operatorArgs []string
	// rounds is how many times create, update and delete are measured, for the raw writer and
	// for whisperer; the table shows the medians.
	rounds int
	// newNamespaces is how many namespaces the new namespace phases create.
	newNamespaces int
	// kinds are the kinds of sources measured (--kinds), in create, update and delete phases
	// against the raw writer and in the fan-out phases.
	kinds []kind
	// serviceAccounts runs the phases of a pull secret attached to ServiceAccounts (--kinds
	// serviceaccounts), at each size without unrelated objects.
	serviceAccounts bool
	// fanoutSources is how many sources of each kind select every namespace in the fan-out
	// phases, at each size without unrelated Secrets; 0 skips them.
	fanoutSources int
}

func main() {
	// envtest, which starts each control plane, logs through controller-runtime; without a
	// logger, controller-runtime prints a stack trace about it from the second size on.
	ctrllog.SetLogger(logr.Discard())
	var (
		s        settings
		sizes    = flag.String("sizes", "100,1000", "Comma-separated numbers of namespaces, for example 100,1000,5000,10000.")
		rawConc  = flag.String("raw-concurrency", "8,16,32,64", "Comma-separated concurrencies of the raw writer; the fastest is the baseline.")
		kindList = flag.String("kinds", "secrets,configmaps,serviceaccounts", "Comma-separated kinds of sources measured, in turn, against the raw writer, "+
			"and in the fan-out phases: secrets, configmaps; and serviceaccounts, a pull secret attached to the default ServiceAccount of every namespace.")
		unrelated  unrelatedObjects
		jsonPath   = flag.String("json", ".local/bench/results.json", "Where to write the results as JSON.")
		extraFlags = flag.String("operator-flags", "", "Flags for whisperer besides its defaults, space-separated.")
		tracking   = flag.Bool("compare-tracking", false, "Instead of the benchmark, compare two ways of tracking the labels "+
			"copied to mirrors (a record annotation, server-side apply) at the first of --sizes, in --rounds rounds.")
		clients = flag.Bool("compare-clients", false, "Instead of the benchmark, compare the writer's CPU per write through controller-runtime's "+
			"client (whisperer's) and client-go's REST client (the raw writer's) at the first of --sizes, in --rounds rounds.")
	)
	flag.IntVar(&unrelated.Secrets, "unrelated-secrets", 10000, "Unrelated 4 KiB Secrets in the memory isolation run at the largest size.")
	flag.IntVar(&unrelated.ConfigMaps, "unrelated-configmaps", 10000, "Unrelated 4 KiB ConfigMaps in the memory isolation run.")
	flag.IntVar(&unrelated.ServiceAccounts, "unrelated-service-accounts", 10000, "Unrelated ServiceAccounts in the memory isolation run; "+
		"with all three --unrelated-* at 0, there is no such run.")
	flag.StringVar(&s.assets, "assets", os.Getenv("KUBEBUILDER_ASSETS"), "Folder holding etcd, kube-apiserver and kube-controller-manager.")
	flag.StringVar(&s.binary, "operator", "bin/whisperer", "The whisperer binary.")
	flag.StringVar(&s.workDir, "work-dir", ".local/bench", "Where the logs go.")
	flag.IntVar(&s.secretSize, "secret-size", 1024, "Bytes of data in each source, and in each raw object.")
	flag.IntVar(&s.rounds, "rounds", 5, "Rounds of create, update and delete, for the raw writer and for whisperer; the table shows the medians.")
	flag.IntVar(&s.newNamespaces, "new-namespaces", 100, "Namespaces created one by one in each new namespace phase (at least 50).")
	flag.IntVar(&s.rawWatching, "raw-watching", 0, "Also time, in each round, a raw writer at this concurrency that watches its own "+
		"objects as a controller does (a metadata informer), to show what that watch costs; not a baseline. 0 skips it.")
	flag.IntVar(&s.fanoutSources, "fanout-sources", 10, `Sources of each of --kinds with namespaces "*" in the fan-out phases; 0 skips them.`)
	flag.Parse()
	var err error
	if s.rawConcurrency, err = positiveInts(*rawConc); err != nil {
		err = fmt.Errorf("--raw-concurrency: %w", err)
	}
	if err == nil {
		if s.kinds, s.serviceAccounts, err = parseKinds(*kindList); err != nil {
			err = fmt.Errorf("--kinds: %w", err)
		}
	}
	switch {
	case err != nil:
	case s.rounds < 1:
		err = fmt.Errorf("--rounds must be at least 1")
	case s.newNamespaces < 1:
		err = fmt.Errorf("--new-namespaces must be at least 1")
	case s.rawWatching < 0:
		err = fmt.Errorf("--raw-watching must be 0 or more")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	s.operatorArgs = strings.Fields(*extraFlags)
	if *clients {
		if err := compareAtFirstSize(s, *sizes, compareClients); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *tracking {
		if err := compareAtFirstSize(s, *sizes, compareTracking); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}

	if err := benchmark(s, *sizes, unrelated, *jsonPath); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func positiveInts(list string) ([]int, error) {
	var out []int
	for _, field := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", field)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseKinds parses --kinds: the kinds of sources, and whether it names serviceaccounts.
func parseKinds(list string) ([]kind, bool, error) {
	var out []kind
	serviceAccounts := false
	for _, field := range strings.Split(list, ",") {
		field = strings.TrimSpace(field)
		k, ok := kinds[field]
		switch {
		case field == serviceAccountKind.resource && !serviceAccounts:
			serviceAccounts = true
			continue
		case !ok:
			return nil, false, fmt.Errorf("%q is not one of secrets, configmaps, serviceaccounts, or is given twice", field)
		case slices.ContainsFunc(out, func(o kind) bool { return o.name == k.name }):
			return nil, false, fmt.Errorf("%q is given twice", field)
		}
		out = append(out, k)
	}
	switch {
	case len(out) == 0:
		return nil, false, fmt.Errorf("no kind of source: name secrets, configmaps or both")
	case serviceAccounts && !slices.ContainsFunc(out, func(k kind) bool { return k.name == secretKind.name }):
		return nil, false, fmt.Errorf("serviceaccounts attaches a pull secret: it needs secrets too")
	}
	return out, serviceAccounts, nil
}

func benchmark(s settings, sizes string, unrelated unrelatedObjects, jsonPath string) error {
	ns, err := positiveInts(sizes)
	if err != nil {
		return fmt.Errorf("--sizes: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Hour)
	defer cancel()
	var rows []row
	runs := make([]*run, 0, len(ns)+1)
	var fanout []fanoutGroup
	if s.fanoutSources > 0 {
		for _, k := range s.kinds {
			fanout = append(fanout, fanoutGroup{k, s.fanoutSources})
		}
	}
	for _, n := range ns {
		runs = append(runs, &run{settings: s, n: n, kinds: s.kinds, fanout: fanout})
	}
	if unrelated.any() {
		runs = append(runs, &run{settings: s, n: ns[len(ns)-1], kinds: s.kinds, unrelated: unrelated})
	}
	failed := false
	for _, r := range runs {
		fmt.Printf("N=%d, unrelated objects: %s\n", r.n, r.unrelated)
		err := r.execute(ctx)
		rows = append(rows, r.rows...)
		if err != nil {
			return fmt.Errorf("size N=%d: %w", r.n, err)
		}
	}
	compareUnrelated(rows)
	tableErr := printTable(rows)
	printWatching(rows)
	printIsolation(rows)
	for _, r := range rows {
		if !r.AsExpected {
			failed = true
			fmt.Printf("%s at N=%d: the operator wrote %s; expected %s\n", r.Phase, r.N, r.Writes, r.Expected)
		}
		for _, raw := range r.rawConcurrencies() {
			if len(raw.OtherWrites) > 0 {
				failed = true
				fmt.Printf("raw %s at N=%d, %d at once: the API server counted writes besides the raw writer's: %s\n",
					r.Phase, r.N, raw.Concurrency, raw.OtherWrites)
			}
		}
	}
	// Both, even when one fails: the results took the whole run to get.
	if err := errors.Join(tableErr, writeJSON(jsonPath, s, rows)); err != nil {
		return err
	}
	if failed {
		return fmt.Errorf("some phases' writes were not as expected")
	}
	return nil
}

func printTable(rows []row) error {
	table := []string{"phase\tN\ttime (s)\tp99 (s)\traw (s)\traw at\tratio\toperator writes\t" +
		"operator CPU (s)\tper 1k writes\tapiserver CPU (s)\t(raw)\tetcd CPU (s)\t(raw)\t" +
		"peak anon (MiB)\theap in use (MiB)\tVmHWM (MiB)\t\n"}
	for _, r := range rows {
		p99, raw, at, ratio, rawServer, rawEtcd, perK := "", "", "", "", "", "", ""
		if r.P99Seconds > 0 {
			p99 = fmt.Sprintf("%.3f", r.P99Seconds)
		}
		if r.Raw != nil {
			raw, at, ratio = fmt.Sprintf("%.3f", r.Raw.Seconds), strconv.Itoa(r.Raw.Concurrency), fmt.Sprintf("%.2f", r.Ratio)
			rawServer, rawEtcd = fmt.Sprintf("%.2f", r.Raw.CPU.APIServer), fmt.Sprintf("%.2f", r.Raw.CPU.Etcd)
		}
		if r.Operator.CPUPer1000Writes > 0 {
			perK = fmt.Sprintf("%.2f", r.Operator.CPUPer1000Writes)
		}
		writes := r.Writes.String()
		if !r.AsExpected {
			writes += " (!)"
		}
		anon := fmt.Sprintf("%.1f", r.Operator.PeakAnonMiB)
		if r.PeakAnonOverBaseMiB != nil {
			anon += fmt.Sprintf(" (%+.1f)", *r.PeakAnonOverBaseMiB)
		}
		table = append(table, fmt.Sprintf("%s\t%d\t%.3f\t%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\t%s\t%.1f\t%.1f\t\n",
			r.Phase, r.N, r.Seconds, p99, raw, at, ratio, writes, r.Operator.CPUSeconds, perK,
			r.CPU.APIServer, rawServer, r.CPU.Etcd, rawEtcd, anon, r.Operator.HeapInUseMiB, r.Operator.VmHWMMiB))
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if _, err := io.WriteString(w, strings.Join(table, "")); err != nil {
		return err
	}
	return w.Flush()
}

// printWatching compares, for each phase measured with --raw-watching, whisperer with the raw
// writer that watches its own writes: what is left of the ratio once the watch is paid for.
func printWatching(rows []row) {
	for _, r := range rows {
		if r.Raw == nil || r.Raw.Watching == nil {
			continue
		}
		watching := r.Raw.Watching
		fmt.Printf("%s at N=%d: the raw writer at %d watching its writes took %.3f s, %.2f times the fastest raw; "+
			"whisperer %.2f times it (apiserver CPU %.2f s, etcd %.2f s)\n", r.Phase, r.N, watching.Concurrency, watching.Seconds,
			watching.Seconds/r.Raw.Seconds, r.Seconds/watching.Seconds, watching.CPU.APIServer, watching.CPU.Etcd)
	}
}

// isolationTarget is the most whisperer's peak anonymous memory may grow by with unrelated
// Secrets and ConfigMaps in the cluster.
const isolationTarget = 2.0 // MiB

// compareUnrelated gives each row of a run with unrelated objects the difference of its peak
// anonymous memory from that of the same phase at the same size without them.
func compareUnrelated(rows []row) {
	for i, r := range rows {
		if r.Unrelated == nil {
			continue
		}
		for _, base := range rows {
			if base.Unrelated == nil && base.N == r.N && base.phase == r.phase {
				over := r.Operator.PeakAnonMiB - base.Operator.PeakAnonMiB
				rows[i].PeakAnonOverBaseMiB = &over
			}
		}
	}
}

// printIsolation says how much more anonymous memory whisperer used at most with the unrelated
// objects than without, against the target.
func printIsolation(rows []row) {
	var most *row
	for i, r := range rows {
		if r.PeakAnonOverBaseMiB != nil && (most == nil || *r.PeakAnonOverBaseMiB > *most.PeakAnonOverBaseMiB) {
			most = &rows[i]
		}
	}
	if most == nil {
		return
	}
	if most.Unrelated.ServiceAccounts > 0 {
		// whisperer caches ServiceAccounts, which it may attach pull secrets to: they cost memory by
		// design, and the target does not apply to them.
		fmt.Printf("With unrelated %s at N=%d, the peak anonymous memory grew by at most %+.1f MiB (%s); "+
			"the target of +%.0f MiB is for Secrets and ConfigMaps alone (--unrelated-service-accounts 0).\n",
			most.Unrelated, most.N, *most.PeakAnonOverBaseMiB, most.phase, isolationTarget)
		return
	}
	verdict := "within"
	if *most.PeakAnonOverBaseMiB >= isolationTarget {
		verdict = "over"
	}
	fmt.Printf("With unrelated %s at N=%d, the peak anonymous memory grew by at most %+.1f MiB (%s), %s the target of +%.0f MiB.\n",
		most.Unrelated, most.N, *most.PeakAnonOverBaseMiB, most.phase, verdict, isolationTarget)
}

func writeJSON(path string, s settings, rows []row) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	out, err := json.MarshalIndent(map[string]any{
		"secretSize": s.secretSize, "rawConcurrency": s.rawConcurrency, "rawWatching": s.rawWatching, "rounds": s.rounds,
		"kinds":         mapped(s.kinds, func(k kind) string { return k.resource }),
		"newNamespaces": s.newNamespaces, "fanoutSources": s.fanoutSources,
		"operatorArgs": s.operatorArgs, "rows": rows,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// compareAtFirstSize runs one of the comparisons (--compare-*) at the first of sizes.
func compareAtFirstSize(s settings, sizes string, compare func(ctx context.Context, s settings, n int) error) error {
	ns, err := positiveInts(sizes)
	if err != nil {
		return fmt.Errorf("--sizes: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	return compare(ctx, s, ns[0])
}

// startComparison starts a control plane of its own for a comparison named name, logging under
// the work directory, with n target namespaces; the caller stops it.
func startComparison(ctx context.Context, s settings, n int, name string) (*run, []string, error) {
	cluster, err := startCluster(s.assets, filepath.Join(s.workDir, fmt.Sprintf("%s-n%d", name, n)))
	if err != nil {
		return nil, nil, err
	}
	r := &run{settings: s, n: n, cluster: cluster}
	namespaces := namespaceNames(targetPrefix, n)
	if err := r.createNamespaces(ctx, namespaces); err != nil {
		return nil, nil, errors.Join(err, cluster.stop())
	}
	return r, namespaces, nil
}
