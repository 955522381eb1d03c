package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// Event reasons, for `kubectl get events --field-selector reason=...`.
const (
	ReasonMirrored          = "Mirrored"
	ReasonInvalidNamespaces = "InvalidNamespaces"
	ReasonConflict          = "Conflict"
	ReasonRefused           = "Refused"
	// ReasonInvalidServiceAccounts says why the service-accounts annotation, or some of it, is
	// ignored.
	ReasonInvalidServiceAccounts = "InvalidServiceAccounts"
	// ReasonServiceAccountContested says that another writer keeps removing the mirror from a
	// ServiceAccount's imagePullSecrets, and that whisperer leaves it alone for a while.
	ReasonServiceAccountContested = "ServiceAccountContested"
	// ReasonDeniedMetadata lists the keys a copy annotation asks for that the deny-list keeps off
	// the mirrors.
	ReasonDeniedMetadata = "DeniedMetadata"
	// ReasonInvalidMetadata lists the entries of the copy annotations that can match no key.
	ReasonInvalidMetadata = "InvalidMetadata"
)

const (
	// reportingController names whisperer as the author of its Events.
	reportingController = "whisperer"
	// eventAction is what every Event of whisperer is about.
	eventAction = "Mirror"
	// maxNoteLength is the longest note the API server accepts; a longer one loses the Event.
	maxNoteLength = 1024
)

// eventRecorder records whisperer's Events on sources, through the events.k8s.io API. It does not
// use client-go's recorder, which folds Events of the same reason on the same object into a
// series that keeps the first note, so a user would read "created 2" after three changes, and
// which remembers nothing across restarts, so every standing warning would be recorded again
// at each restart or leader failover. Here:
//
//   - each change of a source's mirrors is an Event of its own, with its own counts;
//   - a Warning is an Event whose name is derived from the source, the reason and the note: the
//     same warning has the same name, so it is recorded once, by whichever replica sees it first,
//     and a changed warning is a new Event. Recorded warnings are remembered in memory, so that a
//     standing one costs no request at each reconcile, and looked up by name after a restart.
type eventRecorder struct {
	client   client.Client
	reader   client.Reader
	kind     mirror.Kind
	instance string

	mu sync.Mutex
	// warned holds the note last recorded for each source and reason.
	warned map[types.NamespacedName]map[string]string
}

func newEventRecorder(c client.Client, reader client.Reader, k mirror.Kind, instance string) *eventRecorder {
	return &eventRecorder{client: c, reader: reader, kind: k, instance: instance, warned: map[types.NamespacedName]map[string]string{}}
}

// mirrored records a change of source's mirrors.
func (e *eventRecorder) mirrored(ctx context.Context, source metav1.Object, o *outcome) {
	note := fmt.Sprintf("created %d, updated %d, deleted %d mirrors", o.created, o.updated, o.deleted)
	if o.attached+o.detached > 0 {
		note += fmt.Sprintf("; attached to %d, detached from %d ServiceAccounts", o.attached, o.detached)
	}
	name := eventName(source.GetName(), fmt.Sprintf("%x", time.Now().UnixNano()))
	e.create(ctx, e.event(source, name, corev1.EventTypeNormal, ReasonMirrored, note))
}

// warn records a Warning with note on source, unless it is the one recorded last for this
// reason; an empty note means that the problem is gone.
func (e *eventRecorder) warn(ctx context.Context, source metav1.Object, reason, note string) {
	key := types.NamespacedName{Namespace: source.GetNamespace(), Name: source.GetName()}
	note = shorten(note)
	if !e.changes(key, reason, note) {
		return
	}
	sum := sha256.Sum256([]byte(string(source.GetUID()) + "\x00" + reason + "\x00" + note))
	event := e.event(source, eventName(source.GetName(), hex.EncodeToString(sum[:8])), corev1.EventTypeWarning, reason, note)
	err := e.reader.Get(ctx, client.ObjectKeyFromObject(event), &eventsv1.Event{})
	switch {
	case apierrors.IsNotFound(err):
		if !e.create(ctx, event) {
			return
		}
	case err != nil:
		ctrl.LoggerFrom(ctx).Error(err, "Cannot look up a Warning Event", "reason", reason)
		return
	}
	e.remember(key, reason, note)
}

