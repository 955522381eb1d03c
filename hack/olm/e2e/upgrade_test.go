//go:build olm_e2e

package e2e

import (
	"context"
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
	clustertest.CreateNamespaces(t, ctx, c, append([]string{upgradeSourceNamespace}, upgradeTargets...)...)
	clustertest.CreateSource(t, ctx, c, client.ObjectKey{Namespace: upgradeSourceNamespace, Name: upgradeSource}, "upgrade-*",
		map[string][]byte{"v": []byte("1")})
	return waitMirrors(t, ctx, c, "1")
}

// waitMirrors waits for a mirror of the upgrade source with data v=value in each target, and
// returns their UIDs by namespace.
func waitMirrors(t *testing.T, ctx context.Context, c client.Client, value string) map[string]string {
	t.Helper()
	return clustertest.WaitMirrors(t, ctx, c, upgradeSource, map[string][]byte{"v": []byte(value)}, upgradeTargets)
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
