package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The tracking comparison (--compare-tracking): a mirror must tell the labels whisperer copied
// from its source from those others added, to remove the first when the source stops asking for
// them and keep the second. Two ways to remember: a record annotation on the mirror
// (secret-syncer.jeffl.es/copied-labels), written with whisperer's usual conditional updates; or
// server-side apply, whose managedFields remember which fields each manager applied, and which
// removes a field its manager no longer applies. The comparison makes, on one control plane, the
// writes each way makes to N mirrors when a source starts copying three labels, changes a value,
// stops copying a key, and when whisperer restarts, and measures what the API server and etcd
// spend on them and what the requests and the stored objects weigh.

const (
	trackingManager = "whisperer"
	recordKey       = labelPrefix + "/copied-labels"
)

// trackingWay is one way of writing mirrors that copy labels: write makes the mirror in
// namespace carry copied (nil: it is created), returning it as the API server answered.
type trackingWay struct {
	name string
	// object names the mirrors it writes.
	object string
	write  func(ctx context.Context, namespace string, copied map[string]string, existing metav1.Object) (metav1.Object, error)
	// restart is what the way must send for a mirror when whisperer restarts on a converged
	// cluster, or nil for nothing.
	restart func(ctx context.Context, namespace string, copied map[string]string, existing metav1.Object) (metav1.Object, error)
}

// trackingSample is what one phase of one way cost.
type trackingSample struct {
	seconds, apiServer, etcd float64
	sent, received           int64
}

func compareTracking(ctx context.Context, s settings, n int) (err error) {
	r, namespaces, err := startComparison(ctx, s, n, "tracking")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.cluster.stop()) }()
	cluster := r.cluster
	counter := &byteCounter{}
	client := func(contentType string) (rest.Interface, error) {
		config := rest.CopyConfig(cluster.raw)
		config.ContentType = contentType
		config.QPS, config.Burst = -1, 0
		config.Wrap(counter.wrap)
		c, err := kubernetes.NewForConfig(config)
		if err != nil {
			return nil, err
		}
		return c.CoreV1().RESTClient(), nil
	}
	// whisperer's client sends built-in types as protobuf; an apply patch is JSON (YAML).
	protobuf, err := client(runtime.ContentTypeProtobuf)
	if err != nil {
		return err
	}
	jsonClient, err := client(runtime.ContentTypeJSON)
	if err != nil {
		return err
	}
	if err := checkApplyAfterCreate(ctx, jsonClient, namespaces[0]); err != nil {
		return err
	}
	ways := []trackingWay{recordWay(protobuf, s.secretSize), applyWay(jsonClient, s.secretSize)}
	phases := []struct {
		name   string
		copied map[string]string
	}{
		{"create, copying 3 labels", map[string]string{"team": "platform", "argocd.argoproj.io/secret-type": "repo-creds", "example.com/tier": "gold"}},
		{"a copied value changed", map[string]string{"team": "payments", "argocd.argoproj.io/secret-type": "repo-creds", "example.com/tier": "gold"}},
		{"a copied key removed", map[string]string{"team": "payments", "argocd.argoproj.io/secret-type": "repo-creds"}},
		{"restart, converged", nil},
	}
	samples := map[string][]trackingSample{} // by way and phase
	var sizes []string
	for round := range s.rounds {
		order := slices.Clone(ways)
		if round%2 == 1 {
			slices.Reverse(order) // neither way always runs on the fresher etcd
		}
		for _, way := range order {
			written := make([]metav1.Object, n)
			copied := phases[0].copied
			for i, phase := range phases {
				write := way.write
				if phase.copied == nil {
					write = way.restart
				} else {
					copied = phase.copied
				}
				var sample trackingSample
				var err error
				if write != nil {
					sample, err = measureTracking(ctx, r, counter, n, func(j int) error {
						var existing metav1.Object
						if i > 0 {
							existing = written[j]
						}
						out, err := write(ctx, namespaces[j], copied, existing)
						if err != nil {
							return fmt.Errorf("%s, %s in %s: %w", way.name, phase.name, namespaces[j], err)
						}
						written[j] = out
						return nil
					})
				}
				if err != nil {
					return err
				}
				samples[way.name+"\x00"+phase.name] = append(samples[way.name+"\x00"+phase.name], sample)
				fmt.Printf("  %-40s %-28s %7.3fs  apiserver %6.2fs  etcd %6.2fs\n", way.name, phase.name, sample.seconds, sample.apiServer, sample.etcd)
			}
			if _, kept := written[0].GetLabels()["example.com/tier"]; kept {
				return fmt.Errorf("%s left the label that the source no longer copies", way.name)
			}
			if round == 0 {
				size, err := storedSize(ctx, jsonClient, namespaces[0], way.object)
				if err != nil {
					return err
				}
				sizes = append(sizes, fmt.Sprintf("%s: %s", way.name, size))
			}
			if err := parallel(n, 32, func(j int) error {
				return secretKind.delete(ctx, protobuf, namespaces[j], written[j].GetName(), nil)
			}); err != nil {
				return err
			}
		}
	}
	if err := printTracking(n, s.rounds, ways, phases, samples); err != nil {
		return err
	}
	fmt.Println("\nOne mirror as stored, in JSON:")
	for _, size := range sizes {
		fmt.Println("  " + size)
	}
	return nil
}

