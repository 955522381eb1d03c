package main

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The polls read the observer's counts, which its watch events keep up to date: a Secret that
// changes version moves from one count to the other, and a deleted one leaves both.
func TestSecretObserverCountsFollowEvents(t *testing.T) {
	o := &secretObserver{versions: map[string]string{}, counts: map[string]int{}}
	secret := func(namespace, version string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "s"}, Data: payload(16, version)}
	}
	o.set(secret("a", "v1"))
	o.set(secret("b", "v1"))
	o.set(secret("a", "v1")) // a resync of the same object
	o.set(secret("b", "v2"))
	if got := [3]int{o.count("v1"), o.count("v2"), o.total()}; got != [3]int{1, 1, 2} {
		t.Fatalf("after two creates and an update: v1, v2, total = %v, want [1 1 2]", got)
	}
	o.forget("a")
	o.forget("a") // a delete seen twice (a tombstone after a relist)
	if got := [3]int{o.count("v1"), o.count("v2"), o.total()}; got != [3]int{0, 1, 1} {
		t.Fatalf("after a delete: v1, v2, total = %v, want [0 1 1]", got)
	}
}
