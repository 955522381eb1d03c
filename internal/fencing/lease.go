// Package fencing stops a leader's writes once it cannot be sure that it still leads.
//
// controller-runtime's leader election makes a replica give leadership up, and exit, when it
// fails to renew its Lease for the renew deadline. A replica that is frozen (SIGSTOP, a stalled
// node, a long pause) past the Lease's expiry, while another replica takes over, resumes
// believing it leads until its next renewal fails: for that long, two replicas write. Lease wraps
// the Lease lock and records when this replica last renewed it; Current reports whether that was
// within the renew deadline, and the reconciler writes nothing when it was not.
package fencing

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
)

// RenewDeadline is how long a leader tries to renew its Lease before it gives leadership up:
// controller-runtime's default, which whisperer keeps.
const RenewDeadline = 10 * time.Second

// inClusterNamespace holds the namespace of a pod's ServiceAccount.
const inClusterNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Lease is the leader election lock of one replica, with the time it last renewed it.
type Lease struct {
	resourcelock.Interface
	// renewed is when this replica last created or renewed the Lease, in Unix nanoseconds.
	renewed atomic.Int64
	// now tells the time; tests replace it.
	now func() time.Time
}

// New returns the lock of the Lease named name, in namespace (the pod's own when empty), for a
// replica of a new identity.
func New(cfg *rest.Config, namespace, name string) (*Lease, error) {
	if namespace == "" {
		found, err := os.ReadFile(inClusterNamespace)
		if err != nil {
			return nil, fmt.Errorf("no leader election namespace given, and not in a cluster: %w", err)
		}
		namespace = strings.TrimSpace(string(found))
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	id := host + "_" + string(uuid.NewUUID())
	cfg = rest.AddUserAgent(rest.CopyConfig(cfg), "leader-election")
	// One hung request must not outlast the renew deadline.
	cfg.Timeout = RenewDeadline / 2
	clients, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: clients.CoreV1().Events(namespace)})
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, namespace, name, clients.CoreV1(), clients.CoordinationV1(),
		resourcelock.ResourceLockConfig{
			Identity:      id,
			EventRecorder: broadcaster.NewRecorder(clientgoscheme.Scheme, corev1.EventSource{Component: id}),
		})
	if err != nil {
		return nil, err
	}
	return &Lease{Interface: lock, now: time.Now}, nil
}

// Create creates the Lease, held by this replica.
func (l *Lease) Create(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	return l.renew(l.Interface.Create(ctx, record), record)
}

// Update writes the Lease: a renewal, when this replica holds it.
func (l *Lease) Update(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	return l.renew(l.Interface.Update(ctx, record), record)
}

func (l *Lease) renew(err error, record resourcelock.LeaderElectionRecord) error {
	if err == nil && record.HolderIdentity == l.Identity() {
		l.renewed.Store(l.now().UnixNano())
	}
	return err
}

// Current reports whether this replica renewed the Lease within the renew deadline: before that,
// no other replica can have taken it over (it must wait for the Lease's duration, longer).
func (l *Lease) Current() bool {
	renewed := l.renewed.Load()
	return renewed != 0 && l.now().Sub(time.Unix(0, renewed)) < RenewDeadline
}