// measureTracking makes one phase's n writes, 16 at once for both ways (whisperer's
// --mirror-write-concurrency when they were compared), once the control plane is quiet, and
// measures them.
func measureTracking(ctx context.Context, r *run, counter *byteCounter, n int, work func(int) error) (trackingSample, error) {
	if err := r.settle(ctx); err != nil {
		return trackingSample{}, err
	}
	sent, received := counter.sent.Load(), counter.received.Load()
	cpu, start := controlPlaneCPU(), time.Now()
	if err := parallel(n, 16, work); err != nil {
		return trackingSample{}, err
	}
	took := time.Since(start)
	used := controlPlaneCPU().minus(cpu)
	return trackingSample{seconds: took.Seconds(), apiServer: used.APIServer, etcd: used.Etcd,
		sent: counter.sent.Load() - sent, received: counter.received.Load() - received}, nil
}

// recordWay is whisperer's way: created, then updated, with its usual conditional writes of the
// whole object, the copied keys recorded in an annotation. A restart costs nothing: the record
// is in the metadata cache, so planning sees that the mirrors are converged.
func recordWay(c rest.Interface, size int) trackingWay {
	const name = "tracked-record"
	build := func(namespace string, copied map[string]string, existing metav1.Object) runtime.Object {
		meta := metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: mirrorLabelsWith(copied),
			Annotations: map[string]string{recordKey: strings.Join(slices.Sorted(maps.Keys(copied)), ",")}}
		if existing != nil {
			meta.ResourceVersion = existing.GetResourceVersion()
		}
		return secretKind.build(meta, size, "v1")
	}
	return trackingWay{
		name: "record annotation (create, update)", object: name,
		write: func(ctx context.Context, namespace string, copied map[string]string, existing metav1.Object) (metav1.Object, error) {
			if existing == nil {
				return secretKind.create(ctx, c, build(namespace, copied, nil))
			}
			return secretKind.update(ctx, c, build(namespace, copied, existing))
		},
	}
}

// applyWay is server-side apply of the whole mirror, by whisperer's field manager, forced, on
// the condition of the resourceVersion read (as whisperer's updates). A restart applies every
// mirror again: the caches hold no managedFields, so nothing tells whisperer which of a mirror's
// labels it applied, and a label to remove would stay (keeping whisperer's managedFields in the
// mirror cache instead costs their size in memory, see storedSize).
func applyWay(c rest.Interface, size int) trackingWay {
	const name = "tracked-apply"
	apply := func(ctx context.Context, namespace string, copied map[string]string, existing metav1.Object) (metav1.Object, error) {
		secret := secretKind.build(metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: mirrorLabelsWith(copied)}, size, "v1").(*corev1.Secret)
		secret.APIVersion, secret.Kind = "v1", "Secret"
		if existing != nil {
			secret.ResourceVersion = existing.GetResourceVersion()
		}
		body, err := json.Marshal(secret)
		if err != nil {
			return nil, err
		}
		out := &corev1.Secret{}
		err = c.Patch(types.ApplyPatchType).Namespace(namespace).Resource("secrets").Name(name).
			Param("fieldManager", trackingManager).Param("force", "true").Body(body).Do(ctx).Into(out)
		return out, err
	}
	return trackingWay{name: "server-side apply (apply)", object: name, write: apply, restart: apply}
}

