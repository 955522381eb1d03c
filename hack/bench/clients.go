package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	crclient "sigs.k8s.io/controller-runtime/pkg/client"
)

// The client comparison (--compare-clients): whisperer writes its mirrors through
// controller-runtime's client, the raw writer through client-go's REST client. Both send the
// same requests as protobuf, and the API server does the same work for each; what differs is the
// writer's own CPU. The comparison makes N creates, updates and deletes of Secrets with each, as
// whisperer makes them (field manager, conditional update, delete on UID and resourceVersion), 32
// at once, the order of the two alternating by round, on one control plane. It measures the
// benchmark process's own CPU and allocations per write, with nothing else running in it: no
// informer, no observer, no operator.

// clientWay writes Secrets through one client.
type clientWay struct {
	name   string
	create func(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error)
	update func(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error)
	delete func(ctx context.Context, s *corev1.Secret) error
}

// clientSample is what one phase of one way cost the writer.
type clientSample struct {
	seconds, cpuMillisPerWrite, kibPerWrite, apiServer float64
}

const (
	clientConcurrency = 32
	clientFieldOwner  = "whisperer"
	clientObjectName  = "client-comparison"
)

func compareClients(ctx context.Context, s settings, n int) (err error) {
	r, namespaces, err := startComparison(ctx, s, n, "clients")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.cluster.stop()) }()
	sentTypes := &contentTypes{}
	config := rest.CopyConfig(r.cluster.raw)
	config.QPS, config.Burst = -1, 0
	config.Wrap(sentTypes.wrap)
	ways, err := clientWays(config)
	if err != nil {
		return err
	}
	phases := []string{"create", "update", "delete"}
	samples := map[string][]clientSample{} // by way and phase
	for round := range s.rounds {
		order := slices.Clone(ways)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, way := range order {
			written := make([]*corev1.Secret, n)
			steps := map[string]func(ctx context.Context, i int) error{
				"create": func(ctx context.Context, i int) (err error) {
					written[i], err = way.create(ctx, clientSecret(namespaces[i], s.secretSize, "v1"))
					return err
				},
				"update": func(ctx context.Context, i int) (err error) {
					next := written[i].DeepCopy()
					next.Data = clientSecret(namespaces[i], s.secretSize, fmt.Sprint("v", round+2)).Data
					written[i], err = way.update(ctx, next)
					return err
				},
				"delete": func(ctx context.Context, i int) error { return way.delete(ctx, written[i]) },
			}
			for _, phase := range phases {
				sample, err := measureClient(ctx, r, n, func(i int) error {
					if err := steps[phase](ctx, i); err != nil {
						return fmt.Errorf("%s, %s in %s: %w", way.name, phase, namespaces[i], err)
					}
					return nil
				})
				if err != nil {
					return err
				}
				samples[way.name+"\x00"+phase] = append(samples[way.name+"\x00"+phase], sample)
				fmt.Printf("  %-36s %-7s %7.3fs  %.3f ms CPU and %.1f KiB allocated per write\n",
					way.name, phase, sample.seconds, sample.cpuMillisPerWrite, sample.kibPerWrite)
			}
		}
	}
	if sent := sentTypes.sent(); !slices.Equal(sent, []string{apiruntime.ContentTypeProtobuf}) {
		return fmt.Errorf("the clients sent %v, want protobuf only: the comparison would not be of the same requests", sent)
	}
	return printClients(n, s.rounds, ways, phases, samples)
}

