package clustertest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// operatorName names the process of every StartOperator, so its log: <WorkDir>/whisperer.log.
const operatorName = "whisperer"

// Operator says how to run bin/whisperer as an install would run it in a pod.
type Operator struct {
	// Namespace and ServiceAccount are the pod's: whisperer runs with a token of that
	// ServiceAccount and nothing else, and holds its leader election Lease in Namespace.
	Namespace, ServiceAccount string
	// Args are whisperer's arguments; StartOperator adds --kubeconfig, which stands for the
	// in-cluster configuration a pod gets.
	Args []string
	// Env is whisperer's whole environment: nothing of the test's is passed on.
	Env []string
	// ProbeAddress is the host:port where it serves /readyz.
	ProbeAddress string
}

// StartOperator runs bin/whisperer as o says, and returns once it is ready and holds the leader
// election Lease in o.Namespace (which the install's Role must allow). What it can do is what the
// install granted o.ServiceAccount.
func (e Env) StartOperator(t *testing.T, ctx context.Context, c client.Client, o Operator) *Process {
	t.Helper()
	kubeconfig := e.TokenKubeconfig(t, ctx, o.Namespace, o.ServiceAccount)
	started := time.Now().Add(-time.Second)
	p := e.start(t, operatorName, o.Env, append([]string{e.Bin("whisperer"), "--kubeconfig=" + kubeconfig}, o.Args...)...)
	WaitFor(t, ctx, "whisperer is ready", func(ctx context.Context) (bool, string, error) {
		if !p.Running() {
			return false, "", fmt.Errorf("whisperer exited; see %s", p.Log)
		}
		status, _, err := Get(ctx, "http://"+o.ProbeAddress+"/readyz", "")
		return status == http.StatusOK, fmt.Sprintf("readyz: %d", status), err
	})
	WaitFor(t, ctx, "whisperer holds the leader election Lease", func(ctx context.Context) (bool, string, error) {
		leases := &coordinationv1.LeaseList{}
		if err := c.List(ctx, leases, client.InNamespace(o.Namespace)); err != nil {
			return false, "", err
		}
		for _, l := range leases.Items {
			if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" && l.Spec.RenewTime != nil && l.Spec.RenewTime.After(started) {
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d leases, none renewed since the start", len(leases.Items)), nil
	})
	return p
}

// CreateToken returns a token of a ServiceAccount, as README tells: kubectl create token.
func (e Env) CreateToken(t *testing.T, ctx context.Context, namespace, name string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(e.ControlPlaneDir, "kubectl"), "create", "token", name, "-n", namespace, "--duration=1h")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl create token %s -n %s: %v: %s", name, namespace, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// TokenKubeconfig writes a kubeconfig that reaches the cluster as the ServiceAccount, and
// nothing else: the admin kubeconfig's server and CA, and a token of the ServiceAccount.
func (e Env) TokenKubeconfig(t *testing.T, ctx context.Context, namespace, name string) string {
	t.Helper()
	admin, err := clientcmd.LoadFromFile(e.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cluster := admin.Clusters[admin.Contexts[admin.CurrentContext].Cluster]
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: cluster.Server, CertificateAuthorityData: cluster.CertificateAuthorityData}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: e.CreateToken(t, ctx, namespace, name)}
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name, Namespace: namespace}
	cfg.CurrentContext = "default"
	path := filepath.Join(e.WorkDir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
