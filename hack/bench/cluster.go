package main

import (
	"errors"
	"os"
	"path/filepath"

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
