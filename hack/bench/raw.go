package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// rawLabelPrefix stands for secret-syncer.jeffl.es in the raw writer's objects: labels of the
// same sizes as a mirror's, which whisperer, idle meanwhile, does not take for mirrors.
const rawLabelPrefix = "secret-syncer.bench.es"

// rawWriter makes the operator's writes directly with plain client-go: one object of the same
// size and label sizes in each namespace, created, updated, deleted, at each of several
// concurrencies. The fastest is the machine's limit that whisperer is compared with.
type rawWriter struct {
	*run
	kind       kind
	namespaces []string
	observer   *observer
	// clients writes at each concurrency, in the order the rounds use them.
	clients []rawClient
}

type rawClient struct {
	concurrency int
	rest        rest.Interface
	// watching is a writer that watches its own objects as a controller does: not a baseline,
	// but what the watch costs a writer, reported beside it (--raw-watching).
	watching bool
}

// newRawWriter makes a writer of kind k into namespaces, and its observer.
func newRawWriter(ctx context.Context, r *run, k kind, namespaces []string) (*rawWriter, error) {
	w := &rawWriter{run: r, kind: k, namespaces: namespaces}
	for _, c := range r.rawConcurrency {
		client, err := r.rawClient()
		if err != nil {
			return nil, err
		}
		w.clients = append(w.clients, rawClient{concurrency: c, rest: client})
	}
	if r.rawWatching > 0 {
		client, err := r.rawClient()
		if err != nil {
			return nil, err
		}
		w.clients = append(w.clients, rawClient{concurrency: r.rawWatching, rest: client, watching: true})
	}
	var err error
	w.observer, err = observe(ctx, r.cluster.watch.CoreV1().RESTClient(), k, rawLabelPrefix+"/namespace=raw")
	return w, err
}

// rawPhase is one phase of a raw round: its time, and what the other processes spent meanwhile.
type rawPhase struct {
	concurrency int
	watching    bool
	took        time.Duration
	cpu         cpuSplit
	// others are the writes the API server counted besides the raw writer's: none, unless the
	// counting is wrong.
	others writeCounts
}

// round makes one round of the writes at each concurrency and appends each phase's measures to
// phases. A phase lasts from its first write until the observer has seen every write, as
// whisperer's phases do.
func (w *rawWriter) round(ctx context.Context, phases map[string][]rawPhase) error {
	n := len(w.namespaces)
	written := make([]metav1.Object, n)
	for _, client := range w.clients {
		writes := rawWrites{
			{"create", func(i int) (err error) {
				written[i], err = w.kind.create(ctx, client.rest, w.kind.build(w.rawMeta(i), w.secretSize, "v1"))
				return err
			}, func() bool { return w.observer.count("v1") == n }},
			{"update", func(i int) (err error) {
				// Built anew and conditional on the version written, as whisperer updates a mirror.
				meta := w.rawMeta(i)
				meta.ResourceVersion = written[i].GetResourceVersion()
				written[i], err = w.kind.update(ctx, client.rest, w.kind.build(meta, w.secretSize, "v2"))
				return err
			}, func() bool { return w.observer.count("v2") == n }},
			{"delete", func(i int) error {
				return w.kind.delete(ctx, client.rest, w.namespaces[i], "raw", written[i])
			}, func() bool { return w.observer.total() == 0 }},
		}
		if err := w.roundAt(ctx, client, writes, phases); err != nil {
			return err
		}
	}
	return nil
}

// rawWrites are the phases of a raw round: what each object gets, and when all have been seen.
type rawWrites []struct {
	name  string
	write func(i int) error
	seen  func() bool
}

// roundAt makes the writes of one round through client, with its own watch running meanwhile if
// it is a watching writer.
func (w *rawWriter) roundAt(ctx context.Context, client rawClient, writes rawWrites, phases map[string][]rawPhase) error {
	suffix := ""
	if client.watching {
		stop, err := w.watchOwnWrites(ctx)
		if err != nil {
			return err
		}
		defer stop()
		suffix = ", watching its writes"
	}
	for _, phase := range writes {
		p, err := w.measureRaw(ctx, client.concurrency, phase.name+" "+w.kind.name+suffix, func() error {
			return parallel(len(w.namespaces), client.concurrency, phase.write)
		}, phase.seen)
		if err != nil {
			return err
		}
		p.watching = client.watching
		phases[phase.name] = append(phases[phase.name], p)
	}
	return nil
}

// watchOwnWrites runs, until stop is called, what a controller runs to see its own writes: an
// informer of the raw writer's objects as metadata, which decodes every event (protobuf) and
// keeps each object's metadata in a store, as whisperer's cache of its mirrors does.
func (w *rawWriter) watchOwnWrites(ctx context.Context) (stop func(), err error) {
	client, err := metadata.NewForConfig(w.cluster.raw)
	if err != nil {
		return nil, err
	}
	informer := metadatainformer.NewFilteredMetadataInformer(client, corev1.SchemeGroupVersion.WithResource(w.kind.resource),
		metav1.NamespaceAll, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc},
		func(o *metav1.ListOptions) { o.LabelSelector = rawLabelPrefix + "/namespace=raw" }).Informer()
	ctx, cancel := context.WithCancel(ctx)
	go informer.RunWithContext(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		cancel()
		return nil, fmt.Errorf("the raw writer's own watch did not sync")
	}
	return cancel, nil
}