func mirrorLabelsWith(copied map[string]string) map[string]string {
	labels := map[string]string{labelPrefix + "/mirror": "true", labelPrefix + "/name": "tracked", labelPrefix + "/namespace": "source"}
	maps.Copy(labels, copied)
	return labels
}

// checkApplyAfterCreate checks what server-side apply would need of whisperer's creates: a
// label that a create (POST) set is owned by an Update entry of the field manager, and is not
// removed by a later apply that leaves it out. A create cannot be an apply instead: an apply
// creates or merges into whatever holds the name, and whisperer must never write an object that
// is not its mirror.
func checkApplyAfterCreate(ctx context.Context, c rest.Interface, namespace string) error {
	created := secretKind.build(metav1.ObjectMeta{Name: "apply-after-create", Namespace: namespace,
		Labels: map[string]string{"team": "a", "tier": "b"}}, 16, "v1")
	if err := c.Post().Namespace(namespace).Resource("secrets").Param("fieldManager", trackingManager).Body(created).Do(ctx).Error(); err != nil {
		return err
	}
	body := fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","metadata":{"name":"apply-after-create","namespace":%q,"labels":{"team":"a"}}}`, namespace)
	out := &corev1.Secret{}
	err := c.Patch(types.ApplyPatchType).Namespace(namespace).Resource("secrets").Name("apply-after-create").
		Param("fieldManager", trackingManager).Param("force", "true").Body([]byte(body)).Do(ctx).Into(out)
	if err != nil {
		return err
	}
	_, kept := out.Labels["tier"]
	fmt.Printf("A label set by whisperer's create, left out of its next apply: kept=%v\n", kept)
	return c.Delete().Namespace(namespace).Resource("secrets").Name("apply-after-create").Do(ctx).Error()
}

// storedSize reads the mirror named name as JSON, and says how large it and its managedFields are.
func storedSize(ctx context.Context, c rest.Interface, namespace, name string) (string, error) {
	raw, err := c.Get().Namespace(namespace).Resource("secrets").Name(name).DoRaw(ctx)
	if err != nil {
		return "", err
	}
	var obj struct {
		Metadata struct {
			ManagedFields json.RawMessage   `json:"managedFields"`
			Annotations   map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", err
	}
	record := "no record annotation"
	if value, ok := obj.Metadata.Annotations[recordKey]; ok {
		record = fmt.Sprintf("the record annotation %d bytes", len(recordKey)+len(value))
	}
	return fmt.Sprintf("%d bytes, of which managedFields %d bytes, %s", len(raw), len(obj.Metadata.ManagedFields), record), nil
}

func printTracking(n, rounds int, ways []trackingWay, phases []struct {
	name   string
	copied map[string]string
}, samples map[string][]trackingSample) error {
	fmt.Printf("\nTracking copied labels, N=%d mirrors, medians of %d rounds\n", n, rounds)
	table := []string{"way\tphase\ttime (s)\tapiserver CPU (s)\tetcd CPU (s)\tsent (KiB)\treceived (KiB)\t\n"}
	for _, way := range ways {
		for _, phase := range phases {
			got := samples[way.name+"\x00"+phase.name]
			table = append(table, fmt.Sprintf("%s\t%s\t%.3f\t%.2f\t%.2f\t%.0f\t%.0f\t\n", way.name, phase.name,
				median(mapped(got, func(s trackingSample) float64 { return s.seconds })),
				median(mapped(got, func(s trackingSample) float64 { return s.apiServer })),
				median(mapped(got, func(s trackingSample) float64 { return s.etcd })),
				median(mapped(got, func(s trackingSample) float64 { return float64(s.sent) / 1024 })),
				median(mapped(got, func(s trackingSample) float64 { return float64(s.received) / 1024 }))))
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if _, err := io.WriteString(w, strings.Join(table, "")); err != nil {
		return err
	}
	return w.Flush()
}

// byteCounter counts the bytes of request and response bodies through a client.
type byteCounter struct{ sent, received atomic.Int64 }

func (b *byteCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.ContentLength > 0 {
			b.sent.Add(req.ContentLength)
		}
		resp, err := rt.RoundTrip(req)
		if err == nil {
			resp.Body = countingBody{resp.Body, &b.received}
		}
		return resp, err
	})
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
