//go:build reliability

package reliability

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/snapshot"
	uberzap "go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/whisperer-operator/whisperer/test/localcluster"
)

// bumpRevision is how far the restore moves etcd's revision past the snapshot's, as the
// Kubernetes documentation asks, so that no resourceVersion a client has seen since the snapshot
// is reused: --mark-compacted then makes every watch from before the restore end with 410 Gone.
const bumpRevision = 1_000_000_000

// Level 3's backup and restore, for mirrors (docs/capabilities.md): the cluster's Secrets are
// restored from an etcd snapshot taken in the middle of propagation, the way the Kubernetes
// documentation restores a cluster (API server stopped, etcdutl snapshot restore into a new data
// directory with the revision bumped and marked compacted, etcd and API server started on it),
// while whisperer keeps running. In the snapshot, one source has a third of its 1,000 mirrors and
// another, deleted, all of its 300; after it, the first source's data changed and a third source
// was mirrored. whisperer converges to the restored sources: the missing mirrors created with the
// restored data, the deleted source's mirrors removed, nothing left of the third, and the Secrets
// of the same name that are not mirrors untouched.
func TestRestoreFromEtcdSnapshot(t *testing.T) {
	etcdutl, err := existing("ETCDUTL", "../../bin/etcdutl", "make bin/etcdutl")
	if err != nil {
		t.Fatal(err)
	}
	// An etcd of the test's own, which it can stop and start on another data directory; the
	// control plane's API server uses it instead of the one localcluster starts.
	etcd := e2eEtcd(t)
	e := newEnvWith(t, localcluster.Options{APIServerFlags: map[string]string{"etcd-servers": etcd.URL.String()}})

	const targetCount = 1000
	targets := names("rs", targetCount, 4)
	e.createNamespaces(append([]string{"rs-src", "rx-a"}, targets...)...)
	pull := types.NamespacedName{Namespace: "rs-src", Name: "pull"}
	gone := types.NamespacedName{Namespace: "rs-src", Name: "gone"}
	later := types.NamespacedName{Namespace: "rs-src", Name: "later"}
	foreign := e.placeForeignSecrets(pull, targets)
	wantPull := sets.New(targets...).Delete(sortedKeys(foreign)...)
	wantGone := sets.New(targets[:300]...)

	op := e.startOperator("rs")
	e.createSource(gone.Namespace, gone.Name, "rs-00*, rs-01*, rs-02*", map[string][]byte{"k": []byte("gone")})
	e.waitMirrors(gone, wantGone, time.Minute)

	t.Log("step: snapshot in the middle of propagation")
	e.createSource(pull.Namespace, pull.Name, "rs-*", map[string][]byte{".dockerconfigjson": []byte(`{"v":1}`)})
	eventually(t, 2*time.Minute, "a third of pull's mirrors", func(ctx context.Context) error {
		if posts := op.metric(ctx, "rest_client_requests_total", map[string]string{"method": "POST"}); posts < float64(wantGone.Len()+300) {
			return fmt.Errorf("%v POST requests", posts)
		}
		return nil
	})
	// The snapshot is taken at an instant; freezing whisperer for it makes that instant one where
	// gone is deleted and none of its mirrors yet, so that the restore brings back mirrors of a
	// deleted source.
	op.pause()
	settle()
	e.deleteSecret(gone.Namespace, gone.Name)
	inSnapshot, err := e.mirrorsOf(t.Context(), pull)
	if err != nil {
		t.Fatal(err)
	}
	snapshotPath := filepath.Join(t.TempDir(), "etcd.snapshot")
	snapshotAt := time.Now()
	if _, err := snapshot.SaveWithVersion(t.Context(), uberzap.NewNop(), clientv3.Config{Endpoints: []string{etcd.URL.String()}, DialTimeout: 10 * time.Second}, snapshotPath); err != nil {
		t.Fatal(err)
	}
	if after, err := e.mirrorsOf(t.Context(), pull); err != nil || len(after) != len(inSnapshot) {
		t.Fatalf("%d mirrors before the snapshot, %d (%v) after, with whisperer frozen", len(inSnapshot), len(after), err)
	}
	op.resume()
	t.Logf("snapshot taken with %d of pull's %d mirrors, and the %d mirrors of the source deleted just before", len(inSnapshot), wantPull.Len(), wantGone.Len())
	if len(inSnapshot) == 0 || len(inSnapshot) >= wantPull.Len() {
		t.Fatalf("%d of %d mirrors in the snapshot: not in the middle of propagation", len(inSnapshot), wantPull.Len())
	}

	t.Log("step: changes after the snapshot")
	e.waitMirrors(pull, wantPull, 2*time.Minute)
	e.waitMirrors(gone, sets.New[string](), time.Minute)
	e.updateSource(pull, func(s *corev1.Secret) { s.Data[".dockerconfigjson"] = []byte(`{"v":2}`) })
	e.createSource(later.Namespace, later.Name, "rs-09*", map[string][]byte{"k": []byte("later")})
	e.waitMirrors(pull, wantPull, 2*time.Minute)
	e.waitMirrors(later, sets.New(targets[900:]...), time.Minute)

	t.Log("step: restore")
	stopped := time.Now()
	if err := e.cluster.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	if err := etcd.Stop(); err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "etcd-restored")
	restore := exec.CommandContext(t.Context(), etcdutl, "snapshot", "restore", snapshotPath, "--data-dir", restored,
		"--bump-revision", strconv.Itoa(bumpRevision), "--mark-compacted")
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("etcdutl snapshot restore: %v\n%s", err, out)
	}
	etcd.DataDir = restored
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := e.cluster.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	t.Logf("restored the snapshot taken %s earlier; API server down for %s", up.Sub(snapshotAt).Round(time.Second), up.Sub(stopped).Round(10*time.Millisecond))
	// What the restore brought back, read before whisperer can have changed it much.
	restoredPull, err := e.mirrorsOf(t.Context(), pull)
	if err != nil {
		t.Fatal(err)
	}
	restoredGone, _ := e.mirrorsOf(t.Context(), gone)
	t.Logf("after the restore: %d mirrors of pull, %d of the deleted source", len(restoredPull), len(restoredGone))

	took := e.waitMirrors(pull, wantPull, 3*time.Minute)
	e.waitMirrors(gone, sets.New[string](), time.Minute)
	e.waitMirrors(later, sets.New[string](), time.Minute)
	settle()
	op.requireRunning()
	src := &corev1.Secret{}
	if err := e.admin.Get(t.Context(), pull, src); err != nil {
		t.Fatal(err)
	}
	if got := string(src.Data[".dockerconfigjson"]); got != `{"v":1}` {
		t.Fatalf("the restored source holds %s: the restore did not go back to the snapshot", got)
	}
	got := e.secretWrites(op.user, up, time.Time{})
	t.Logf("restore: whisperer converged %s after the API server came back, to the restored data; writes since: %s; its watches since: %s",
		took, got, e.watchTimeline(op.user, up, up))
	if got.delete != wantGone.Len() || got.create < wantPull.Len()-len(inSnapshot) || got.patch+got.other > 0 {
		t.Errorf("writes after the restore: %s; want %d deletes (the deleted source's mirrors) and at least %d creates (pull's missing mirrors)",
			got, wantGone.Len(), wantPull.Len()-len(inSnapshot))
	}
	e.checkForeignSecrets(pull, foreign)
}

// e2eEtcd starts an etcd of the test's own, on a fixed loopback address; it stops when the test
// ends, after the control plane that uses it. Its log is next to the test's artifacts folder,
// which newEnv empties.
func e2eEtcd(t *testing.T) *envtest.Etcd {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "etcd")
	if err := os.MkdirAll(artifacts, 0o750); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(artifacts, t.Name()+"-etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	etcd := &envtest.Etcd{
		Path:         filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "etcd"),
		DataDir:      dir,
		URL:          &url.URL{Scheme: "http", Host: "127.0.0.1:" + freePort(t)},
		StartTimeout: 2 * time.Minute,
		StopTimeout:  10 * time.Second,
		Out:          log,
		Err:          log,
	}
	if err := etcd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := etcd.Stop(); err != nil {
			t.Errorf("stopping etcd: %v", err)
		}
		if err := log.Close(); err != nil {
			t.Errorf("etcd's log: %v", err)
		}
	})
	return etcd
}
