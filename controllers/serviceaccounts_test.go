package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// Attaching mirrored pull secrets to ServiceAccounts' imagePullSecrets.

// pullSecretSource returns a source of type kubernetes.io/dockerconfigjson in namespace, named
// name, asking for targets and to be attached to accounts.
func pullSecretSource(namespace, name, accounts string, targets ...string) *corev1.Secret {
	s := sourceSecret(namespace, name, targets...)
	s.Type = corev1.SecretTypeDockerConfigJson
	s.Data = map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}}`)}
	s.Annotations[mirror.AnnotationServiceAccounts] = accounts
	return s
}

func getServiceAccount(t *testing.T, namespace, name string) *corev1.ServiceAccount {
	t.Helper()
	sa := &corev1.ServiceAccount{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, sa); err != nil {
		t.Fatalf("reading ServiceAccount %s/%s: %v", namespace, name, err)
	}
	return sa
}

func pullSecretNames(sa *corev1.ServiceAccount) []string {
	var names []string
	for _, ref := range sa.ImagePullSecrets {
		names = append(names, ref.Name)
	}
	return names
}

// waitPullSecrets waits until the ServiceAccount's imagePullSecrets are exactly want, in order,
// and whisperer's annotation lists exactly added.
func waitPullSecrets(t *testing.T, namespace, name string, want []string, added string) {
	t.Helper()
	eventually(t, fmt.Sprintf("ServiceAccount %s/%s with imagePullSecrets %v", namespace, name, want), func() error {
		sa := getServiceAccount(t, namespace, name)
		if got := pullSecretNames(sa); !slices.Equal(got, want) {
			return fmt.Errorf("imagePullSecrets %v", got)
		}
		if got := sa.Annotations[mirror.AnnotationImagePullSecrets]; got != added {
			return fmt.Errorf("%s = %q, want %q", mirror.AnnotationImagePullSecrets, got, added)
		}
		return nil
	})
}

// createServiceAccount creates a ServiceAccount, and waits for the namespace's default one, which
// kube-controller-manager creates.
func createServiceAccount(t *testing.T, sa *corev1.ServiceAccount) {
	t.Helper()
	create(t, sa)
}

func waitDefaultServiceAccount(t *testing.T, namespaces ...string) {
	t.Helper()
	for _, ns := range namespaces {
		eventually(t, "the default ServiceAccount of "+ns, func() error {
			return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "default"}, &corev1.ServiceAccount{})
		})
	}
}

// attachedSource starts an operator and a pull secret source in a namespace of its own, mirrored
// into target and attached to its default ServiceAccount, and waits for that.
func attachedSource(t *testing.T) (target string, op *operator, source *corev1.Secret) {
	t.Helper()
	ns := names("source", "a")
	createNamespaces(t, ns...)
	waitDefaultServiceAccount(t, ns[1])
	op = startOperator(t)
	source = pullSecretSource(ns[0], "registry", "default", ns[1])
	create(t, source)
	waitPullSecrets(t, ns[1], "default", []string{"registry"}, "registry")
	return ns[1], op, source
}

func TestPullSecretIsAttachedToTheNamedServiceAccounts(t *testing.T) {
	ns := names("source", "a", "b")
	createNamespaces(t, ns...)
	waitDefaultServiceAccount(t, ns[1:]...)
	for _, target := range ns[1:] {
		createServiceAccount(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "builder", Namespace: target}})
		createServiceAccount(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "app.v2", Namespace: target}})
	}
	startOperator(t)
	attachedBefore := testutil.ToFloat64(attachments.WithLabelValues(string(mirror.Attach), "succeeded"))
	source := pullSecretSource(ns[0], "registry", "*, !builder", ns[1], ns[2])
	create(t, source)
	waitForMirrorsOf(t, source, ns[1], ns[2])
	for _, target := range ns[1:] {
		waitPullSecrets(t, target, "default", []string{"registry"}, "registry")
		waitPullSecrets(t, target, "app.v2", []string{"registry"}, "registry")
	}
	waitReconciled(t, source)
	for _, target := range ns[1:] {
		if got := pullSecretNames(getServiceAccount(t, target, "builder")); len(got) > 0 {
			t.Errorf("the excluded ServiceAccount builder in %s got %v", target, got)
		}
	}
	waitForEvent(t, source, ReasonMirrored, "attached to 4")

	// A ServiceAccount created later gets it within a second.
	created := time.Now()
	createServiceAccount(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "late", Namespace: ns[1]}})
	waitPullSecrets(t, ns[1], "late", []string{"registry"}, "registry")
	if took := time.Since(created); took > 2*time.Second {
		t.Errorf("a new ServiceAccount got the pull secret after %s, want within a second", took)
	}
	eventually(t, "five attaches counted", func() error {
		if got := testutil.ToFloat64(attachments.WithLabelValues(string(mirror.Attach), "succeeded")) - attachedBefore; got != 5 {
			return fmt.Errorf("whisperer_service_account_operations_total{operation=attach,result=succeeded} grew by %v, want 5", got)
		}
		return nil
	})
}

// whisperer writes its entry and its annotation, nothing else: the other entries (before and
// after, in order), annotations (a workload identity binding) and fields of a ServiceAccount
// survive; an entry there already is never recorded, so never removed.
func TestAttachingKeepsWhatOthersWrote(t *testing.T) {
	ns := names("source", "a")
	createNamespaces(t, ns...)
	sa := &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns[1], Annotations: map[string]string{
			"iam.gke.io/gcp-service-account": "app@project.iam.gserviceaccount.com",
		}},
		ImagePullSecrets:             []corev1.LocalObjectReference{{Name: "first"}},
		AutomountServiceAccountToken: ptr.To(false),
		Secrets:                      []corev1.ObjectReference{{Name: "legacy-token"}},
	}
	createServiceAccount(t, sa)
	already := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "already", Namespace: ns[1]},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "registry"}}}
	createServiceAccount(t, already)
	startOperator(t)
	source := pullSecretSource(ns[0], "registry", "app,already", ns[1])
	create(t, source)
	waitPullSecrets(t, ns[1], "app", []string{"first", "registry"}, "registry")
	edit(t, getServiceAccount(t, ns[1], "app"), func(sa *corev1.ServiceAccount) {
		sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: "last"})
	})
	waitReconciled(t, source)
	got := getServiceAccount(t, ns[1], "app")
	if names := pullSecretNames(got); !slices.Equal(names, []string{"first", "registry", "last"}) {
		t.Errorf("imagePullSecrets %v, want the others' entries kept in their order", names)
	}
	if got.Annotations["iam.gke.io/gcp-service-account"] == "" || got.AutomountServiceAccountToken == nil || *got.AutomountServiceAccountToken ||
		len(got.Secrets) != 1 {
		t.Errorf("ServiceAccount %+v: want its other annotations and fields kept", got)
	}
	waitPullSecrets(t, ns[1], "already", []string{"registry"}, "")

	// Detached, whisperer removes only what it added.
	edit(t, source, func(s *corev1.Secret) { s.Annotations[mirror.AnnotationServiceAccounts] = "none" })
	waitPullSecrets(t, ns[1], "app", []string{"first", "last"}, "")
	waitPullSecrets(t, ns[1], "already", []string{"registry"}, "")
	if got := getServiceAccount(t, ns[1], "app").Annotations["iam.gke.io/gcp-service-account"]; got == "" {
		t.Error("a detach removed someone else's annotation")
	}
}

func TestHandRemovedEntryIsPutBack(t *testing.T) {
	target, _, _ := attachedSource(t)
	edit(t, getServiceAccount(t, target, "default"), func(sa *corev1.ServiceAccount) { sa.ImagePullSecrets = nil })
	waitPullSecrets(t, target, "default", []string{"registry"}, "registry")
}

// Whatever makes the source stop asking for a ServiceAccount takes whisperer's entry out, before
// the mirror is deleted: a ServiceAccount never names a pull secret that is gone.
func TestEntriesGoWhenTheSourceNoLongerAsks(t *testing.T) {
	for name, change := range map[string]func(t *testing.T, s *corev1.Secret, target string){
		"source deleted": func(t *testing.T, s *corev1.Secret, _ string) { deleteObject(t, s) },
		"sync label removed": func(t *testing.T, s *corev1.Secret, _ string) {
			edit(t, s, func(s *corev1.Secret) { delete(s.Labels, mirror.LabelSync) })
		},
		"annotation removed": func(t *testing.T, s *corev1.Secret, _ string) {
			edit(t, s, func(s *corev1.Secret) { delete(s.Annotations, mirror.AnnotationServiceAccounts) })
		},
		"namespace not a target": func(t *testing.T, s *corev1.Secret, _ string) {
			edit(t, s, func(s *corev1.Secret) { s.Annotations[mirror.AnnotationNamespaces] = "elsewhere" })
		},
		"replaced by an Opaque Secret": func(t *testing.T, s *corev1.Secret, _ string) {
			deleteObject(t, s)
			opaque := sourceSecret(s.Namespace, s.Name, s.Annotations[mirror.AnnotationNamespaces])
			opaque.Annotations[mirror.AnnotationServiceAccounts] = "default"
			create(t, opaque)
		},
	} {
		t.Run(name, func(t *testing.T) {
			target, op, source := attachedSource(t)
			ns := []string{source.Namespace, target}
			change(t, source, target)
			waitPullSecrets(t, target, "default", nil, "")
			switch name {
			case "replaced by an Opaque Secret":
				waitForEvent(t, source, ReasonInvalidServiceAccounts, "not pull secrets")
				return
			case "annotation removed":
				waitForMirrorsOf(t, source, ns[1]) // the mirror stays; only the entry goes
				return
			}
			waitForMirrorsOf(t, source)
			writes := op.writes.in(ns[1])
			detach := slices.IndexFunc(writes, func(w string) bool { return strings.HasPrefix(w, "PATCH ") && strings.Contains(w, "/serviceaccounts/") })
			remove := slices.IndexFunc(writes, func(w string) bool { return strings.HasPrefix(w, "DELETE ") && strings.Contains(w, "/secrets/") })
			if detach < 0 || remove < 0 || detach > remove {
				t.Errorf("writes in %s: %v; want the ServiceAccount patched before the mirror is deleted", ns[1], writes)
			}
		})
	}
}

func TestAttachingOnlyForPullSecrets(t *testing.T) {
	ns := names("source", "a")
	createNamespaces(t, ns...)
	waitDefaultServiceAccount(t, ns[1])
	startOperator(t)
	opaque := sourceSecret(ns[0], "opaque", ns[1])
	opaque.Annotations[mirror.AnnotationServiceAccounts] = "default"
	create(t, opaque)
	waitForEvent(t, opaque, ReasonInvalidServiceAccounts, "Secrets of type Opaque are not pull secrets")
	waitForMirrorsOf(t, opaque, ns[1])
	waitReconciled(t, opaque)
	if got := pullSecretNames(getServiceAccount(t, ns[1], "default")); len(got) > 0 {
		t.Errorf("an Opaque Secret was attached: %v", got)
	}
}

// A writer that keeps removing whisperer's entry (another controller, a GitOps tool) gets a few
// puts back, then a Warning, and then is left alone: bounded writes, no hot loop.
func TestAnotherWriterRemovingTheEntryIsNotFought(t *testing.T) {
	target, op, source := attachedSource(t)
	ns := []string{source.Namespace, target}

	ctx, stop := context.WithCancel(context.Background())
	var remover sync.WaitGroup
	removals := 0
	remover.Go(func() {
		for ctx.Err() == nil {
			sa := &corev1.ServiceAccount{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns[1], Name: "default"}, sa); err == nil && len(sa.ImagePullSecrets) > 0 {
				sa.ImagePullSecrets = nil
				if k8s.Update(ctx, sa) == nil {
					removals++
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	waitForEvent(t, source, ReasonServiceAccountContested, ns[1]+"/default")
	if got := sumSeries(t, "whisperer_service_accounts_contested", nil); got != 1 {
		t.Errorf("whisperer_service_accounts_contested = %v at the Warning, want 1", got)
	}
	patchesAtWarning := len(serviceAccountPatches(op, ns[1]))
	time.Sleep(5 * time.Second)
	stop()
	remover.Wait()
	patches := serviceAccountPatches(op, ns[1])
	t.Logf("%d removals by the other writer, %d patches by whisperer (%d when it warned)", removals, len(patches), patchesAtWarning)
	if want := 1 + maxReattaches; patchesAtWarning > want {
		t.Errorf("%d patches of the ServiceAccount before the Warning, want at most %d (the attach and %d puts back)", patchesAtWarning, want, maxReattaches)
	}
	if len(patches) != patchesAtWarning {
		t.Errorf("%d more patches after the Warning while backing off, want none", len(patches)-patchesAtWarning)
	}
}

func serviceAccountPatches(op *operator, namespace string) []string {
	return slices.DeleteFunc(op.writes.in(namespace), func(w string) bool {
		return !strings.HasPrefix(w, "PATCH ") || !strings.Contains(w, "/serviceaccounts/")
	})
}

func TestAttachedConvergedClusterCostsNoWrite(t *testing.T) {
	target, op, source := attachedSource(t)
	ns := []string{source.Namespace, target}
	op.stop()
	restarted := startOperator(t, withResync(300*time.Millisecond))
	edit(t, source, func(s *corev1.Secret) { s.Annotations["touched"] = "to reconcile it" })
	waitReconciled(t, source)
	waitResyncs(t, source, 3)
	if writes := restarted.writes.in(ns...); len(writes) > 0 {
		t.Errorf("a restart and resyncs of a converged attached source wrote %v", writes)
	}
}
