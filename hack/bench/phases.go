package main

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	sourceNamespace      = "source"
	sourceName           = "pull"
	targetPrefix         = "bench-"
	latePrefix           = "late-"
	annotationNamespaces = "secret-syncer.jeffl.es/namespaces"
	versionKey           = "version"
)

// row is one line of the results table.
type row struct {
	Phase string `json:"phase"`
	N     int    `json:"n"`
	// Seconds is the operator's time; for "new namespace", the median over the namespaces.
	Seconds float64 `json:"seconds"`
	// RawSeconds is the same writes made directly with client-go, 0 where there is none.
	RawSeconds float64 `json:"rawSeconds,omitempty"`
	Ratio      float64 `json:"ratio,omitempty"`
	// RoundSeconds and RawRoundSeconds are each round's times of a repeated phase; Seconds and
	// RawSeconds are their medians.
	RoundSeconds    []float64 `json:"roundSeconds,omitempty"`
	RawRoundSeconds []float64 `json:"rawRoundSeconds,omitempty"`
	// SecretWrites and OtherWrites are the operator's write requests in the phase (audit log).
	SecretWrites int `json:"secretWrites"`
	OtherWrites  int `json:"otherWrites"`
	Reconciles   int `json:"reconciles"`
	usage
	// CPU is what the other processes spent until the phase's result was seen, RawCPU the same
	// for the raw client's phase.
	CPU    cpuSplit  `json:"cpu"`
	RawCPU *cpuSplit `json:"rawCPU,omitempty"`
}

// run is one benchmark run: one size, with or without unrelated Secrets.
type run struct {
	settings
	n         int
	unrelated int
	cluster   *benchCluster
	client    kubernetes.Interface // the benchmark's own, admin
	raw       kubernetes.Interface // with the operator's client settings
	mirrors   *secretObserver
	op        *operator
	rows      []row
}

func (r *run) label(phase string) string {
	if r.unrelated > 0 {
		return fmt.Sprintf("%s (+%d unrelated Secrets)", phase, r.unrelated)
	}
	return phase
}

func (r *run) execute(ctx context.Context) error {
	dir := filepath.Join(r.workDir, fmt.Sprintf("n%d-u%d", r.n, r.unrelated))
	cluster, err := startCluster(r.assets, dir)
	if err != nil {
		return err
	}
	defer cluster.Stop()
	r.cluster = cluster
	admin := rest.CopyConfig(cluster.Config)
	admin.QPS, admin.Burst = -1, 0
	r.client = kubernetes.NewForConfigOrDie(admin)
	rawConfig := rest.CopyConfig(cluster.raw)
	// As controller-runtime's client, which whisperer uses, sends built-in types.
	rawConfig.ContentType = runtime.ContentTypeProtobuf
	rawConfig.QPS, rawConfig.Burst = float32(r.qps), r.burst
	r.raw = kubernetes.NewForConfigOrDie(rawConfig)
	// The observers watch in protobuf, as whisperer's informers do: the API server encodes each
	// watch event once per format, so whisperer and an observer share one encoding, and an
	// observer in JSON would cost the API server a second encoding in whisperer's phases only.
	watchConfig := rest.CopyConfig(admin)
	watchConfig.ContentType = runtime.ContentTypeProtobuf
	watcher := kubernetes.NewForConfigOrDie(watchConfig)

	targets := namespaceNames(targetPrefix, r.n)
	if err := r.createNamespaces(ctx, append(targets, sourceNamespace)); err != nil {
		return err
	}
	var rawWrites *rawWriter
	if r.unrelated == 0 {
		rawWrites = &rawWriter{run: r, namespaces: targets}
		if rawWrites.observer, err = observeSecrets(watcher, rawLabelPrefix+"/namespace=raw"); err != nil {
			return err
		}
		defer rawWrites.observer.close()
	} else if err := r.createUnrelated(ctx); err != nil {
		return err
	}
	if r.mirrors, err = observeSecrets(watcher, "secret-syncer.jeffl.es/namespace="+sourceNamespace); err != nil {
		return err
	}
	defer r.mirrors.close()
	return r.operatorPhases(ctx, filepath.Join(dir, "whisperer.log"), rawWrites)
}

