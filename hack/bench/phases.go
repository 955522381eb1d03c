package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

const (
	sourceNamespace      = "source"
	sourceName           = "pull"
	targetPrefix         = "bench-"
	latePrefix           = "late-"
	labelPrefix          = "secret-syncer.jeffl.es"
	annotationNamespaces = labelPrefix + "/namespaces"
	versionKey           = "version"
)

// run is one benchmark run: one size, with or without unrelated objects.
type run struct {
	settings
	n         int
	unrelated unrelatedObjects
	// kinds are the kinds of sources measured in turn, in create, update and delete phases;
	// the first also in the phases that cost nothing and the new namespace phase.
	kinds []kind
	// kind is the kind measured now, and mirrors the watch of its mirrors.
	kind kind
	// fanout are the sources of the fan-out phases; none skips them.
	fanout  []fanoutGroup
	cluster *benchCluster
	mirrors *observer
	op      *operator
	rows    []row
}

func (r *run) label(phase string) string {
	if r.unrelated.any() {
		return fmt.Sprintf("%s (+%d unrelated)", phase, r.unrelated.total())
	}
	return phase
}

func (r *run) admin() rest.Interface { return r.cluster.admin.CoreV1().RESTClient() }

func (r *run) execute(ctx context.Context) (err error) {
	dir := filepath.Join(r.workDir, fmt.Sprintf("n%d-u%d", r.n, r.unrelated.total()))
	cluster, err := startCluster(r.assets, dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cluster.stop()) }()
	r.cluster = cluster

	targets := namespaceNames(targetPrefix, r.n)
	if err := r.createNamespaces(ctx, append(targets, sourceNamespace)); err != nil {
		return err
	}
	if err := r.createUnrelated(ctx); err != nil {
		return err
	}
	if r.op, err = startOperator(ctx, r.binary, cluster.kubeconfig, filepath.Join(dir, "whisperer.log"), r.operatorArgs); err != nil {
		return err
	}
	defer func() { r.op.stop() }()
	for i, k := range r.kinds {
		if err := r.kindPhases(ctx, k, targets, i == 0); err != nil {
			return err
		}
	}
	if r.serviceAccounts && !r.unrelated.any() {
		if err := r.serviceAccountPhases(ctx, targets); err != nil {
			return err
		}
	}
	if len(r.fanout) > 0 {
		return r.fanoutPhases(ctx)
	}
	return nil
}

// kindPhases measures the operator on sources of kind k, against the raw writer unless the run
// has unrelated objects; the first kind's phases include those that cost nothing and the new
// namespace phase.
func (r *run) kindPhases(ctx context.Context, k kind, targets []string, first bool) error {
	r.kind = k
	var raw *rawWriter
	var err error
	if !r.unrelated.any() {
		if raw, err = newRawWriter(ctx, r, k, targets); err != nil {
			return err
		}
		defer raw.observer.close()
	}
	if r.mirrors, err = observe(ctx, r.cluster.watch.CoreV1().RESTClient(), k, labelPrefix+"/namespace="+sourceNamespace); err != nil {
		return err
	}
	defer r.mirrors.close()
	return r.operatorPhases(ctx, raw, first)
}

// phase is one measured step of the operator's: what it does and returns (its time, and for
// latencies the 99th percentile), and the writes it must cost.
type phase struct {
	name   string
	act    func(context.Context) (took, p99 time.Duration, err error)
	expect expect
	// raw names the raw writer's phase it is compared with, if any: create, update or delete.
	raw string
}

