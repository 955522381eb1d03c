//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	serviceAccountsAnnotation = "secret-syncer.jeffl.es/service-accounts"
	imagePullSecretsRecord    = "secret-syncer.jeffl.es/image-pull-secrets" //nolint:gosec // G101: an annotation's name, not a credential
)

// TestKillBetweenMirrorAndServiceAccountWrites kills the operator after it wrote the mirrors of a
// pull secret but before it attached them to the default ServiceAccounts (their patches hang in
// the fault proxy): a restart attaches them. Then the source is deleted while no operator runs:
// the next start takes the entries out, then deletes the mirrors.
func TestKillBetweenMirrorAndServiceAccountWrites(t *testing.T) {
	e := newEnv(t)
	targets := names("sa", 20, 2)
	e.createNamespaces(append([]string{"sa-src"}, targets...)...)
	e.waitDefaultServiceAccounts(targets)
	proxy := e.startFaultProxy("attaching")
	proxy.setFaults(func(_ int, _, resource string) fault {
		if resource == "serviceaccounts" {
			return hang
		}
		return pass
	})
	first := e.runOperator("attaching", proxy.user, proxy.kubeconfig(t))
	source := types.NamespacedName{Namespace: "sa-src", Name: "registry"}
	e.createPullSecretSource(source, "sa-*")
	want := sets.New(targets...)
	e.waitMirrors(source, want, 2*time.Minute)
	eventually(t, time.Minute, "a ServiceAccount patch hung in the proxy", func(context.Context) error {
		for _, w := range proxy.seen() {
			if w.fault == hang {
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	first.kill()
	proxy.releaseHung() // what reaches the API server now comes from no operator
	if attached := e.attachedIn(t.Context(), targets); attached > 0 {
		t.Logf("%d ServiceAccounts were attached before the kill", attached)
	}

	restarted := e.startOperator("restarted")
	took := eventually(t, 2*time.Minute, "every default ServiceAccount attached", func(ctx context.Context) error {
		if n := e.attachedIn(ctx, targets); n != len(targets) {
			return fmt.Errorf("%d of %d", n, len(targets))
		}
		return nil
	})
	t.Logf("after a kill -9 between the mirror writes and the ServiceAccount writes, a restart attached all %d in %s", len(targets), took)
	restarted.stop()

	e.deleteSecret(source.Namespace, source.Name)
	e.startOperator("after-delete")
	took = eventually(t, 2*time.Minute, "entries and mirrors gone", func(ctx context.Context) error {
		if n := e.attachedIn(ctx, targets); n > 0 {
			return fmt.Errorf("%d ServiceAccounts still name the pull secret", n)
		}
		return e.checkMirrors(ctx, source, sets.New[string]())
	})
	t.Logf("a source deleted while no operator ran: its entries and mirrors gone %s after the start", took)
}

func (e *env) waitDefaultServiceAccounts(namespaces []string) {
	e.t.Helper()
	eventually(e.t, time.Minute, "the default ServiceAccounts", func(ctx context.Context) error {
		for _, ns := range namespaces {
			if err := e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{}); err != nil {
				return err
			}
		}
		return nil
	})
}

func (e *env) createPullSecretSource(key types.NamespacedName, targets string) {
	e.t.Helper()
	src := &corev1.Secret{}
	src.Namespace, src.Name = key.Namespace, key.Name
	src.Labels = map[string]string{syncLabel: "true"}
	src.Annotations = map[string]string{namespacesAnnotation: targets, serviceAccountsAnnotation: "default"}
	src.Type = corev1.SecretTypeDockerConfigJson
	src.Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}
	if err := e.admin.Create(e.t.Context(), src); err != nil {
		e.t.Fatal(err)
	}
}

// attachedIn counts the default ServiceAccounts of namespaces that name the pull secret
// "registry", as whisperer added it.
func (e *env) attachedIn(ctx context.Context, namespaces []string) int {
	e.t.Helper()
	n := 0
	for _, ns := range namespaces {
		sa := &corev1.ServiceAccount{}
		if err := e.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "default"}, sa); err != nil {
			e.t.Fatal(err)
		}
		named := slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == "registry" })
		if named && sa.Annotations[imagePullSecretsRecord] == "registry" {
			n++
		}
	}
	return n
}
