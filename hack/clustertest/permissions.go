package clustertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// leaseName is the leader election Lease whisperer holds (LeaderElectionID in main.go).
const leaseName = "whisperer.secret-syncer.jeffl.es"

// CheckPermissions asks the API server's authorizer whether the ServiceAccount an install
// created in namespace may do what whisperer does, and that it may not do things beyond what
// whisperer asks for: among them, under OLM's AllNamespaces install mode, where the leader
// election Role's rules hold in every namespace, touch another Lease or delete its own.
func CheckPermissions(t *testing.T, ctx context.Context, c client.Client, namespace, serviceAccount string) {
	t.Helper()
	for _, a := range []authorizationv1.ResourceAttributes{
		{Verb: "watch", Resource: "secrets"},
		{Verb: "create", Resource: "secrets", Namespace: "any-namespace"},
		{Verb: "delete", Resource: "secrets", Namespace: "any-namespace"},
		{Verb: "watch", Resource: "configmaps"},
		{Verb: "update", Resource: "configmaps", Namespace: "any-namespace"},
		{Verb: "patch", Resource: "serviceaccounts", Namespace: "any-namespace"},
		{Verb: "list", Resource: "namespaces"},
		{Verb: "get", Group: "events.k8s.io", Resource: "events", Namespace: "any-namespace"},
		{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: "any-namespace"},
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: namespace},
		{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: namespace, Name: leaseName},
		{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"},
		{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"},
	} {
		if !Allowed(t, ctx, c, namespace, serviceAccount, a) {
			t.Errorf("ServiceAccount %s/%s may not %s %s/%s %s in %q", namespace, serviceAccount, a.Verb, a.Group, a.Resource, a.Name, a.Namespace)
		}
	}
	for _, a := range []authorizationv1.ResourceAttributes{
		{Verb: "patch", Resource: "secrets", Namespace: "any-namespace"},
		{Verb: "delete", Resource: "namespaces"},
		{Verb: "patch", Resource: "configmaps", Namespace: "any-namespace"},
		{Verb: "delete", Resource: "serviceaccounts", Namespace: "any-namespace"},
		{Verb: "create", Resource: "serviceaccounts", Namespace: "any-namespace"},
		{Verb: "list", Resource: "pods", Namespace: namespace},
		{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: corev1.NamespaceNodeLease, Name: NodeName},
		{Verb: "delete", Group: "coordination.k8s.io", Resource: "leases", Namespace: namespace, Name: leaseName},
	} {
		if Allowed(t, ctx, c, namespace, serviceAccount, a) {
			t.Errorf("ServiceAccount %s/%s may %s %s/%s %s in %q", namespace, serviceAccount, a.Verb, a.Group, a.Resource, a.Name, a.Namespace)
		}
	}
}

// CheckLeaseRequests makes real requests with a token of the ServiceAccount an install created in
// namespace, once whisperer holds its leader election Lease there: reading that Lease works, and
// updating a Lease that the admin creates for the purpose in kube-node-lease, where nodes keep
// their heartbeats, is Forbidden.
func (e Env) CheckLeaseRequests(t *testing.T, ctx context.Context, c client.Client, namespace, serviceAccount string) {
	t.Helper()
	cfg := rest.AnonymousClientConfig(e.RESTConfig(t))
	cfg.BearerToken = e.CreateToken(t, ctx, namespace, serviceAccount)
	operator, err := client.New(cfg, client.Options{Scheme: c.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := operator.Get(ctx, client.ObjectKey{Namespace: namespace, Name: leaseName}, &coordinationv1.Lease{}); err != nil {
		t.Errorf("reading whisperer's Lease %s/%s with the token of %s: %v", namespace, leaseName, serviceAccount, err)
	}
	heartbeat := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: corev1.NamespaceNodeLease, Name: "clustertest-heartbeat"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("clustertest")},
	}
	if err := c.Create(ctx, heartbeat); err != nil {
		t.Fatal(err)
	}
	heartbeat.Spec.HolderIdentity = ptr.To(serviceAccount)
	if err := operator.Update(ctx, heartbeat); !apierrors.IsForbidden(err) {
		t.Errorf("updating Lease %s/%s with the token of %s: %v, want Forbidden", heartbeat.Namespace, heartbeat.Name, serviceAccount, err)
	} else {
		t.Logf("updating Lease %s/%s with the token of %s: %v", heartbeat.Namespace, heartbeat.Name, serviceAccount, err)
	}
}

// Allowed asks the API server's authorizer whether the ServiceAccount namespace/serviceAccount may
// do a: a SubjectAccessReview, as kubectl auth can-i --as does.
func Allowed(t *testing.T, ctx context.Context, c client.Client, namespace, serviceAccount string, a authorizationv1.ResourceAttributes) bool {
	t.Helper()
	review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:               "system:serviceaccount:" + namespace + ":" + serviceAccount,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
		ResourceAttributes: &a,
	}}
	if err := c.Create(ctx, review); err != nil {
		t.Fatal(err)
	}
	return review.Status.Allowed
}

// forbidden starts the API server's refusal of a request that RBAC does not allow ("secrets is
// forbidden: User \"system:serviceaccount:...\" cannot list resource..."), as whisperer logs it.
const forbidden = "is forbidden: User "

// CheckNothingForbidden checks that whisperer, in every run of StartOperator in this test (they
// share a log), had no request refused by RBAC: a right its install did not grant.
func (e Env) CheckNothingForbidden(t *testing.T) {
	t.Helper()
	logPath := filepath.Join(e.WorkDir, operatorName+".log")
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if refused := linesWith(string(log), 5, forbidden); refused != "" {
		t.Errorf("whisperer made requests its ServiceAccount may not make (%s); the last ones:\n%s", logPath, refused)
	}
}
