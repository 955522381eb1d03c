package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// Attaching mirrored pull secrets to ServiceAccounts' imagePullSecrets
// (mirror.AnnotationServiceAccounts).
//
// ServiceAccounts carry no label of whisperer's, so their cache holds every ServiceAccount of
// the cluster, slimmed (slimServiceAccount) to what attaching reads: name, annotations and
// imagePullSecrets. imagePullSecrets is an atomic list, which any patch replaces whole: a write
// is a JSON patch that tests the resourceVersion planned from, then sets the whole list and
// whisperer's annotation, so it never loses someone else's change. An entry that someone else
// keeps removing is put back a few times, then left alone for a while, with a Warning (fights).

const (
	// maxReattaches is how many times in reattachWindow whisperer puts back an entry someone
	// removed before it backs off.
	maxReattaches  = 3
	reattachWindow = 10 * time.Minute
	// firstBackoff doubles at each backoff, up to maxBackoff.
	firstBackoff = time.Minute
	maxBackoff   = time.Hour
)

// slimServiceAccount keeps of a ServiceAccount what attaching reads: its name, annotations
// (whisperer's records what it added; the others tell the JSON patch whether annotations exist)
// and imagePullSecrets.
func slimServiceAccount(obj any) (any, error) {
	obj, err := stripManagedFields(obj)
	if sa, ok := obj.(*corev1.ServiceAccount); ok {
		sa.Labels, sa.OwnerReferences, sa.Secrets, sa.AutomountServiceAccountToken = nil, nil, nil, nil
	}
	return obj, err
}

// serviceAccountStore reads the cached ServiceAccounts, with the writes whisperer made that the
// cache does not show yet laid over them.
type serviceAccountStore struct {
	indexer toolscache.Indexer

	mu sync.Mutex
	// written holds, by ServiceAccount, the write whisperer made last: what it changed, from
	// which resourceVersion, to which.
	written map[types.NamespacedName]written
}

type written struct {
	from string
	now  mirror.ServiceAccount
}

func newServiceAccountStore(ctx context.Context, c cache.Cache) (*serviceAccountStore, error) {
	informer, err := sharedInformer(ctx, c, &corev1.ServiceAccount{})
	if err != nil {
		return nil, err
	}
	return &serviceAccountStore{indexer: informer.GetIndexer(), written: map[types.NamespacedName]written{}}, nil
}

// in returns the ServiceAccounts of namespace. A ServiceAccount whisperer wrote is as whisperer
// wrote it while the cache still shows the version the write was made from.
func (s *serviceAccountStore) in(namespace string) []mirror.ServiceAccount {
	objects, _ := s.indexer.ByIndex(toolscache.NamespaceIndex, namespace)
	accounts := make([]mirror.ServiceAccount, 0, len(objects))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, obj := range objects {
		sa, ok := obj.(*corev1.ServiceAccount)
		if !ok {
			continue
		}
		key := types.NamespacedName{Namespace: sa.Namespace, Name: sa.Name}
		if w, ok := s.written[key]; ok {
			if w.from == sa.ResourceVersion {
				accounts = append(accounts, w.now)
				continue
			}
			delete(s.written, key) // the cache shows the write, or a later change
		}
		accounts = append(accounts, viewOf(sa))
	}
	return accounts
}

func (s *serviceAccountStore) wrote(from string, now mirror.ServiceAccount) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written[types.NamespacedName{Namespace: now.Namespace, Name: now.Name}] = written{from: from, now: now}
}

func viewOf(sa *corev1.ServiceAccount) mirror.ServiceAccount {
	v := mirror.ServiceAccount{
		Namespace: sa.Namespace, Name: sa.Name, ResourceVersion: sa.ResourceVersion,
		Added: mirror.AddedOf(sa.Annotations[mirror.AnnotationImagePullSecrets]),
	}
	for _, ref := range sa.ImagePullSecrets {
		v.PullSecrets = append(v.PullSecrets, ref.Name)
	}
	return v
}