// operatorPhases measures the operator on the same writes as the raw client, in as many rounds,
// then what costs nothing (resync, restart) and what a new namespace waits. Unless raw is nil,
// each round of the operator follows a round of the raw client: both then see the same machine
// and an etcd of the same history, however either drifts during the run.
func (r *run) operatorPhases(ctx context.Context, logPath string, raw *rawWriter) error {
	var err error
	if r.op, err = startOperator(r.binary, r.cluster.kubeconfig, logPath, r.operatorArgs); err != nil {
		return err
	}
	defer func() { r.op.stop() }()

	type step struct {
		phase string
		act   func(context.Context) (time.Duration, error)
	}
	create, update, remove := step{"create", r.createSource}, step{"update", r.updateSource}, step{"delete", r.deleteSource}
	var steps []step
	for range r.rounds - 1 {
		steps = append(steps, create, update, remove)
	}
	steps = append(steps, create, update,
		step{"resync (source touched)", r.touchSource},
		step{"restart", r.restartOperator},
		step{"new namespace (median of 50)", r.newNamespaces},
		remove)
	rounds := map[string][]row{}
	rawRounds := map[string][]rawPhase{}
	for _, step := range steps {
		if raw != nil && step.phase == create.phase {
			if err := raw.round(ctx, rawRounds); err != nil {
				return err
			}
		}
		measured, err := r.measure(ctx, step.phase, step.act)
		if err != nil {
			return fmt.Errorf("%s: %w", step.phase, err)
		}
		rounds[step.phase] = append(rounds[step.phase], measured)
	}
	for _, step := range steps[3*(r.rounds-1):] {
		r.rows = append(r.rows, merge(rounds[step.phase], rawRounds[step.phase]))
	}
	return nil
}

// merge makes one row of a phase's rounds: the median times, ratio and CPU time, the most writes
// and reconciles of any round (they should all be equal), and the operator's peak RSS so far.
func merge(rounds []row, raw []rawPhase) row {
	merged := rounds[len(rounds)-1]
	merged.RoundSeconds = mapped(rounds, func(r row) float64 { return r.Seconds })
	for _, round := range rounds {
		merged.SecretWrites = max(merged.SecretWrites, round.SecretWrites)
		merged.OtherWrites = max(merged.OtherWrites, round.OtherWrites)
		merged.Reconciles = max(merged.Reconciles, round.Reconciles)
	}
	merged.Seconds = median(merged.RoundSeconds)
	merged.CPUSeconds = median(mapped(rounds, func(r row) float64 { return r.CPUSeconds }))
	merged.CPU = medianSplit(mapped(rounds, func(r row) cpuSplit { return r.CPU }))
	if len(raw) > 0 {
		merged.RawRoundSeconds = mapped(raw, func(p rawPhase) float64 { return p.took.Seconds() })
		merged.RawSeconds = median(merged.RawRoundSeconds)
		merged.Ratio = merged.Seconds / merged.RawSeconds
		rawCPU := medianSplit(mapped(raw, func(p rawPhase) cpuSplit { return p.cpu }))
		merged.RawCPU = &rawCPU
	}
	if len(rounds) == 1 {
		merged.RoundSeconds, merged.RawRoundSeconds = nil, nil
	}
	return merged
}

func mapped[T, V any](items []T, value func(T) V) []V {
	values := make([]V, len(items))
	for i, item := range items {
		values[i] = value(item)
	}
	return values
}

func medianSplit(splits []cpuSplit) cpuSplit {
	return cpuSplit{
		APIServer: median(mapped(splits, func(c cpuSplit) float64 { return c.APIServer })),
		Etcd:      median(mapped(splits, func(c cpuSplit) float64 { return c.Etcd })),
		Bench:     median(mapped(splits, func(c cpuSplit) float64 { return c.Bench })),
	}
}

