package clustertest

import (
	"context"
	"fmt"
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CreateNamespaces creates the namespaces.
func CreateNamespaces(t *testing.T, ctx context.Context, c client.Client, names ...string) {
	t.Helper()
	for _, ns := range names {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
}

// CreateSource creates a Secret labelled to be mirrored into the namespaces its annotation
// lists, with data.
func CreateSource(t *testing.T, ctx context.Context, c client.Client, key client.ObjectKey, namespaces string, data map[string][]byte) {
	t.Helper()
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: key.Name, Namespace: key.Namespace,
			Labels:      map[string]string{"secret-syncer.jeffl.es/sync": "true"},
			Annotations: map[string]string{"secret-syncer.jeffl.es/namespaces": namespaces},
		},
		Data: data,
	}); err != nil {
		t.Fatal(err)
	}
}

// WaitMirrors waits for a mirror named name, with exactly data, in each of the targets, and
// returns their UIDs by namespace.
func WaitMirrors(t *testing.T, ctx context.Context, c client.Client, name string, data map[string][]byte, targets []string) map[string]string {
	t.Helper()
	uids := map[string]string{}
	WaitFor(t, ctx, fmt.Sprintf("mirrors of %s with %d keys in %v", name, len(data), targets), func(ctx context.Context) (bool, string, error) {
		for _, ns := range targets {
			mirror := &corev1.Secret{}
			err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, mirror)
			if apierrors.IsNotFound(err) {
				return false, "no mirror in " + ns, nil
			}
			if err != nil {
				return false, "", err
			}
			if !maps.EqualFunc(mirror.Data, data, func(a, b []byte) bool { return string(a) == string(b) }) ||
				mirror.Labels["secret-syncer.jeffl.es/mirror"] != "true" {
				return false, fmt.Sprintf("mirror in %s: data %q, labels %v", ns, mirror.Data, mirror.Labels), nil
			}
			uids[ns] = string(mirror.UID)
		}
		return true, "", nil
	})
	return uids
}