// attachment makes one write to a ServiceAccount's imagePullSecrets and records what it did in o.
func (r *MirrorReconciler) attachment(ctx context.Context, w *writing, a mirror.Attachment, o *outcome) {
	account := types.NamespacedName{Namespace: a.Account.Namespace, Name: a.Account.Name}
	if a.Reattaching() {
		if until, contested := r.fights.reattach(w.state.Key, account); contested {
			o.contest(fmt.Sprintf("%s (until %s)", account, until.UTC().Format(time.RFC3339)), until)
			return
		}
	}
	err := r.patchServiceAccount(ctx, a)
	countAttachment(a.Kind, err)
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err != nil && a.Kind == mirror.Detach:
		o.detachFailed.Insert(a.Account.Namespace)
		o.errs = append(o.errs, err)
	case err != nil:
		o.errs = append(o.errs, err)
	case a.Kind == mirror.Attach:
		o.attached++
	default:
		o.detached++
	}
	ctrl.LoggerFrom(ctx).V(1).Info("ServiceAccount written", "targetNamespace", account.Namespace, "serviceAccount", account.Name, "action", a.Kind, "error", err)
}

// patchServiceAccount writes a: a JSON patch that tests the resourceVersion planned from, sets the
// whole imagePullSecrets list (an atomic list), and whisperer's record of what it added.
func (r *MirrorReconciler) patchServiceAccount(ctx context.Context, a mirror.Attachment) error {
	if err := r.leading(); err != nil {
		return err
	}
	now := a.Account
	now.PullSecrets, now.Added = slices.Clone(now.PullSecrets), slices.Clone(now.Added)
	if a.Kind == mirror.Attach {
		now.PullSecrets = append(now.PullSecrets, a.Secret)
		if !slices.Contains(now.Added, a.Secret) {
			now.Added = append(now.Added, a.Secret)
		}
	} else {
		now.PullSecrets = slices.DeleteFunc(now.PullSecrets, func(name string) bool { return name == a.Secret })
		now.Added = slices.DeleteFunc(now.Added, func(name string) bool { return name == a.Secret })
	}
	patch, err := attachmentPatch(a.Account, now, r.serviceAccountAnnotations(a.Account))
	if err != nil {
		return err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: now.Namespace, Name: now.Name}}
	err = r.Client.Patch(ctx, sa, client.RawPatch(types.JSONPatchType, patch), client.FieldOwner(FieldOwner))
	switch {
	case apierrors.IsNotFound(err) && a.Kind == mirror.Detach:
		return nil // the ServiceAccount, or its namespace, is gone: nothing to detach
	case err != nil:
		preposition := "to"
		if a.Kind == mirror.Detach {
			preposition = "from"
		}
		return fmt.Errorf("%s the mirror %s ServiceAccount %s/%s: %w", a.Kind, preposition, now.Namespace, now.Name, err)
	}
	now.ResourceVersion = sa.ResourceVersion
	r.serviceAccounts.wrote(a.Account.ResourceVersion, now)
	return nil
}

// serviceAccountAnnotations reports how many annotations the cached ServiceAccount has.
func (r *MirrorReconciler) serviceAccountAnnotations(sa mirror.ServiceAccount) int {
	obj, exists, err := r.serviceAccounts.indexer.GetByKey(sa.Namespace + "/" + sa.Name)
	if cached, ok := obj.(*corev1.ServiceAccount); ok && exists && err == nil {
		return len(cached.Annotations)
	}
	return 0
}

