package clustertest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// AllowedSource is the name of the source CheckPolicy has mirrored.
const AllowedSource = "allowed"

// CheckPolicy checks that the running whisperer applies a --source-namespaces policy that allows
// sources in allowed and not in elsewhere: a source in allowed is mirrored into the targets, one
// in elsewhere is refused, with a Refused Warning Event, and mirrored nowhere. It creates the
// namespaces, and returns the UIDs of the mirrors by namespace.
func CheckPolicy(t *testing.T, ctx context.Context, c client.Client, allowed, elsewhere string, targets ...string) map[string]string {
	t.Helper()
	const refused = "refused"
	CreateNamespaces(t, ctx, c, append([]string{allowed, elsewhere}, targets...)...)
	data := map[string][]byte{"k": []byte("v")}
	CreateSource(t, ctx, c, client.ObjectKey{Namespace: allowed, Name: AllowedSource}, strings.Join(targets, ","), data)
	CreateSource(t, ctx, c, client.ObjectKey{Namespace: elsewhere, Name: refused}, strings.Join(targets, ","), data)
	uids := WaitMirrors(t, ctx, c, AllowedSource, data, targets)
	var note string
	WaitFor(t, ctx, "the source in "+elsewhere+" refused", func(ctx context.Context) (bool, string, error) {
		events := &eventsv1.EventList{}
		if err := c.List(ctx, events, client.InNamespace(elsewhere)); err != nil {
			return false, "", err
		}
		for _, e := range events.Items {
			if e.Regarding.Name == refused && e.Reason == "Refused" && e.Type == corev1.EventTypeWarning {
				note = e.Note
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("%d events, no Refused Warning on %s", len(events.Items), refused), nil
	})
	t.Logf("Refused Warning on %s/%s: %s", elsewhere, refused, note)
	for _, ns := range targets {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: refused}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("the refused source has a mirror in %s (%v)", ns, err)
		}
	}
	return uids
}
