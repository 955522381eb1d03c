package main

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

const (
	pullSecretName            = "registry"
	annotationServiceAccounts = labelPrefix + "/service-accounts"
	// attached is the version the ServiceAccount observer gives a ServiceAccount whose
	// imagePullSecrets name the pull secret.
	attached = "attached"
)

// serviceAccountKind is what the benchmark watches of ServiceAccounts: whether each names the
// pull secret in its imagePullSecrets. It is no kind of source, so it builds nothing.
var serviceAccountKind = kind{
	name:     "ServiceAccount",
	resource: "serviceaccounts",
	object:   func() runtime.Object { return &corev1.ServiceAccount{} },
	version: func(obj runtime.Object) string {
		for _, ref := range obj.(*corev1.ServiceAccount).ImagePullSecrets {
			if ref.Name == pullSecretName {
				return attached
			}
		}
		return ""
	},
}

// serviceAccountPhases measures a pull secret mirrored into every target namespace and attached to
// the default ServiceAccount of each: its creation, a resync, its deletion. Each phase lasts until
// the benchmark's watches have seen every mirror and every default ServiceAccount carry the entry,
// or lose both.
func (r *run) serviceAccountPhases(ctx context.Context, targets []string) error {
	accounts, err := observe(ctx, r.cluster.watch.CoreV1().RESTClient(), serviceAccountKind, "")
	if err != nil {
		return err
	}
	defer accounts.close()
	// The control plane runs no serviceaccount controller, which would write a ServiceAccount
	// into every namespace during other phases: the benchmark creates the default ones, untimed.
	if err := parallel(len(targets), 32, func(i int) error {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: targets[i]}}
		_, err := r.cluster.admin.CoreV1().ServiceAccounts(targets[i]).Create(ctx, sa, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	if _, err := waitFor(ctx, time.Now(), "default ServiceAccounts", func() bool { return accounts.count("") == len(targets) }); err != nil {
		return err
	}
	mirrors, err := observe(ctx, r.cluster.watch.CoreV1().RESTClient(), secretKind,
		labelPrefix+"/namespace="+sourceNamespace+","+labelPrefix+"/name="+pullSecretName)
	if err != nil {
		return err
	}
	defer mirrors.close()
	n := len(targets)
	// One mirror and one ServiceAccount write (a patch) per namespace; one Event on creation.
	writes := writeCounts{secretKind.resource: n, serviceAccountKind.resource: n}
	steps := []phase{
		{"create pull secret, attach to default ServiceAccounts", func(ctx context.Context) (time.Duration, time.Duration, error) {
			source := secretKind.build(metav1.ObjectMeta{
				Name: pullSecretName, Namespace: sourceNamespace,
				Labels:      map[string]string{labelPrefix + "/sync": "true"},
				Annotations: map[string]string{annotationNamespaces: targetPrefix + "*", annotationServiceAccounts: "default"},
			}, r.secretSize, "v1").(*corev1.Secret)
			source.Type = corev1.SecretTypeDockerConfigJson
			source.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{"registry.example.com":{"auth":"YmVuY2g6YmVuY2g="}}}`)
			start := time.Now()
			if _, err := secretKind.create(ctx, r.admin(), source); err != nil {
				return 0, 0, err
			}
			took, err := waitFor(ctx, start, "every mirror attached", func() bool {
				return mirrors.count("v1") == n && accounts.count(attached) == n
			})
			return took, 0, err
		}, expect{writes, 1}, ""},
		{"resync pull secret (source touched)", func(ctx context.Context) (time.Duration, time.Duration, error) {
			start := time.Now()
			err := secretKind.patch(ctx, r.admin(), sourceNamespace, pullSecretName, touchPatch)
			return time.Since(start), 0, err
		}, expect{writeCounts{}, 0}, ""},
		{"delete pull secret, detach from default ServiceAccounts", func(ctx context.Context) (time.Duration, time.Duration, error) {
			start := time.Now()
			if err := secretKind.delete(ctx, r.admin(), sourceNamespace, pullSecretName, nil); err != nil {
				return 0, 0, err
			}
			took, err := waitFor(ctx, start, "every mirror detached and deleted", func() bool {
				return mirrors.total() == 0 && accounts.count(attached) == 0
			})
			return took, 0, err
		}, expect{writes, 0}, ""},
	}
	return r.measureEach(ctx, steps, nil)
}
