package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// Event reasons, for `kubectl get events --field-selector reason=...`.
const (
	ReasonMirrored          = "Mirrored"
	ReasonInvalidNamespaces = "InvalidNamespaces"
	ReasonConflict          = "Conflict"
	ReasonRefused           = "Refused"
)

// report logs what a reconcile changed and records it as Events on the source: a Normal Event
// when mirrors were written, a Warning when a refusal or conflict starts or changes. A reconcile
// that changes nothing records nothing.
func (r *SecretMirrorReconciler) report(ctx context.Context, state mirror.State, wanted int, o *outcome) {
	log := ctrl.LoggerFrom(ctx)
	if o.changed() {
		log.Info("Mirrors changed", "created", o.created, "updated", o.updated, "deleted", o.deleted)
	}
	if state.Secret == nil {
		r.memory.forget(state.Source)
		return
	}
	r.memory.setConflicts(state.Source, o.conflicts)
	r.memory.setStats(state.Source, sourceStats{
		refusedSource: state.Refusal != "",
		inSync:        wanted - len(o.conflicts) - o.failed,
		conflict:      len(o.conflicts),
		refused:       state.Refused(),
		failed:        o.failed,
	})
	if o.changed() {
		r.Recorder.Eventf(state.Secret, nil, corev1.EventTypeNormal, ReasonMirrored, "Mirror",
			"created %d, updated %d, deleted %d mirrors", o.created, o.updated, o.deleted)
	}
	r.warnOnChange(state, ReasonRefused, state.Refusal)
	r.warnOnChange(state, ReasonInvalidNamespaces, describeInvalid(state.Targets.Invalid))
	r.warnOnChange(state, ReasonConflict, describeConflicts(o.conflicts, state.Source.Name))
}

// warnOnChange records a Warning with note on the source unless it is the note last recorded for
// that reason; an empty note means the problem is gone.
func (r *SecretMirrorReconciler) warnOnChange(state mirror.State, reason, note string) {
	if r.memory.newWarning(state.Source, reason, note) {
		r.Recorder.Eventf(state.Secret, nil, corev1.EventTypeWarning, reason, "Mirror", "%s", note)
	}
}

func describeInvalid(invalid []string) string {
	if len(invalid) == 0 {
		return ""
	}
	return fmt.Sprintf("ignored entries that can match no namespace: %s", strings.Join(invalid, "; "))
}

func describeConflicts(namespaces []string, name string) string {
	if len(namespaces) == 0 {
		return ""
	}
	// Writes finish in any order; sorting keeps the note, and so the Warning, stable.
	return fmt.Sprintf("not mirrored into %s: a Secret named %q that is not a mirror of this source is there and is left untouched",
		strings.Join(slices.Sorted(slices.Values(namespaces)), ", "), name)
}
