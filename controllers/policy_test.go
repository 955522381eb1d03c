package controllers

import (
	"bytes"
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// The administrator's policy (the operator's flags) and the handling of Secret data.

func TestSourcesOutsideTheAllowedNamespacesAreRefused(t *testing.T) {
	ns := names("allowed", "tenant", "target")
	createNamespaces(t, ns...)
	startOperator(t, withPolicy(mirror.Policy{SourceNamespaces: mirror.Patterns{ns[0]}}))
	allowed := sourceSecret(ns[0], "pull", ns[2])
	pushed := sourceSecret(ns[1], "pushed", ns[2])
	create(t, allowed)
	create(t, pushed)

	eventually(t, "mirror of the allowed source", func() error { return checkFaithful(allowed, getSecret(t, ns[2], "pull")) })
	waitForEvent(t, pushed, ReasonRefused, "namespace "+ns[1])
	if got := mirrorsOf(t, pushed); len(got) > 0 {
		t.Errorf("a source outside --source-namespaces was mirrored into %v", got)
	}
}

func TestExcludedAndOptedOutNamespacesGetNoMirror(t *testing.T) {
	ns := names("source", "excluded", "opted-out", "open")
	createNamespaces(t, ns...)
	edit(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns[2]}}, func(n *corev1.Namespace) {
		n.Labels = map[string]string{mirror.LabelIgnore: "true"}
	})
	startOperator(t, withPolicy(mirror.Policy{ExcludedNamespaces: mirror.Patterns{"excluded-*"}}))
	source := sourceSecret(ns[0], "pull", ns[1], ns[2], ns[3])
	create(t, source)
	waitForMirrorsOf(t, source, ns[3])

	// Opting out later removes the mirror that is there.
	edit(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns[3]}}, func(n *corev1.Namespace) {
		n.Labels = map[string]string{mirror.LabelIgnore: "true"}
	})
	waitForMirrorsOf(t, source)
}

func TestRequiredTargetLabel(t *testing.T) {
	ns := names("source", "unlabelled", "labelled")
	createNamespaces(t, ns...)
	required, err := labels.Parse("whisperer.test/allow-mirrors=true")
	if err != nil {
		t.Fatal(err)
	}
	startOperator(t, withPolicy(mirror.Policy{TargetSelector: required}))
	source := sourceSecret(ns[0], "pull", ns[1], ns[2])
	create(t, source)
	edit(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns[2]}}, func(n *corev1.Namespace) {
		n.Labels = map[string]string{"whisperer.test/allow-mirrors": "true"}
	})
	waitForMirrorsOf(t, source, ns[2])
}

// TestSecretDataNeverReachesLogsOrEvents runs the flows that log and record the most (creation,
// update, conflict, invalid entries, refusal, deletion) at the highest verbosity, and looks for
// the data, raw and base64-encoded, in every log line and Event.
func TestSecretDataNeverReachesLogsOrEvents(t *testing.T) {
	ns := names("source", "target", "taken")
	createNamespaces(t, ns...)
	logs := &syncBuffer{}
	// Level -10 enables every V level.
	startOperator(t, withLogger(zap.New(zap.WriteTo(logs), zap.Level(zapcore.Level(-10)))))

	const secretValue, updatedValue = "sup3r-s3cr3t-value", "an0ther-s3cr3t"
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pull", Namespace: ns[2]}, Data: map[string][]byte{"x": []byte(secretValue)}})
	source := sourceSecret(ns[0], "pull", ns[1], ns[2], "Invalid_Entry")
	source.Data = map[string][]byte{"token": []byte(secretValue)}
	create(t, source)
	token := sourceSecret(ns[0], "token", ns[1])
	token.Type, token.Data = corev1.SecretTypeBootstrapToken, map[string][]byte{"token-secret": []byte(secretValue)}
	create(t, token)
	eventually(t, "mirror", func() error { return checkFaithful(source, getSecret(t, ns[1], "pull")) })
	edit(t, source, func(s *corev1.Secret) { s.Data["token"] = []byte(updatedValue) })
	eventually(t, "updated mirror", func() error { return checkFaithful(source, getSecret(t, ns[1], "pull")) })
	waitForEvent(t, source, ReasonConflict)
	waitForEvent(t, token, ReasonRefused)
	deleteObject(t, source)
	waitForMirrorsOf(t, source)

	if logs.Len() == 0 || !strings.Contains(logs.String(), "Mirror written") {
		t.Fatal("no detailed log line captured: the test would miss a leak")
	}
	for _, value := range []string{secretValue, updatedValue} {
		for _, form := range []string{value, base64.StdEncoding.EncodeToString([]byte(value))} {
			if strings.Contains(logs.String(), form) {
				t.Errorf("Secret data %q found in the logs", form)
			}
			for _, e := range allEvents(t, ns...) {
				if strings.Contains(e.Note, form) {
					t.Errorf("Secret data %q found in Event %q", form, e.Note)
				}
			}
		}
	}
}

func allEvents(t *testing.T, namespaces ...string) []eventsv1.Event {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list); err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(list.Items, func(e eventsv1.Event) bool { return !slices.Contains(namespaces, e.Namespace) })
}

// syncBuffer is a bytes.Buffer safe for the operator's concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) Len() int { return len(b.String()) }
