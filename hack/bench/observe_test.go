package main

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The polls read the observer's counts, which its watch events keep up to date: an object that
// changes version moves from one count to the other, and a deleted one leaves both and its
// namespace's count.
func TestObserverCountsFollowEvents(t *testing.T) {
	o := newObserver(secretKind.version)
	set := func(namespace, name, version string) {
		o.set(secretKind.build(metav1.ObjectMeta{Namespace: namespace, Name: name}, 16, version))
	}
	set("a", "s", "v1")
	set("b", "s", "v1")
	set("a", "s", "v1") // a resync of the same object
	set("b", "s", "v2")
	set("b", "t", "v2") // a second object in the namespace
	if got := [4]int{o.count("v1"), o.count("v2"), o.total(), o.namespaceCount("b")}; got != [4]int{1, 2, 3, 2} {
		t.Fatalf("after three creates and an update: v1, v2, total, in b = %v, want [1 2 3 2]", got)
	}
	if !o.has("b", "s", "v2") || o.has("b", "s", "v1") || o.has("c", "s", "v2") {
		t.Fatalf("has: b/s is at v2 and c/s does not exist")
	}
	o.forget(&metav1.ObjectMeta{Namespace: "a", Name: "s"})
	o.forget(&metav1.ObjectMeta{Namespace: "a", Name: "s"}) // a delete seen twice (a tombstone after a relist)
	o.forget(&metav1.ObjectMeta{Namespace: "b", Name: "t"})
	if got := [4]int{o.count("v1"), o.count("v2"), o.total(), o.namespaceCount("a")}; got != [4]int{0, 1, 1, 0} {
		t.Fatalf("after two deletes: v1, v2, total, in a = %v, want [0 1 1 0]", got)
	}
}