// clientWays are whisperer's client, made as its manager makes it, and client-go's REST client.
func clientWays(config *rest.Config) ([]clientWay, error) {
	cr, err := crclient.New(config, crclient.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return nil, err
	}
	restConfig := rest.CopyConfig(config)
	restConfig.ContentType = apiruntime.ContentTypeProtobuf
	clientset, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return nil, err
	}
	c := clientset.CoreV1().RESTClient()
	owner := crclient.FieldOwner(clientFieldOwner)
	return []clientWay{
		{
			name: "controller-runtime client (whisperer)",
			create: func(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error) {
				return s, cr.Create(ctx, s, owner)
			},
			update: func(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error) {
				return s, cr.Update(ctx, s, owner)
			},
			delete: func(ctx context.Context, s *corev1.Secret) error {
				return cr.Delete(ctx, s, crclient.Preconditions{UID: &s.UID, ResourceVersion: &s.ResourceVersion})
			},
		},
		{
			name: "client-go REST client (raw writer)",
			create: func(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error) {
				out := &corev1.Secret{}
				return out, c.Post().Namespace(s.Namespace).Resource("secrets").Param("fieldManager", clientFieldOwner).
					Body(s).Do(ctx).Into(out)
			},
			update: func(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error) {
				out := &corev1.Secret{}
				return out, c.Put().Namespace(s.Namespace).Resource("secrets").Name(s.Name).Param("fieldManager", clientFieldOwner).
					Body(s).Do(ctx).Into(out)
			},
			delete: func(ctx context.Context, s *corev1.Secret) error {
				return secretKind.delete(ctx, c, s.Namespace, s.Name, s)
			},
		},
	}, nil
}

// clientSecret is the Secret each way writes in namespace: a mirror's labels and size bytes of data.
func clientSecret(namespace string, size int, version string) *corev1.Secret {
	return secretKind.build(rawMeta(namespace, clientObjectName, "clients"), size, version).(*corev1.Secret)
}

// measureClient makes one phase's n writes, 32 at once, once the control plane is quiet and the
// benchmark's own garbage is collected, and measures what the benchmark process spent on them.
func measureClient(ctx context.Context, r *run, n int, work func(int) error) (clientSample, error) {
	if err := r.settle(ctx); err != nil {
		return clientSample{}, err
	}
	runtime.GC()
	self := strconv.Itoa(os.Getpid())
	var memBefore, memAfter runtime.MemStats
	runtime.ReadMemStats(&memBefore)
	cpuBefore, _, err := processCPU(self)
	if err != nil {
		return clientSample{}, err
	}
	server, start := controlPlaneCPU(), time.Now()
	if err := parallel(n, clientConcurrency, work); err != nil {
		return clientSample{}, err
	}
	took := time.Since(start)
	cpuAfter, _, err := processCPU(self)
	if err != nil {
		return clientSample{}, err
	}
	runtime.ReadMemStats(&memAfter)
	return clientSample{
		seconds:           took.Seconds(),
		cpuMillisPerWrite: (cpuAfter - cpuBefore) * 1000 / float64(n),
		kibPerWrite:       float64(memAfter.TotalAlloc-memBefore.TotalAlloc) / 1024 / float64(n),
		apiServer:         controlPlaneCPU().minus(server).APIServer,
	}, nil
}

func printClients(n, rounds int, ways []clientWay, phases []string, samples map[string][]clientSample) error {
	fmt.Printf("\nWriting N=%d Secrets, %d at once, through each client, medians of %d rounds\n", n, clientConcurrency, rounds)
	table := []string{"client\tphase\ttime (s)\twriter CPU per write (ms)\tallocated per write (KiB)\tapiserver CPU (s)\t\n"}
	for _, way := range ways {
		for _, phase := range phases {
			got := samples[way.name+"\x00"+phase]
			table = append(table, fmt.Sprintf("%s\t%s\t%.3f\t%.3f\t%.1f\t%.2f\t\n", way.name, phase,
				median(mapped(got, func(s clientSample) float64 { return s.seconds })),
				median(mapped(got, func(s clientSample) float64 { return s.cpuMillisPerWrite })),
				median(mapped(got, func(s clientSample) float64 { return s.kibPerWrite })),
				median(mapped(got, func(s clientSample) float64 { return s.apiServer }))))
		}
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	if _, err := io.WriteString(w, strings.Join(table, "")); err != nil {
		return err
	}
	return w.Flush()
}

// contentTypes records the content types of the request bodies sent through a client.
type contentTypes struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (c *contentTypes) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Body != nil && req.ContentLength != 0 {
			c.mu.Lock()
			if c.seen == nil {
				c.seen = map[string]bool{}
			}
			c.seen[req.Header.Get("Content-Type")] = true
			c.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

func (c *contentTypes) sent() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var types []string
	for t := range c.seen {
		types = append(types, t)
	}
	slices.Sort(types)
	return types
}
