//go:build reliability

package reliability

import (
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
)

// The periodic resync reconciles every source again and again, and on a converged cluster it
// writes nothing: no Secret, no Event.
func TestResyncWritesNothing(t *testing.T) {
	e := newEnv(t)
	const resync = 2 * time.Second
	const sourceCount = 3
	targets := names("rs-t", 8, 1)
	e.createNamespaces(append([]string{"rs-src"}, targets...)...)
	op := e.startOperator("rs", fmt.Sprintf("--resync-period=%s", resync))
	var sources []types.NamespacedName
	for i := range sourceCount {
		source := types.NamespacedName{Namespace: "rs-src", Name: fmt.Sprintf("source-%d", i)}
		e.createSource(source.Namespace, source.Name, "rs-t-*", map[string][]byte{"key": []byte(source.Name)})
		sources = append(sources, source)
	}
	for _, source := range sources {
		e.waitMirrors(source, sets.New(targets...), time.Minute)
	}
	time.Sleep(2 * time.Second)

	const window = 15 * time.Second
	from, before := time.Now(), op.reconciles(t.Context())
	time.Sleep(window)
	to, after := time.Now(), op.reconciles(t.Context())
	settle()
	requests := e.audit.events(t, by(op.user, from, to))
	written := e.audit.events(t, and(by(op.user, from, to), writes))
	// Each source is requeued every resync to 1.5 resync: at least window / (1.5 resync) times.
	minimum := sourceCount * int(window/(resync*3/2)-1)
	t.Logf("resync every %s (+ up to 50%% jitter) over %s: %d reconciles of %d sources, %d API requests, %d writes",
		resync, window, after-before, sourceCount, len(requests), len(written))
	if after-before < minimum {
		t.Errorf("%d reconciles in %s; want at least %d: the periodic resync does not run", after-before, window, minimum)
	}
	if len(written) > 0 {
		t.Errorf("the resync of a converged cluster wrote:\n%s", describe(written))
	}
	for _, source := range sources {
		if err := e.checkMirrors(t.Context(), source, sets.New(targets...)); err != nil {
			t.Error(err)
		}
	}
}
