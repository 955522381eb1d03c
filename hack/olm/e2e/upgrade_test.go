//go:build olm_e2e

package e2e

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/hack/clustertest"
)

// The source the previous version mirrors before the upgrade, and where.
const (
	upgradeSourceNamespace = "upgrade-source"
	upgradeSource          = "pull-secret"
)

var upgradeTargets = []string{"upgrade-a", "upgrade-b"}

// mirrorBeforeUpgrade makes the previous version mirror a source into two namespaces, and
// returns the mirrors' UIDs by namespace.
func mirrorBeforeUpgrade(t *testing.T, ctx context.Context, c client.Client) map[string]string {
	t.Helper()
	for _, ns := range append([]string{upgradeSourceNamespace}, upgradeTargets...) {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	source := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: upgradeSource, Namespace: upgradeSourceNamespace,
			Labels:      map[string]string{"secret-syncer.jeffl.es/sync": "true"},
			Annotations: map[string]string{"secret-syncer.jeffl.es/namespaces": "upgrade-*"},
		},
		Data: map[string][]byte{"v": []byte("1")},
	}
	if err := c.Create(ctx, source); err != nil {
		t.Fatal(err)
	}
	return waitMirrors(t, ctx, c, "1")
}

// waitMirrors waits for a mirror of the upgrade source with data v=value in each target, and
// returns their UIDs by namespace.
func waitMirrors(t *testing.T, ctx context.Context, c client.Client, value string) map[string]string {
	t.Helper()
	uids := map[string]string{}
	clustertest.WaitFor(t, ctx, "mirrors with v="+value+" in "+fmt.Sprint(upgradeTargets), func(ctx context.Context) (bool, string, error) {
		for _, ns := range upgradeTargets {
			mirror := &corev1.Secret{}
			err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: upgradeSource}, mirror)
			if apierrors.IsNotFound(err) {
				return false, "no mirror in " + ns, nil
			}
			if err != nil {
				return false, "", err
			}
			if string(mirror.Data["v"]) != value || mirror.Labels["secret-syncer.jeffl.es/mirror"] != "true" {
				return false, fmt.Sprintf("mirror in %s: v=%s labels %v", ns, mirror.Data["v"], mirror.Labels), nil
			}
			uids[ns] = string(mirror.UID)
		}
		return true, "", nil
	})
	return uids
}

// manageAfterUpgrade checks that the upgrade left the previous version's mirrors alone (same
// objects: nothing owned them that OLM deleted with the old CSV), and that the new version
// manages them: a change of the source reaches them, a deleted one comes back.
func manageAfterUpgrade(t *testing.T, ctx context.Context, c client.Client, before map[string]string) {
	if len(before) != len(upgradeTargets) {
		t.Fatalf("no mirrors from before the upgrade: %v", before)
	}
	for ns, uid := range waitMirrors(t, ctx, c, "1") {
		if uid != before[ns] {
			t.Errorf("the mirror in %s was replaced during the upgrade (uid %s, was %s)", ns, uid, before[ns])
		}
	}
	source := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: upgradeSourceNamespace, Name: upgradeSource}, source); err != nil {
		t.Fatal(err)
	}
	source.Data["v"] = []byte("2")
	if err := c.Update(ctx, source); err != nil {
		t.Fatal(err)
	}
	updated := waitMirrors(t, ctx, c, "2")
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: upgradeTargets[0], Name: upgradeSource}}); err != nil {
		t.Fatal(err)
	}
	clustertest.WaitFor(t, ctx, "the deleted mirror restored by the new version", func(ctx context.Context) (bool, string, error) {
		mirror := &corev1.Secret{}
		err := c.Get(ctx, client.ObjectKey{Namespace: upgradeTargets[0], Name: upgradeSource}, mirror)
		if apierrors.IsNotFound(err) {
			return false, "not yet", nil
		}
		return err == nil && string(mirror.UID) != updated[upgradeTargets[0]] && string(mirror.Data["v"]) == "2", "same mirror", err
	})
}
