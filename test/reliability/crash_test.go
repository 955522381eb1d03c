//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// One source mirrored into 1,000 namespaces. The operator is killed with SIGKILL halfway
// through, and a new one converges: every mirror once, nothing elsewhere, and the Secrets of the
// same name that are not its mirrors untouched. Then the source is deleted while no operator
// runs, and the next one removes every mirror.
func TestKillDuringMirroring(t *testing.T) {
	e := newEnv(t)
	const targetCount = 1000
	targets := names("k9", targetCount, 4)
	// Not targeted: a mirror there is an orphan, which waitMirrors reports.
	others := []string{"k9x-a", "k9x-b"}
	created := time.Now()
	e.createNamespaces(append(append([]string{"k9-src"}, others...), targets...)...)
	t.Logf("created %d namespaces in %s", targetCount+3, since(created))

	source := types.NamespacedName{Namespace: "k9-src", Name: "pull"}
	foreign := e.placeForeignSecrets(source, targets)
	want := sets.New(targets...).Delete(sortedKeys(foreign)...)

	e.createSource(source.Namespace, source.Name, "k9-*", map[string][]byte{".dockerconfigjson": []byte(`{"auths":{}}`)})
	first := e.startOperator("k9a")
	// Kill it once it has sent a third of the creates it needs.
	eventually(t, 2*time.Minute, "k9a mirrors 300 namespaces", func(ctx context.Context) error {
		if posts := first.metric(ctx, "rest_client_requests_total", map[string]string{"method": "POST"}); posts < 300 {
			return fmt.Errorf("%v POST requests", posts)
		}
		return nil
	})
	first.kill()
	killed := time.Now()
	settle()
	mirrors, err := e.mirrorsOf(t.Context(), source)
	if err != nil {
		t.Fatal(err)
	}
	if len(mirrors) == 0 || len(mirrors) >= want.Len() {
		t.Fatalf("%d of %d mirrors when k9a was killed: the kill was not halfway through mirroring", len(mirrors), want.Len())
	}
	// The API server completes the creates in flight at the kill, but audits them with the
	// error of a request whose client went away: they may or may not have made a mirror.
	var done, cut int
	for _, ev := range e.audit.events(t, and(by(first.user, time.Time{}, time.Time{}), on("secrets"), writes)) {
		switch {
		case ev.Verb != "create":
			t.Errorf("k9a, which only had mirrors to create: %s", ev)
		case succeeded(ev):
			done++
		case ev.Code() != 409:
			cut++
		}
	}
	if len(mirrors) < done || len(mirrors) > done+cut {
		t.Errorf("%d mirrors after the kill, but k9a created %d and had %d more creates cut short", len(mirrors), done, cut)
	}
	t.Logf("k9a killed (SIGKILL) after creating %d of %d mirrors (%d creates answered, %d cut short by the kill)", len(mirrors), want.Len(), done, cut)

	t.Log("step: restart converges")
	{
		second := e.startOperator("k9b")
		took := e.waitMirrors(source, want, 3*time.Minute)
		settle()
		got := e.secretWrites(second.user, time.Time{}, time.Time{})
		t.Logf("k9b converged %s after its start (%s after the kill); writes: %s", took, since(killed), got)
		if wantWrites := (writeCounts{create: want.Len() - len(mirrors)}); got != wantWrites {
			t.Errorf("k9b: %s; want %s: only the missing mirrors, each once", got, wantWrites)
		}
		e.checkForeignSecrets(source, foreign)
		second.stop()
	}

	t.Log("step: source deleted while down")
	{
		e.deleteSecret(source.Namespace, source.Name)
		time.Sleep(2 * time.Second)
		if mirrors, err := e.mirrorsOf(t.Context(), source); err != nil || len(mirrors) != want.Len() {
			t.Fatalf("%d mirrors (%v) with no operator running; want %d", len(mirrors), err, want.Len())
		}
		third := e.startOperator("k9c")
		took := e.waitMirrors(source, sets.New[string](), 3*time.Minute)
		settle()
		got := e.secretWrites(third.user, time.Time{}, time.Time{})
		t.Logf("k9c removed the %d mirrors of the source deleted while no operator ran in %s; writes: %s", want.Len(), took, got)
		if wantWrites := (writeCounts{delete: want.Len()}); got != wantWrites {
			t.Errorf("k9c: %s; want %s", got, wantWrites)
		}
		e.checkForeignSecrets(source, foreign)
	}
}

// placeForeignSecrets creates, in 30 of targets, a Secret with source's name that is not a
// mirror of source: no labels, the mirror label alone, or the labels of another source of the
// same namespace (whose name is not this Secret's). It returns their resourceVersions by
// namespace.
func (e *env) placeForeignSecrets(source types.NamespacedName, targets []string) map[string]string {
	e.t.Helper()
	kinds := []map[string]string{
		nil,
		{mirrorLabel: "true"},
		{mirrorLabel: "true", sourceNameLabel: "other", sourceNSLabel: source.Namespace},
	}
	foreign := map[string]string{}
	for i := range 30 {
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: targets[5+33*i], Name: source.Name, Labels: kinds[i%len(kinds)]},
			Data:       map[string][]byte{"owner": []byte("someone else")},
		}
		if err := e.admin.Create(e.t.Context(), secret); err != nil {
			e.t.Fatal(err)
		}
		foreign[secret.Namespace] = secret.ResourceVersion
	}
	return foreign
}

// checkForeignSecrets fails the test when a Secret placed by placeForeignSecrets for source
// changed, or when any operator asked to update or delete one, successfully or not, or created
// one of its name in their namespaces.
func (e *env) checkForeignSecrets(source types.NamespacedName, foreign map[string]string) {
	e.t.Helper()
	for namespace, resourceVersion := range foreign {
		secret := &corev1.Secret{}
		if err := e.admin.Get(e.t.Context(), types.NamespacedName{Namespace: namespace, Name: source.Name}, secret); err != nil {
			e.t.Errorf("foreign Secret in %s: %v", namespace, err)
		} else if secret.ResourceVersion != resourceVersion {
			e.t.Errorf("foreign Secret in %s changed: resourceVersion %s, was %s", namespace, secret.ResourceVersion, resourceVersion)
		}
	}
	aimed := func(ev auditEvent) bool {
		_, isForeign := foreign[ev.Namespace()]
		return isForeign && ev.Resource() == "secrets" && ev.ObjectRef.Name == source.Name
	}
	touched := e.audit.events(e.t, func(ev auditEvent) bool {
		return aimed(ev) && ev.IsWrite() && ev.Verb != "create"
	})
	if len(touched) > 0 {
		e.t.Errorf("writes aimed at Secrets that are not mirrors:\n%s", describe(touched))
	}
	refused := e.audit.events(e.t, func(ev auditEvent) bool { return aimed(ev) && ev.Verb == "create" })
	for _, ev := range refused {
		if succeeded(ev) {
			e.t.Errorf("a create succeeded in a namespace holding a foreign Secret: %s", ev)
		}
	}
	e.t.Logf("%d foreign Secrets unchanged; %d create attempts in their namespaces so far, none carried out", len(foreign), len(refused))
}