func median(values []float64) float64 {
	sorted := slices.Sorted(slices.Values(values))
	if n := len(sorted); n%2 == 0 {
		return (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return sorted[len(sorted)/2]
}

// measure runs one phase and returns its time, writes, reconciles and the operator's usage.
func (r *run) measure(ctx context.Context, phase string, act func(context.Context) (time.Duration, error)) (row, error) {
	writesBefore, err := r.cluster.operatorWrites()
	if err != nil {
		return row{}, err
	}
	op := r.op
	reconcilesBefore, err := op.reconciles(ctx)
	if err != nil {
		return row{}, err
	}
	usageBefore, err := op.usage()
	if err != nil {
		return row{}, err
	}
	if err := r.settle(ctx); err != nil {
		return row{}, err
	}
	cpuBefore := controlPlaneCPU()
	took, err := act(ctx)
	if err != nil {
		return row{}, err
	}
	cpu := controlPlaneCPU().minus(cpuBefore)
	if r.op != op {
		// A new operator process counts from zero.
		reconcilesBefore, usageBefore = 0, usage{}
	}
	// Writes that trail the observed result (Events) belong to the phase too.
	reconciles, err := r.op.waitIdle(ctx, reconcilesBefore, time.Second)
	if err != nil {
		return row{}, err
	}
	writesAfter, err := r.cluster.operatorWrites()
	if err != nil {
		return row{}, err
	}
	u, err := r.op.usage()
	if err != nil {
		return row{}, err
	}
	u.CPUSeconds -= usageBefore.CPUSeconds
	writes := writesAfter.minus(writesBefore)
	if writes.total() < 0 {
		return row{}, fmt.Errorf("the audit log shrank during the phase: %s", r.cluster.auditLog)
	}
	secretWrites := writes["secrets"]
	result := row{Phase: r.label(phase), N: r.n, Seconds: took.Seconds(), SecretWrites: secretWrites,
		OtherWrites: writes.total() - secretWrites, Reconciles: int(reconciles), usage: u, CPU: cpu}
	fmt.Printf("  %-45s %8.3fs  writes %d+%d\n", result.Phase, result.Seconds, result.SecretWrites, result.OtherWrites)
	return result, nil
}

// settle waits until the API server and etcd together use less than quietCPU in a quietWindow,
// for at most settleLimit.
const (
	quietWindow = 100 * time.Millisecond
	quietCPU    = 0.02 // seconds: a fifth of a core
	settleLimit = 5 * time.Second
)

// settle readies the control plane for a timed phase, the same way before the raw client's and
// the operator's: it waits until the API server and etcd have finished the previous phase's work,
// then has the API server collect its garbage, so that no phase starts with another's collection
// debt. In profiles of an earlier run at N=1000, the API server's collections used 0.2 to 1.7 s
// of CPU in phases of the same kind, depending on where they fell. Go's testing package collects
// before each benchmark for the same reason.
func (r *run) settle(ctx context.Context) error {
	deadline := time.Now().Add(settleLimit)
	for before := controlPlaneCPU(); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(quietWindow):
		}
		now := controlPlaneCPU()
		if now.minus(before).server() < quietCPU {
			break
		}
		before = now
	}
	// net/http/pprof runs a collection before it writes a heap profile when asked with gc=1.
	_, err := r.client.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/heap").Param("gc", "1").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("collecting the API server's garbage: %w", err)
	}
	return nil
}

func (r *run) createSource(ctx context.Context) (time.Duration, error) {
	source := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: sourceName, Namespace: sourceNamespace,
			Labels:      map[string]string{"secret-syncer.jeffl.es/sync": "true"},
			Annotations: map[string]string{annotationNamespaces: targetPrefix + "*," + latePrefix + "*"},
		},
		Data: payload(r.secretSize, "v1"),
	}
	start := time.Now()
	if _, err := r.client.CoreV1().Secrets(sourceNamespace).Create(ctx, source, metav1.CreateOptions{}); err != nil {
		return 0, err
	}
	return waitFor(ctx, start, "every mirror", func() bool { return r.mirrors.count("v1") == r.n })
}

func (r *run) updateSource(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if err := r.patchSource(ctx, fmt.Sprintf(`{"data":{%q:%q}}`, versionKey, "djI=")); err != nil { // v2
		return 0, err
	}
	return waitFor(ctx, start, "every mirror updated", func() bool { return r.mirrors.count("v2") == r.n })
}

// touchSource changes nothing the operator reads: the reconcile it causes must write nothing.
func (r *run) touchSource(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	return time.Since(start), r.patchSource(ctx, `{"metadata":{"annotations":{"bench/touched":"yes"}}}`)
}

