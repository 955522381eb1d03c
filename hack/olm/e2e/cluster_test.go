//go:build olm_e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/operator-framework/api/crds"
	operatorsv1 "github.com/operator-framework/api/pkg/operators/v1"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(operatorsv1alpha1.AddToScheme(s))
	utilruntime.Must(operatorsv1.AddToScheme(s))
	return s
}()

// waitTimeout bounds each wait for the cluster to reach a state.
const waitTimeout = 4 * time.Minute

// waitFor polls check every second until it returns true, and fails the test after
// waitTimeout with check's last word on what it saw.
func waitFor(t *testing.T, ctx context.Context, what string, check func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, waitTimeout, true, func(ctx context.Context) (bool, error) {
		done, status, err := check(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			last = err.Error()
		case err == nil:
			last = status
		}
		return done, nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last seen: %s", what, err, last)
	}
	t.Logf("%s", what)
}

func bin(parts ...string) string { return filepath.Join(append([]string{binDir}, parts...)...) }

// startNodeLayer gives the cluster what runs pods in a real one, minus the containers:
// kube-scheduler binds pods to a node, and kwok plays that node's kubelet (heartbeats, and pods
// marked Running and Ready once they are bound). No container ever runs.
func startNodeLayer(t *testing.T, ctx context.Context, c client.Client) {
	t.Helper()
	start(t, "kube-scheduler", nil, bin("k8s", "kube-scheduler"),
		"--kubeconfig="+adminKubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0")

	// kwok's own default stages: node initialize and heartbeat, pod ready, complete and delete.
	stages := filepath.Join(workDir, "kwok-stages.yaml")
	content := strings.Join([]string{nodefast.DefaultNodeInit, nodeheartbeat.DefaultNodeHeartbeat,
		podfast.DefaultPodReady, podfast.DefaultPodComplete, podfast.DefaultPodDelete}, "\n---\n")
	if err := os.WriteFile(stages, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	start(t, "kwok", nil, bin("kwok"), "--kubeconfig="+adminKubeconfig, "--config="+stages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-ip=127.0.0.1", "--node-port=0")

	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "kwok-node-0",
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
		},
		Status: corev1.NodeStatus{
			Capacity:    nodeResources(),
			Allocatable: nodeResources(),
		},
	}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the kwok node is Ready", func(ctx context.Context) (bool, string, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(node), node); err != nil {
			return false, "", err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, "Ready=" + string(cond.Status), nil
			}
		}
		return false, "no Ready condition", nil
	})
}

func nodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// startOLM installs OLM's CRDs and its namespaces and global OperatorGroup, as OLM's own
// install does, and runs its olm and catalog operators.
func startOLM(t *testing.T, ctx context.Context, c client.Client) {
	t.Helper()
	for _, crd := range []*apiextensionsv1.CustomResourceDefinition{
		crds.CatalogSource(), crds.ClusterServiceVersion(), crds.InstallPlan(), crds.OLMConfig(),
		crds.OperatorCondition(), crds.OperatorGroup(), crds.Operator(), crds.Subscription(),
	} {
		if err := c.Create(ctx, crd); err != nil {
			t.Fatalf("creating CRD %s: %v", crd.Name, err)
		}
		waitFor(t, ctx, "CRD "+crd.Name+" established", func(ctx context.Context) (bool, string, error) {
			if err := c.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil {
				return false, "", err
			}
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, "", nil
				}
			}
			return false, "not established", nil
		})
	}
	for _, ns := range []string{catalogNamespace, operatorNamespace} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range []client.Object{
		&operatorsv1.OLMConfig{ObjectMeta: metav1.ObjectMeta{Name: "cluster"}},
		// An OperatorGroup that selects no namespace in particular: all of them, the
		// AllNamespaces install mode, which is whisperer's only one.
		&operatorsv1.OperatorGroup{ObjectMeta: metav1.ObjectMeta{Name: "global-operators", Namespace: operatorNamespace}},
	} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}

	env := []string{"KUBECONFIG=" + adminKubeconfig, "OPERATOR_NAMESPACE=" + catalogNamespace, "OPERATOR_NAME=olm-operator"}
	start(t, "olm-operator", env, bin("olm", "olm"), "--namespace="+catalogNamespace)
	// Both operators serve health and metrics on a fixed port, 8080 without TLS and 8443 with
	// it (in the test's own network namespace); TLS for one of them keeps them apart.
	cert, key := selfSignedCert(t, "catalog-operator")
	start(t, "catalog-operator", env, bin("olm", "catalog"), "--namespace="+catalogNamespace,
		"--kubeconfig="+adminKubeconfig, "--tls-cert="+cert, "--tls-key="+key)
}

// selfSignedCert writes a certificate and key for 127.0.0.1 and returns their paths.
func selfSignedCert(t *testing.T, name string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(workDir, name+"-tls")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func describe(o client.Object) string {
	return fmt.Sprintf("%T %s/%s", o, o.GetNamespace(), o.GetName())
}