// attachmentPatch is the JSON patch from before to now, for a ServiceAccount that has
// annotations annotations: test the resourceVersion, set imagePullSecrets whole, and set or
// remove whisperer's annotation.
func attachmentPatch(before, now mirror.ServiceAccount, annotations int) ([]byte, error) {
	refs := make([]corev1.LocalObjectReference, 0, len(now.PullSecrets))
	for _, name := range now.PullSecrets {
		refs = append(refs, corev1.LocalObjectReference{Name: name})
	}
	key := "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(mirror.AnnotationImagePullSecrets, "~", "~0"), "/", "~1")
	ops := []map[string]any{
		{"op": "test", "path": "/metadata/resourceVersion", "value": before.ResourceVersion},
		{"op": "add", "path": "/imagePullSecrets", "value": refs},
	}
	recorded := strings.Join(now.Added, ",")
	switch {
	case recorded == "" && len(before.Added) > 0:
		ops = append(ops, map[string]any{"op": "remove", "path": key})
	case recorded == "":
	case annotations == 0:
		// No annotations: add the map itself, which holds only whisperer's.
		ops = append(ops, map[string]any{"op": "add", "path": "/metadata/annotations", "value": map[string]string{mirror.AnnotationImagePullSecrets: recorded}})
	default:
		ops = append(ops, map[string]any{"op": "add", "path": key, "value": recorded})
	}
	return json.Marshal(ops)
}

// serviceAccountToSources maps a ServiceAccount event to the sources that may attach their
// mirror to it: those with a mirror in its namespace and the service-accounts annotation.
func (r *MirrorReconciler) serviceAccountToSources(_ context.Context, obj client.Object) []reconcile.Request {
	mirrors, err := r.mirrors.indexer.ByIndex(toolscache.NamespaceIndex, obj.GetNamespace())
	if err != nil {
		return nil
	}
	var requests []reconcile.Request
	for _, m := range mirrors {
		source, ok := mirror.SourceOf(m.(metav1.Object))
		if !ok {
			continue
		}
		cached, exists, err := r.sources.indexer.GetByKey(source.String())
		if o, ok := cached.(metav1.Object); ok && exists && err == nil {
			if _, attaches := o.GetAnnotations()[mirror.AnnotationServiceAccounts]; attaches {
				r.scopes.add(source, obj.GetNamespace())
				requests = append(requests, reconcile.Request{NamespacedName: source})
			}
		}
	}
	return requests
}

// fights counts, by source and ServiceAccount, how often whisperer puts back an entry that
// someone removed, and backs off when another writer keeps removing it.
type fights struct {
	mu    sync.Mutex
	byKey map[fightKey]*fight
}

type fightKey struct{ source, account types.NamespacedName }

type fight struct {
	reattaches int
	since      time.Time
	backoffs   int
	until      time.Time
}

func newFights() *fights { return &fights{byKey: map[fightKey]*fight{}} }

// reattach records that whisperer is about to put back an entry, and reports whether it must
// not, being in a fight it backs off from, and until when.
func (f *fights) reattach(source, account types.NamespacedName) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := fightKey{source, account}
	fi := f.byKey[key]
	now := time.Now()
	if fi == nil || now.Sub(fi.since) > reattachWindow && now.After(fi.until) {
		fi = &fight{since: now}
		f.byKey[key] = fi
	}
	if now.Before(fi.until) {
		return fi.until, true
	}
	fi.reattaches++
	if fi.reattaches <= maxReattaches {
		return time.Time{}, false
	}
	fi.until = now.Add(min(maxBackoff, firstBackoff<<fi.backoffs))
	fi.backoffs++
	fi.reattaches = 0
	return fi.until, true
}

// contested counts the ServiceAccounts left alone at now because another writer keeps removing
// an entry.
func (f *fights) contested(now time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, fi := range f.byKey {
		if now.Before(fi.until) {
			n++
		}
	}
	return n
}

// forget drops the fights of a source that is gone.
func (f *fights) forget(source types.NamespacedName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for key := range f.byKey {
		if key.source == source {
			delete(f.byKey, key)
		}
	}
}

func (o *outcome) contest(account string, until time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.contested = append(o.contested, account)
	if o.contestedUntil.IsZero() || until.Before(o.contestedUntil) {
		o.contestedUntil = until
	}
}
