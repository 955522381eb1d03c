package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	// The only import of the local control plane: when the package moves, this line changes.
	"github.com/whisperer-operator/whisperer/test/localcluster"
)

// The benchmark, the operator and the raw writer are API users of their own, as in a cluster.
var users = []string{"whisperer-bench-admin", "whisperer-bench-operator", "whisperer-bench-raw"}

// benchCluster is a plain local control plane: nothing in the API server's request path that a
// cluster does not have by default, so that both sides are timed against the machine's real
// limit. It keeps no audit log, which the API server writes before it answers (and at Metadata
// level it still encodes each write's object to JSON). Its users authenticate with bearer tokens,
// which cost the API server a lookup per request, like the ServiceAccount token an operator uses
// in a cluster once verified; a client certificate costs it a signature check per request.
type benchCluster struct {
	stop       func() error
	kubeconfig string // the operator's
	// admin is the benchmark's own client; raw is the raw writer's user, to which the raw writer
	// applies its client settings. Both count their writes in own.
	admin kubernetes.Interface
	raw   *rest.Config
	// watch is the client of the observers: protobuf, as whisperer's informers.
	watch kubernetes.Interface
	own   *writeCounter
}

func startCluster(assets, dir string) (*benchCluster, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	output, err := os.Create(filepath.Join(dir, "controlplane.log"))
	if err != nil {
		return nil, err
	}
	tokens, tokenFile, err := writeTokens(dir)
	if err != nil {
		return nil, err
	}
	cluster, err := localcluster.Start(localcluster.Options{
		AssetsDir: assets, Output: output, APIServerFlags: map[string]string{"token-auth-file": tokenFile},
		// Only the namespace controller: the others would add API traffic (a ServiceAccount in
		// each new namespace) to what is measured.
		Controllers: []string{"namespace"},
	})
	if err != nil {
		return nil, err
	}
	c := &benchCluster{stop: cluster.Stop, kubeconfig: filepath.Join(dir, "operator.kubeconfig"), own: &writeCounter{counts: writeCounts{}}}
	user := func(token string) *rest.Config {
		return &rest.Config{Host: cluster.Config.Host, BearerToken: token,
			TLSClientConfig: rest.TLSClientConfig{CAData: cluster.Config.CAData}}
	}
	admin := c.counted(user(tokens[0]))
	admin.QPS, admin.Burst = -1, 0
	watch := rest.CopyConfig(admin)
	watch.ContentType = runtime.ContentTypeProtobuf
	c.raw = c.counted(user(tokens[2]))
	if c.admin, err = kubernetes.NewForConfig(admin); err == nil {
		if c.watch, err = kubernetes.NewForConfig(watch); err == nil {
			err = writeKubeconfig(c.kubeconfig, user(tokens[1]))
		}
	}
	if err != nil {
		return nil, errors.Join(err, cluster.Stop())
	}
	return c, nil
}

// writeTokens writes a token file for kube-apiserver that makes each of users a member of
// system:masters, and returns their tokens in the same order.
func writeTokens(dir string) ([]string, string, error) {
	var tokens []string
	var file strings.Builder
	for _, name := range users {
		token := rand.Text()
		tokens = append(tokens, token)
		fmt.Fprintf(&file, "%s,%s,%s,\"system:masters\"\n", token, name, name)
	}
	path := filepath.Join(dir, "tokens.csv")
	return tokens, path, os.WriteFile(path, []byte(file.String()), 0o600)
}

func writeKubeconfig(path string, config *rest.Config) error {
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.Clusters["bench"] = &clientcmdapi.Cluster{Server: config.Host, CertificateAuthorityData: config.CAData}
	kubeconfig.AuthInfos["bench"] = &clientcmdapi.AuthInfo{Token: config.BearerToken}
	kubeconfig.Contexts["bench"] = &clientcmdapi.Context{Cluster: "bench", AuthInfo: "bench"}
	kubeconfig.CurrentContext = "bench"
	return clientcmd.WriteToFile(*kubeconfig, path)
}

// counted returns a copy of config whose writes c.own counts.
func (c *benchCluster) counted(config *rest.Config) *rest.Config {
	config = rest.CopyConfig(config)
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper { return c.own.wrap(rt) })
	return config
}

// writes returns the write requests the API server has served so far by resource, less the
// benchmark's own, and less the API server's renewals of its own Lease (every 10 s): what the
// operator wrote, when it is the only other client that writes. The API server counts a request
// in its metrics after it has answered it, so a write its client saw answered is counted.
func (c *benchCluster) writes(ctx context.Context) (writeCounts, error) {
	own := c.own.snapshot()
	text, err := c.admin.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	served, err := requestWrites(bytes.NewReader(text))
	if err != nil {
		return nil, err
	}
	writes := served.minus(own)
	delete(writes, "leases.coordination.k8s.io")
	return writes, nil
}