// measureRaw times one raw phase, write at concurrency, from its first write until seen holds,
// with the same settling and counting as whisperer's phases.
func (r *run) measureRaw(ctx context.Context, concurrency int, name string, write func() error, seen func() bool) (rawPhase, error) {
	before, err := r.cluster.writes(ctx)
	if err != nil {
		return rawPhase{}, err
	}
	if err := r.settle(ctx); err != nil {
		return rawPhase{}, err
	}
	cpuBefore, start := controlPlaneCPU(), time.Now()
	if err := write(); err != nil {
		return rawPhase{}, fmt.Errorf("raw %s at %d: %w", name, concurrency, err)
	}
	took, err := waitFor(ctx, start, "raw "+name+" seen", seen)
	if err != nil {
		return rawPhase{}, err
	}
	cpu := controlPlaneCPU().minus(cpuBefore)
	// The API server should have counted exactly the raw writer's writes, if whisperer is
	// idle and the benchmark counts its own right.
	after, err := r.cluster.writes(ctx)
	if err != nil {
		return rawPhase{}, err
	}
	fmt.Printf("  %-50s %8.3fs\n", fmt.Sprintf("raw %s, %d at once", name, concurrency), took.Seconds())
	return rawPhase{concurrency: concurrency, took: took, cpu: cpu, others: after.minus(before)}, nil
}

// rawClient returns the fastest plain client: protobuf, as controller-runtime's client sends
// built-in types, and no client-side rate limit. Each concurrency has one, as one program each.
func (r *run) rawClient() (rest.Interface, error) {
	config := rest.CopyConfig(r.cluster.raw)
	config.ContentType = runtime.ContentTypeProtobuf
	config.QPS, config.Burst = -1, 0
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	return client.CoreV1().RESTClient(), nil
}

func (w *rawWriter) rawMeta(i int) metav1.ObjectMeta { return rawMeta(w.namespaces[i], "raw", "raw") }

// rawMeta is the metadata of a raw object named name in namespace, with labels of the same sizes
// as those of a mirror of a source in sourceNamespace.
func rawMeta(namespace, name, sourceNamespace string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{
		rawLabelPrefix + "/mirror": "true", rawLabelPrefix + "/name": name, rawLabelPrefix + "/namespace": sourceNamespace}}
}

// rawResult is the raw writer's result for one phase: the fastest concurrency's, and each one's.
type rawResult struct {
	// Seconds is the fastest concurrency's median time, and CPU its median CPU split.
	Seconds       float64          `json:"seconds"`
	Concurrency   int              `json:"concurrency"`
	CPU           cpuSplit         `json:"cpu"`
	ByConcurrency []rawConcurrency `json:"byConcurrency"`
	// Watching is the writer that watches its own writes (--raw-watching), if any: not part of
	// the baseline.
	Watching *rawConcurrency `json:"watching,omitempty"`
}

type rawConcurrency struct {
	Concurrency  int       `json:"concurrency"`
	Seconds      float64   `json:"seconds"`
	RoundSeconds []float64 `json:"roundSeconds"`
	CPU          cpuSplit  `json:"cpu"`
	// OtherWrites are the writes besides the raw writer's in all rounds, which must be none.
	OtherWrites writeCounts `json:"otherWrites,omitempty"`
}

// fastest makes the raw result of a phase from its rounds at every concurrency, in the order of
// concurrencies.
func fastest(phases []rawPhase, concurrencies []int) *rawResult {
	if len(phases) == 0 {
		return nil
	}
	result := &rawResult{}
	for _, c := range concurrencies {
		rounds := slices.DeleteFunc(slices.Clone(phases), func(p rawPhase) bool { return p.watching || p.concurrency != c })
		if len(rounds) == 0 {
			continue
		}
		at := summarize(c, rounds)
		result.ByConcurrency = append(result.ByConcurrency, at)
		if result.Concurrency == 0 || at.Seconds < result.Seconds {
			result.Seconds, result.Concurrency, result.CPU = at.Seconds, c, at.CPU
		}
	}
	if watching := slices.DeleteFunc(slices.Clone(phases), func(p rawPhase) bool { return !p.watching }); len(watching) > 0 {
		at := summarize(watching[0].concurrency, watching)
		result.Watching = &at
	}
	return result
}

// summarize makes the result of the rounds of one raw writer at concurrency c.
func summarize(c int, rounds []rawPhase) rawConcurrency {
	at := rawConcurrency{Concurrency: c,
		RoundSeconds: mapped(rounds, func(p rawPhase) float64 { return p.took.Seconds() }),
		CPU:          medianSplit(mapped(rounds, func(p rawPhase) cpuSplit { return p.cpu }))}
	at.Seconds = median(at.RoundSeconds)
	for _, round := range rounds {
		for resource, n := range round.others {
			if at.OtherWrites == nil {
				at.OtherWrites = writeCounts{}
			}
			at.OtherWrites[resource] += n
		}
	}
	return at
}