// operatorPhases measures the operator on the same writes as the raw writer, in as many rounds,
// then what costs nothing (resync, and with all, restart) and, with all, what a new namespace
// waits. Unless raw is nil, each round of the operator follows a round of the raw writer: both
// then see the same machine and an etcd of the same history, however either drifts during the
// run.
func (r *run) operatorPhases(ctx context.Context, raw *rawWriter, all bool) error {
	named := func(verb string) string { return verb + " " + r.kind.name }
	// One Event on the source for each change of its mirrors; none when it is deleted, since
	// there is no source left to record it on.
	// The source selects the new namespace phase's namespaces only in that phase's kind: the
	// other kinds' run after it, when those namespaces exist.
	selected := targetPrefix + "*"
	if all {
		selected += "," + latePrefix + "*"
	}
	create := phase{named("create"), r.createSource(selected), mirrorsOnly(r.kind, r.n, 1), "create"}
	update := phase{named("update"), r.updateSource, mirrorsOnly(r.kind, r.n, 1), "update"}
	remove := phase{named("delete"), r.deleteSource, mirrorsOnly(r.kind, r.n, 0), "delete"}
	var steps []phase
	for range r.rounds - 1 {
		steps = append(steps, create, update, remove)
	}
	steps = append(steps, create, update,
		phase{named("resync") + " (source touched)", r.touchSource, mirrorsOnly(r.kind, 0, 0), ""})
	if all {
		steps = append(steps,
			phase{"restart", r.restartOperator, mirrorsOnly(r.kind, 0, 0), ""},
			// Each new namespace gets a mirror, which goes when the namespaces leave the annotation.
			phase{fmt.Sprintf("new namespace, 1 %s source (%d namespaces)", r.kind.name, r.newNamespaces), r.newNamespacesOneSource,
				mirrorsOnly(r.kind, 2*r.newNamespaces, anyEvents), ""})
	}
	steps = append(steps, remove)
	rounds := map[string][]measured{}
	rawRounds := map[string][]rawPhase{}
	for _, step := range steps {
		if raw != nil && step.name == create.name {
			if err := raw.round(ctx, rawRounds); err != nil {
				return err
			}
		}
		m, err := r.measure(ctx, step)
		if err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		rounds[step.name] = append(rounds[step.name], m)
	}
	for _, step := range steps[3*(r.rounds-1):] {
		r.rows = append(r.rows, r.merge(step, rounds[step.name], fastest(rawRounds[step.raw], r.rawConcurrency)))
	}
	return nil
}

// measureEach measures each of steps once, in order, and adds their rows, compared with raw
// when they name a raw phase.
func (r *run) measureEach(ctx context.Context, steps []phase, raw *rawResult) error {
	for _, step := range steps {
		m, err := r.measure(ctx, step)
		if err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
		var compared *rawResult
		if step.raw != "" {
			compared = raw
		}
		r.rows = append(r.rows, r.merge(step, []measured{m}, compared))
	}
	return nil
}

// measure runs one phase and returns its time, the operator's writes, reconciles and usage, and
// the other processes' CPU time.
func (r *run) measure(ctx context.Context, p phase) (measured, error) {
	writesBefore, err := r.cluster.writes(ctx)
	if err != nil {
		return measured{}, err
	}
	op := r.op
	before, err := op.metrics(ctx)
	if err != nil {
		return measured{}, err
	}
	cpuBefore, err := op.cpuSeconds()
	if err != nil {
		return measured{}, err
	}
	if err := r.settle(ctx); err != nil {
		return measured{}, err
	}
	op.anon.reset()
	othersBefore := controlPlaneCPU()
	took, p99, err := p.act(ctx)
	if err != nil {
		return measured{}, err
	}
	result := measured{took: took, p99: p99, cpu: controlPlaneCPU().minus(othersBefore)}
	if r.op != op {
		// A new operator process counts from zero.
		before, cpuBefore = operatorMetrics{}, 0
	}
	// Writes that trail the observed result (Events) belong to the phase too.
	reconciles, after, err := r.op.waitIdle(ctx, before.reconciles, time.Second)
	if err != nil {
		return measured{}, err
	}
	writesAfter, err := r.cluster.writes(ctx)
	if err != nil {
		return measured{}, err
	}
	cpuAfter, err := r.op.cpuSeconds()
	if err != nil {
		return measured{}, err
	}
	memory, err := r.op.memory()
	if err != nil {
		return measured{}, err
	}
	result.writes, result.reconciles = writesAfter.minus(writesBefore), int(reconciles)
	result.usage = usage{CPUSeconds: cpuAfter - cpuBefore, PeakAnonMiB: r.op.anon.mib(),
		HeapInUseMiB: after.heapInUse / (1 << 20), VmHWMMiB: memory.vmHWM / 1024}
	fmt.Printf("  %-50s %8.3fs  %s\n", r.label(p.name), took.Seconds(), result.writes)
	return result, nil
}

