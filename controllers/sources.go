package controllers

import (
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// parsedSources keeps what is parsed from each source, once per change of the source: its
// targets, and whether the policy refuses it. Every namespace event is matched against every
// source; without it, each event would parse every source's annotations again.
type parsedSources struct {
	kind   Kind
	policy mirror.Policy

	mu    sync.Mutex
	byKey map[types.NamespacedName]parsedSource
}

type parsedSource struct {
	resourceVersion string
	source          *mirror.Source
	refused         bool
}

func newParsedSources(k Kind, policy mirror.Policy) *parsedSources {
	return &parsedSources{kind: k, policy: policy, byKey: map[types.NamespacedName]parsedSource{}}
}

// get returns obj, a cached source, parsed, and whether the policy refuses it whatever the
// namespaces (mirror.Policy.Refusal).
func (p *parsedSources) get(obj client.Object) (*mirror.Source, bool) {
	key := client.ObjectKeyFromObject(obj)
	p.mu.Lock()
	defer p.mu.Unlock()
	if parsed, ok := p.byKey[key]; ok && parsed.resourceVersion == obj.GetResourceVersion() {
		return parsed.source, parsed.refused
	}
	source := mirror.NewSource(obj, cachedContent(p.kind, obj))
	refused := p.policy.Refusal(p.kind.kind(), source) != ""
	p.byKey[key] = parsedSource{resourceVersion: obj.GetResourceVersion(), source: source, refused: refused}
	return source, refused
}

// forget drops what was parsed from a source that is gone.
func (p *parsedSources) forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.byKey, key)
}
