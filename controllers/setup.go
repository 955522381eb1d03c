package controllers

import (
	"context"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/source"
)

// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=get;create

// SetupWithManager registers the reconciler and its watches: sources (the manager's cache),
// mirrors (a cache of their own), namespaces (metadata only) and the objects that block mirrors
// (watched by name while they do).
func (r *MirrorReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := r.setupState(mgr); err != nil {
		return err
	}
	mirrorCache, err := newMirrorCache(mgr, r.Kind)
	if err != nil {
		return err
	}
	if r.mirrors, err = newMirrorStore(ctx, mirrorCache, r.Kind); err != nil {
		return err
	}
	if r.sources, err = newSourceStore(ctx, mgr.GetCache(), r.Kind); err != nil {
		return err
	}
	if r.namespaces, err = newNamespaceStore(ctx, mgr.GetCache()); err != nil {
		return err
	}
	released := make(chan event.GenericEvent, 64)
	metadataClient, err := metadata.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return fmt.Errorf("creating a metadata client: %w", err)
	}
	r.conflicts = newConflicts(watchByName(ctx, metadataClient, r.Kind), func(source, blocker types.NamespacedName) {
		r.scopes.add(source, blocker.Namespace)
		released <- sourceRequest(source)
	})
	r.stats = newStats(r.Kind.kind(), r.conflicts, r.fights)
	if err := reportWhileRunning(mgr, r.stats); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr)
	if r.AttachServiceAccounts && r.Kind == Secrets {
		if r.serviceAccounts, err = newServiceAccountStore(ctx, mgr.GetCache()); err != nil {
			return err
		}
		b = b.Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.serviceAccountToSources))
	}
	return b.
		Named(controllerName(r.Kind)).
		Watches(r.Kind.newObject(), r.sourceEvents(), builder.OnlyMetadata).
		WatchesRawSource(source.Kind(mirrorCache, client.Object(metadataObject(r.Kind)), r.mirrorEvents())).
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.namespaceToSources),
			builder.WithPredicates(namespaceAppearedOrRelabelled())).
		WatchesRawSource(source.Channel(released, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Complete(r)
}

// setupState makes what the reconciler keeps between reconciles.
func (r *MirrorReconciler) setupState(mgr ctrl.Manager) error {
	instance, err := os.Hostname()
	if err != nil {
		return fmt.Errorf("naming this replica in Events: %w", err)
	}
	r.parsed = newParsedSources(r.Kind, r.Policy)
	r.contents = newContents()
	r.scopes = newScopes()
	r.fights = newFights()
	r.expectations = newExpectations()
	r.events = newEventRecorder(mgr.GetClient(), mgr.GetAPIReader(), r.Kind.kind(), instance)
	exportCounters(r.Kind.kind())
	r.tracer = newTracer()
	return nil
}

// controllerName names the controller of a kind in logs and metrics: secretmirror for Secrets.
func controllerName(k Kind) string {
	return strings.ToLower(string(k.kind())) + "mirror"
}