// changes reports whether note differs from the one last recorded for key and reason, and
// forgets that one when note is empty.
func (e *eventRecorder) changes(key types.NamespacedName, reason, note string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.warned[key][reason] == note {
		return false
	}
	if note == "" {
		delete(e.warned[key], reason)
		return false
	}
	return true
}

func (e *eventRecorder) remember(key types.NamespacedName, reason, note string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.warned[key] == nil {
		e.warned[key] = map[string]string{}
	}
	e.warned[key][reason] = note
}

// forget drops what is remembered of a source that is gone.
func (e *eventRecorder) forget(key types.NamespacedName) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.warned, key)
}

func (e *eventRecorder) event(source metav1.Object, name, eventType, reason, note string) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: name, Namespace: source.GetNamespace()},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: reportingController,
		ReportingInstance:   e.instance,
		Action:              eventAction,
		Reason:              reason,
		Type:                eventType,
		Note:                note,
		Regarding: corev1.ObjectReference{
			APIVersion: "v1", Kind: string(e.kind),
			Namespace: source.GetNamespace(), Name: source.GetName(),
			UID: source.GetUID(), ResourceVersion: source.GetResourceVersion(),
		},
	}
}

// create creates event, and reports whether it exists now. Events are best effort: a failure is
// logged, and never fails the reconcile.
func (e *eventRecorder) create(ctx context.Context, event *eventsv1.Event) bool {
	err := e.client.Create(ctx, event)
	if err != nil && !apierrors.IsAlreadyExists(err) {
		ctrl.LoggerFrom(ctx).Error(err, "Cannot record an Event", "reason", event.Reason)
		return false
	}
	return true
}

// eventName names an Event of the object named object: its name, cut so that the whole is a valid
// object name, then suffix.
func eventName(object, suffix string) string {
	prefix := object
	if room := validation.DNS1123SubdomainMaxLength - len(suffix) - 1; len(prefix) > room {
		prefix = strings.TrimRight(prefix[:room], ".-")
	}
	return prefix + "." + suffix
}

// shorten cuts note to what the API server accepts.
func shorten(note string) string {
	if len(note) <= maxNoteLength {
		return note
	}
	const ellipsis = "…"
	cut := maxNoteLength - len(ellipsis)
	for cut > 0 && !utf8RuneStart(note[cut]) {
		cut--
	}
	return note[:cut] + ellipsis
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// listNote says head, the items, then tail, listing as many items as fit in an Event's note and
// counting the others ("and 412 more").
func listNote(head string, items []string, tail string) string {
	if note := head + strings.Join(items, ", ") + tail; len(note) <= maxNoteLength {
		return note
	}
	fixed := len(head) + len(tail)
	listed, used := 0, 0
	for ; listed < len(items); listed++ {
		next := used + len(items[listed])
		if listed > 0 {
			next += len(", ")
		}
		if fixed+next+len(andMore(len(items)-listed-1)) > maxNoteLength {
			break
		}
		used = next
	}
	return shorten(head + strings.Join(items[:listed], ", ") + andMore(len(items)-listed) + tail)
}

func andMore(n int) string { return fmt.Sprintf(" and %d more", n) }

// Notes of the Warnings.

func describeInvalid(invalid []string) string {
	if len(invalid) == 0 {
		return ""
	}
	return listNote("ignored entries that can match no namespace: ", invalid, "")
}

func describeConflicts(k mirror.Kind, namespaces []string, name string) string {
	if len(namespaces) == 0 {
		return ""
	}
	// Writes finish in any order; sorting keeps the note, and so the Warning, stable.
	return listNote("not mirrored into ", slices.Sorted(slices.Values(namespaces)),
		fmt.Sprintf(": a %s named %q that is not a mirror of this source is there and is left untouched", k, name))
}

func describeContested(accounts []string, name string) string {
	if len(accounts) == 0 {
		return ""
	}
	return listNote("another writer keeps removing "+name+" from the imagePullSecrets of ", slices.Sorted(slices.Values(accounts)),
		": whisperer put it back, and now leaves it alone for a while")
}

func describeDenied(denied []string) string {
	if len(denied) == 0 {
		return ""
	}
	return listNote("not copied to the mirrors, on the deny-list: ", denied, "")
}

func describeInvalidMetadata(invalid []string) string {
	if len(invalid) == 0 {
		return ""
	}
	return listNote("ignored entries that can match no key: ", invalid, "")
}
