// Command bench measures whisperer at scale against the API server's own speed. For each size N
// it starts a local control plane, pre-creates N namespaces, and in each of --rounds rounds times
// a plain client-go program making the writes whisperer makes (create, update, delete one Secret
// per namespace), then the real whisperer binary doing them through a source with a glob (the
// medians go in the table: one round of a few seconds on a shared machine says little). Both are
// timed the same way, until a watch of the benchmark's sees every write, and both are recorded in
// the API server's audit log. Then it times what costs nothing (resync, restart) and what a new
// namespace waits. The operator's writes come from the audit log; its peak RSS and the CPU time
// of every process from /proc. `make bench` runs it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
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
	concurrency             int
	qps                     float64
	burst                   int
	operatorArgs            []string
	// rounds is how many times create, update and delete are measured, for the raw client and
	// for whisperer; the table shows the medians.
	rounds int
}

func main() {
	// envtest, which starts each control plane, logs through controller-runtime; without a
	// logger, controller-runtime prints a stack trace about it from the second size on.
	ctrllog.SetLogger(logr.Discard())
	var (
		s          settings
		sizes      = flag.String("sizes", "100,1000", "Comma-separated numbers of namespaces, for example 100,1000,5000,10000.")
		unrelated  = flag.Int("unrelated-secrets", 10000, "Unrelated 4 KiB Secrets for the memory isolation run at the largest size; 0 skips that run.")
		jsonPath   = flag.String("json", ".local/bench/results.json", "Where to write the results as JSON.")
		extraFlags = flag.String("operator-flags", "", "More flags for whisperer, space-separated.")
	)
	flag.StringVar(&s.assets, "assets", os.Getenv("KUBEBUILDER_ASSETS"), "Folder holding etcd and kube-apiserver.")
	flag.StringVar(&s.binary, "operator", "bin/whisperer", "The whisperer binary.")
	flag.StringVar(&s.workDir, "work-dir", ".local/bench", "Where logs and audit logs go.")
	flag.IntVar(&s.secretSize, "secret-size", 1024, "Bytes of data in the source, and in each raw Secret.")
	flag.IntVar(&s.concurrency, "concurrency", 16, "Writes at once, for whisperer (--mirror-write-concurrency) and the raw client.")
	flag.Float64Var(&s.qps, "qps", 1000, "Client QPS, for whisperer (--kube-api-qps) and the raw client.")
	flag.IntVar(&s.burst, "burst", 2000, "Client burst, for whisperer (--kube-api-burst) and the raw client.")
	flag.IntVar(&s.rounds, "rounds", 5, "Rounds of create, update and delete, for the raw client and for whisperer; the table shows the medians.")
	flag.Parse()
	if s.rounds < 1 {
		fmt.Fprintln(os.Stderr, "bench: --rounds must be at least 1")
		os.Exit(2)
	}
	s.operatorArgs = append([]string{
		"--mirror-write-concurrency=" + strconv.Itoa(s.concurrency),
		"--kube-api-qps=" + strconv.FormatFloat(s.qps, 'f', -1, 64),
		"--kube-api-burst=" + strconv.Itoa(s.burst),
	}, strings.Fields(*extraFlags)...)

	if err := benchmark(s, *sizes, *unrelated, *jsonPath); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func benchmark(s settings, sizes string, unrelated int, jsonPath string) error {
	var ns []int
	for _, field := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n <= 0 {
			return fmt.Errorf("--sizes: %q is not a positive number", field)
		}
		ns = append(ns, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Hour)
	defer cancel()
	var rows []row
	runs := make([]*run, 0, len(ns)+1)
	for _, n := range ns {
		runs = append(runs, &run{settings: s, n: n})
	}
	if unrelated > 0 {
		runs = append(runs, &run{settings: s, n: ns[len(ns)-1], unrelated: unrelated})
	}
	for _, r := range runs {
		fmt.Printf("N=%d, unrelated Secrets=%d\n", r.n, r.unrelated)
		err := r.execute(ctx)
		rows = append(rows, r.rows...)
		if err != nil {
			return fmt.Errorf("N=%d: %w", r.n, err)
		}
	}
	printTable(rows)
	return writeJSON(jsonPath, s, rows)
}

func printTable(rows []row) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "phase\tN\ttime (s)\traw (s)\tratio\tSecret writes\tother writes\treconciles\tpeak RSS (MiB)\t"+
		"CPU (s)\tserver CPU (s)\traw server CPU (s)\t")
	for _, r := range rows {
		raw, ratio, rawServer := "", "", ""
		if r.RawCPU != nil {
			raw, ratio = fmt.Sprintf("%.3f", r.RawSeconds), fmt.Sprintf("%.2f", r.Ratio)
			rawServer = fmt.Sprintf("%.1f", r.RawCPU.server())
		}
		fmt.Fprintf(w, "%s\t%d\t%.3f\t%s\t%s\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%s\t\n", r.Phase, r.N, r.Seconds, raw, ratio,
			r.SecretWrites, r.OtherWrites, r.Reconciles, r.PeakRSSMiB, r.CPUSeconds, r.CPU.server(), rawServer)
	}
	w.Flush()
}

func writeJSON(path string, s settings, rows []row) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	out, err := json.MarshalIndent(map[string]any{
		"secretSize": s.secretSize, "concurrency": s.concurrency, "qps": s.qps, "burst": s.burst,
		"operatorArgs": s.operatorArgs, "rows": rows,
	}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}
