package fencing

import (
	"context"
	"errors"
	"testing"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// lock stands for the API server's Lease: it takes every write, or fails them all.
type lock struct {
	resourcelock.Interface
	fail error
}

func (l lock) Identity() string { return "me" }

func (l lock) Create(context.Context, resourcelock.LeaderElectionRecord) error { return l.fail }

func (l lock) Update(context.Context, resourcelock.LeaderElectionRecord) error { return l.fail }

func TestCurrentOnlyWithinTheRenewDeadline(t *testing.T) {
	clock := time.Unix(1000, 0)
	l := &Lease{Interface: lock{}, now: func() time.Time { return clock }}
	if l.Current() {
		t.Error("current before any renewal")
	}
	if err := l.Create(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil || !l.Current() {
		t.Errorf("after creating the Lease: current %v, err %v; want current", l.Current(), err)
	}
	clock = clock.Add(RenewDeadline - time.Millisecond)
	if !l.Current() {
		t.Error("not current within the renew deadline")
	}
	clock = clock.Add(time.Millisecond)
	if l.Current() {
		t.Error("still current at the renew deadline: a frozen leader would write on")
	}
	if err := l.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "someone-else"}); err != nil || l.Current() {
		t.Error("a write of the Lease for another holder made this replica current")
	}
	l.Interface = lock{fail: errors.New("conflict")}
	if err := l.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err == nil || l.Current() {
		t.Error("a failed renewal made this replica current")
	}
	l.Interface = lock{}
	if err := l.Update(context.Background(), resourcelock.LeaderElectionRecord{HolderIdentity: "me"}); err != nil || !l.Current() {
		t.Error("a renewal did not make this replica current")
	}
}
