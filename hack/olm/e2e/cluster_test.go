//go:build olm_e2e

package e2e

import (
	"context"
	"testing"

	"github.com/operator-framework/api/crds"
	operatorsv1 "github.com/operator-framework/api/pkg/operators/v1"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/hack/clustertest"
)

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(operatorsv1alpha1.AddToScheme(s))
	utilruntime.Must(operatorsv1.AddToScheme(s))
	return s
}()

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
		clustertest.WaitFor(t, ctx, "CRD "+crd.Name+" established", func(ctx context.Context) (bool, string, error) {
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

	olmEnv := []string{"KUBECONFIG=" + env.Kubeconfig, "OPERATOR_NAMESPACE=" + catalogNamespace, "OPERATOR_NAME=olm-operator"}
	// Both operators serve health and metrics on a fixed port: 8443 with TLS, 8080 without. 8443 is
	// the port of whisperer's metrics in its Deployment, where the test runs it, so neither gets
	// TLS. Nothing here reads their health or metrics; the second to bind 8080 logs that it is
	// taken and carries on.
	env.Start(t, "olm-operator", olmEnv, env.Bin("olm", "olm"), "--namespace="+catalogNamespace)
	env.Start(t, "catalog-operator", olmEnv, env.Bin("olm", "catalog"), "--namespace="+catalogNamespace,
		"--kubeconfig="+env.Kubeconfig)
}
