package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"

	"github.com/whisperer-operator/whisperer/internal/auditlog"
	"github.com/whisperer-operator/whisperer/internal/localcluster"
)

// The operator and the raw client run as API users of their own, whose requests the audit log
// records: the operator's writes are told from the benchmark's, and both sides pay for the
// audit log (written before each response) alike.
const (
	operatorUser = "whisperer-bench-operator"
	rawUser      = "whisperer-bench-raw"
	auditedGroup = "whisperer:bench"
)

// benchCluster is a local control plane with an audit log of the operator's and the raw
// client's requests.
type benchCluster struct {
	*localcluster.Cluster
	kubeconfig string // the operator's
	raw        *rest.Config
	auditLog   string
}

func startCluster(assets, dir string) (*benchCluster, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	flags, auditLog, err := auditlog.APIServerFlags(dir, auditedGroup)
	if err != nil {
		return nil, err
	}
	_ = os.Remove(auditLog)
	output, err := os.Create(filepath.Join(dir, "controlplane.log"))
	if err != nil {
		return nil, err
	}
	cluster, err := localcluster.Start(localcluster.Options{
		AssetsDir: assets, Output: output, APIServerFlags: flags,
		// Only the namespace controller: the others would add API traffic (a ServiceAccount in
		// each new namespace) to what is measured.
		Controllers: []string{"namespace"},
	})
	if err != nil {
		return nil, err
	}
	c := &benchCluster{Cluster: cluster, kubeconfig: filepath.Join(dir, "operator.kubeconfig"), auditLog: auditLog}
	_, kubeconfig, err := cluster.AddUser(operatorUser, auditedGroup, "system:masters")
	if err == nil {
		err = os.WriteFile(c.kubeconfig, kubeconfig, 0o600)
	}
	if err == nil {
		c.raw, _, err = cluster.AddUser(rawUser, auditedGroup, "system:masters")
	}
	if err != nil {
		return nil, errors.Join(err, cluster.Stop())
	}
	return c, nil
}

// writeCounts counts the operator's write requests by resource.
type writeCounts map[string]int

func (w writeCounts) total() (n int) {
	for _, v := range w {
		n += v
	}
	return n
}

// minus returns the writes made since before.
func (w writeCounts) minus(before writeCounts) writeCounts {
	out := writeCounts{}
	for k, v := range w {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// operatorWrites counts the operator's writes in the audit log so far.
func (c *benchCluster) operatorWrites() (writeCounts, error) {
	writes, err := auditlog.Read(c.auditLog, func(e auditlog.Event) bool { return e.IsWrite() && e.User.Username == operatorUser })
	if err != nil {
		return nil, err
	}
	counts := writeCounts{}
	for _, e := range writes {
		counts[e.Resource()]++
	}
	return counts, nil
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
func (c *benchCluster) settle(ctx context.Context, admin rest.Interface) error {
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
	_, err := admin.Get().AbsPath("/debug/pprof/heap").Param("gc", "1").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("collecting the API server's garbage: %w", err)
	}
	return nil
}