// settle waits until the API server and etcd together use less than quietCPU in a quietWindow,
// for at most settleLimit.
const (
	quietWindow = 100 * time.Millisecond
	quietCPU    = 0.02 // seconds: a fifth of a core
	settleLimit = 5 * time.Second
)

// settle readies the control plane for a timed phase, the same way before the raw writer's and
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
	_, err := r.admin().Get().AbsPath("/debug/pprof/heap").Param("gc", "1").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("collecting the API server's garbage: %w", err)
	}
	return nil
}

// createSource returns the phase that creates the source, into the namespaces its namespaces
// annotation selects.
func (r *run) createSource(namespaces string) func(context.Context) (time.Duration, time.Duration, error) {
	return func(ctx context.Context) (time.Duration, time.Duration, error) {
		source := r.kind.build(metav1.ObjectMeta{
			Name: sourceName, Namespace: sourceNamespace,
			Labels:      map[string]string{labelPrefix + "/sync": "true"},
			Annotations: map[string]string{annotationNamespaces: namespaces},
		}, r.secretSize, "v1")
		start := time.Now()
		if _, err := r.kind.create(ctx, r.admin(), source); err != nil {
			return 0, 0, err
		}
		took, err := waitFor(ctx, start, "every mirror", func() bool { return r.mirrors.count("v1") == r.n })
		return took, 0, err
	}
}

func (r *run) updateSource(ctx context.Context) (time.Duration, time.Duration, error) {
	start := time.Now()
	if err := r.kind.patch(ctx, r.admin(), sourceNamespace, sourceName, r.kind.versionPatch("v2")); err != nil {
		return 0, 0, err
	}
	took, err := waitFor(ctx, start, "every mirror updated", func() bool { return r.mirrors.count("v2") == r.n })
	return took, 0, err
}

// touchPatch changes nothing the operator reads: the reconcile it causes must write nothing.
const touchPatch = `{"metadata":{"annotations":{"bench/touched":"yes"}}}`

func (r *run) touchSource(ctx context.Context) (time.Duration, time.Duration, error) {
	start := time.Now()
	err := r.kind.patch(ctx, r.admin(), sourceNamespace, sourceName, touchPatch)
	return time.Since(start), 0, err
}

// restartOperator stops the operator and starts a new one on the converged cluster; its time is
// until the new one's workers run.
func (r *run) restartOperator(ctx context.Context) (time.Duration, time.Duration, error) {
	r.op.stop()
	start := time.Now()
	op, err := startOperator(ctx, r.binary, r.cluster.kubeconfig, r.op.logPath, r.operatorArgs)
	if err != nil {
		return 0, 0, err
	}
	r.op = op
	return time.Since(start), 0, nil
}

// newNamespacesOneSource creates matching namespaces one by one and returns the median and 99th
// percentile time until each has its mirror. It then takes them out of the annotation again (not
// timed), so that the delete phase deletes as many mirrors as the raw writer did.
func (r *run) newNamespacesOneSource(ctx context.Context) (time.Duration, time.Duration, error) {
	median, p99, err := r.timeNewNamespaces(ctx, latePrefix, func(namespace string) bool {
		return r.mirrors.has(namespace, sourceName, "v2")
	})
	if err != nil {
		return 0, 0, err
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, annotationNamespaces, targetPrefix+"*")
	if err := r.kind.patch(ctx, r.admin(), sourceNamespace, sourceName, patch); err != nil {
		return 0, 0, err
	}
	_, err = waitFor(ctx, time.Now(), "late mirrors removed", func() bool { return r.mirrors.total() == r.n })
	return median, p99, err
}

