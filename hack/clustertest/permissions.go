package clustertest

import (
	"context"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// leaseName is the leader election Lease whisperer holds (LeaderElectionID in main.go).
const leaseName = "whisperer.secret-syncer.jeffl.es"

// CheckPermissions asks the API server's authorizer whether the ServiceAccount an install
// created in namespace may do what whisperer does, and that it may not do three things beyond
// what whisperer asks for.
func CheckPermissions(t *testing.T, ctx context.Context, c client.Client, namespace, serviceAccount string) {
	t.Helper()
	for _, a := range []authorizationv1.ResourceAttributes{
		{Verb: "watch", Resource: "secrets"},
		{Verb: "create", Resource: "secrets", Namespace: "any-namespace"},
		{Verb: "delete", Resource: "secrets", Namespace: "any-namespace"},
		{Verb: "list", Resource: "namespaces"},
		{Verb: "create", Group: "events.k8s.io", Resource: "events", Namespace: "any-namespace"},
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: namespace},
		{Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Namespace: namespace, Name: leaseName},
		{Verb: "create", Group: "authentication.k8s.io", Resource: "tokenreviews"},
		{Verb: "create", Group: "authorization.k8s.io", Resource: "subjectaccessreviews"},
	} {
		if !allowed(t, ctx, c, namespace, serviceAccount, a) {
			t.Errorf("ServiceAccount %s/%s may not %s %s/%s %s in %q", namespace, serviceAccount, a.Verb, a.Group, a.Resource, a.Name, a.Namespace)
		}
	}
	for _, a := range []authorizationv1.ResourceAttributes{
		{Verb: "patch", Resource: "secrets", Namespace: "any-namespace"},
		{Verb: "delete", Resource: "namespaces"},
		{Verb: "list", Resource: "configmaps", Namespace: namespace},
	} {
		if allowed(t, ctx, c, namespace, serviceAccount, a) {
			t.Errorf("ServiceAccount %s/%s may %s %s in %q", namespace, serviceAccount, a.Verb, a.Resource, a.Namespace)
		}
	}
}

func allowed(t *testing.T, ctx context.Context, c client.Client, namespace, serviceAccount string, a authorizationv1.ResourceAttributes) bool {
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