func (r *run) patchSource(ctx context.Context, patch string) error {
	_, err := r.client.CoreV1().Secrets(sourceNamespace).Patch(ctx, sourceName, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// restartOperator stops the operator and starts a new one on the converged cluster; its time is
// until the new one's workers run.
func (r *run) restartOperator(context.Context) (time.Duration, error) {
	r.op.stop()
	start := time.Now()
	op, err := startOperator(r.binary, r.cluster.kubeconfig, r.op.logPath, r.operatorArgs)
	if err != nil {
		return 0, err
	}
	r.op = op
	return time.Since(start), nil
}

// newNamespaces creates 50 matching namespaces one by one and returns the median time until
// each has its mirror. It then takes them out of the annotation again (not timed), so that the
// delete phase deletes as many mirrors as the raw client did.
func (r *run) newNamespaces(ctx context.Context) (time.Duration, error) {
	var times []time.Duration
	for i := range 50 {
		name := fmt.Sprintf("%s%02d", latePrefix, i)
		start := time.Now()
		if err := r.createNamespaces(ctx, []string{name}); err != nil {
			return 0, err
		}
		took, err := waitFor(ctx, start, "mirror in "+name, func() bool { return r.mirrors.has(name, "v2") })
		if err != nil {
			return 0, err
		}
		times = append(times, took)
	}
	slices.Sort(times)
	if err := r.patchSource(ctx, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, annotationNamespaces, targetPrefix+"*")); err != nil {
		return 0, err
	}
	_, err := waitFor(ctx, time.Now(), "late mirrors removed", func() bool { return r.mirrors.total() == r.n })
	return times[len(times)/2], err
}

func (r *run) deleteSource(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if err := r.client.CoreV1().Secrets(sourceNamespace).Delete(ctx, sourceName, metav1.DeleteOptions{}); err != nil {
		return 0, err
	}
	return waitFor(ctx, start, "every mirror deleted", func() bool { return r.mirrors.total() == 0 })
}

// rawLabelPrefix stands for secret-syncer.jeffl.es in the raw client's Secrets: labels of the
// same sizes as a mirror's, which whisperer, running meanwhile, does not take for mirrors.
const rawLabelPrefix = "secret-syncer.bench.es"

// rawWriter makes the operator's writes directly: one Secret of the same size and label sizes in
// each namespace, created, updated, deleted, with the same client settings and concurrency.
type rawWriter struct {
	*run
	namespaces []string
	observer   *secretObserver
}

// rawPhase is one phase of a raw round: its time, and what the other processes spent meanwhile.
type rawPhase struct {
	took time.Duration
	cpu  cpuSplit
}

// round makes one round of the writes and appends each phase's measures to phases. A phase ends
// when its observer has seen every write, as whisperer's phases end.
func (w *rawWriter) round(ctx context.Context, phases map[string][]rawPhase) error {
	n := len(w.namespaces)
	secrets := make([]*corev1.Secret, n)
	writes := []struct {
		name  string
		write func(i int) error
		seen  func() bool
	}{
		{"create", func(i int) (err error) {
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "raw", Namespace: w.namespaces[i], Labels: map[string]string{
					rawLabelPrefix + "/mirror": "true", rawLabelPrefix + "/name": "raw", rawLabelPrefix + "/namespace": "raw"}},
				Data: payload(w.secretSize, "v1"),
			}
			secrets[i], err = w.raw.CoreV1().Secrets(w.namespaces[i]).Create(ctx, s, metav1.CreateOptions{})
			return err
		}, func() bool { return w.observer.count("v1") == n }},
		{"update", func(i int) (err error) {
			secrets[i].Data = payload(w.secretSize, "v2")
			secrets[i], err = w.raw.CoreV1().Secrets(w.namespaces[i]).Update(ctx, secrets[i], metav1.UpdateOptions{})
			return err
		}, func() bool { return w.observer.count("v2") == n }},
		{"delete", func(i int) error {
			// On the condition that it is the Secret written, as whisperer deletes a mirror.
			precondition := &metav1.Preconditions{UID: &secrets[i].UID, ResourceVersion: &secrets[i].ResourceVersion}
			return w.raw.CoreV1().Secrets(w.namespaces[i]).Delete(ctx, "raw", metav1.DeleteOptions{Preconditions: precondition})
		}, func() bool { return w.observer.total() == 0 }},
	}
	for _, phase := range writes {
		if err := w.settle(ctx); err != nil {
			return err
		}
		cpuBefore, start := controlPlaneCPU(), time.Now()
		if err := parallel(n, w.concurrency, phase.write); err != nil {
			return fmt.Errorf("raw %s: %w", phase.name, err)
		}
		took, err := waitFor(ctx, start, "raw "+phase.name+" seen", phase.seen)
		if err != nil {
			return err
		}
		phases[phase.name] = append(phases[phase.name], rawPhase{took: took, cpu: controlPlaneCPU().minus(cpuBefore)})
		fmt.Printf("  %-45s %8.3fs\n", "raw "+phase.name, took.Seconds())
	}
	return nil
}

func (r *run) createNamespaces(ctx context.Context, names []string) error {
	return parallel(len(names), 32, func(i int) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		_, err := r.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		return err
	})
}

// createUnrelated creates Secrets that are neither sources nor mirrors, spread over 100
// namespaces: the operator must not cache them.
func (r *run) createUnrelated(ctx context.Context) error {
	namespaces := namespaceNames("noise-", 100)
	if err := r.createNamespaces(ctx, namespaces); err != nil {
		return err
	}
	return parallel(r.unrelated, 32, func(i int) error {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%05d", i), Namespace: namespaces[i%len(namespaces)]},
			Data:       payload(4096, "x"),
		}
		_, err := r.client.CoreV1().Secrets(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		return err
	})
}

// payload is size bytes of data in two keys: the version the observer reads, and filler.
func payload(size int, version string) map[string][]byte {
	return map[string][]byte{versionKey: []byte(version), "filler": []byte(strings.Repeat("x", max(0, size-len(version))))}
}

func namespaceNames(prefix string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%05d", prefix, i)
	}
	return names
}

// parallel runs work(0..n-1) on workers goroutines and returns the first error.
func parallel(n, workers int, work func(i int) error) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range max(1, workers) {
		wg.Go(func() {
			for i := range next {
				if err := work(i); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return firstErr
}