// timeNewNamespaces creates r.newNamespaces namespaces named prefix and a number, one by one,
// each once the one before is served, and returns the median and 99th percentile of the times
// from a namespace's creation until served holds for it.
func (r *run) timeNewNamespaces(ctx context.Context, prefix string, served func(namespace string) bool) (time.Duration, time.Duration, error) {
	var times []time.Duration
	for _, name := range namespaceNames(prefix, r.newNamespaces) {
		start := time.Now()
		if err := r.createNamespaces(ctx, []string{name}); err != nil {
			return 0, 0, err
		}
		took, err := waitFor(ctx, start, "mirrors in "+name, func() bool { return served(name) })
		if err != nil {
			return 0, 0, err
		}
		times = append(times, took)
	}
	return percentile(times, 50), percentile(times, 99), nil
}

func (r *run) deleteSource(ctx context.Context) (time.Duration, time.Duration, error) {
	start := time.Now()
	if err := r.kind.delete(ctx, r.admin(), sourceNamespace, sourceName, nil); err != nil {
		return 0, 0, err
	}
	took, err := waitFor(ctx, start, "every mirror deleted", func() bool { return r.mirrors.total() == 0 })
	return took, 0, err
}

func (r *run) createNamespaces(ctx context.Context, names []string) error {
	return parallel(len(names), 32, func(i int) error {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}
		_, err := r.cluster.admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
		return err
	})
}

// unrelatedObjects are how many objects of each kind that are neither sources nor mirrors a run
// has in other namespaces: the operator must not cache them, or only as little of them as it
// needs (ServiceAccounts, which it caches slimmed).
type unrelatedObjects struct {
	Secrets         int `json:"secrets"`
	ConfigMaps      int `json:"configMaps"`
	ServiceAccounts int `json:"serviceAccounts"`
}

func (u unrelatedObjects) total() int { return u.Secrets + u.ConfigMaps + u.ServiceAccounts }

func (u unrelatedObjects) any() bool { return u.total() > 0 }

func (u unrelatedObjects) String() string {
	var parts []string
	for _, c := range []struct {
		n    int
		what string
	}{{u.Secrets, "Secrets"}, {u.ConfigMaps, "ConfigMaps"}, {u.ServiceAccounts, "ServiceAccounts"}} {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// unrelatedNamespaces is how many namespaces the unrelated objects are spread over.
const unrelatedNamespaces = 100

// createUnrelated creates r.unrelated: 4 KiB Secrets and ConfigMaps and plain ServiceAccounts,
// spread over namespaces of their own.
func (r *run) createUnrelated(ctx context.Context) error {
	if !r.unrelated.any() {
		return nil
	}
	namespaces := namespaceNames("noise-", unrelatedNamespaces)
	if err := r.createNamespaces(ctx, namespaces); err != nil {
		return err
	}
	meta := func(i int) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%05d", i), Namespace: namespaces[i%len(namespaces)]}
	}
	for _, k := range []struct {
		kind
		n int
	}{{secretKind, r.unrelated.Secrets}, {configMapKind, r.unrelated.ConfigMaps}} {
		if err := parallel(k.n, 32, func(i int) error {
			_, err := k.create(ctx, r.admin(), k.build(meta(i), 4096, "x"))
			return err
		}); err != nil {
			return err
		}
	}
	return parallel(r.unrelated.ServiceAccounts, 32, func(i int) error {
		_, err := r.cluster.admin.CoreV1().ServiceAccounts(namespaces[i%len(namespaces)]).Create(ctx,
			&corev1.ServiceAccount{ObjectMeta: meta(i)}, metav1.CreateOptions{})
		return err
	})
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
