package controllers

import (
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// parsedSources keeps what is parsed from each source, once per change of the source: its
// targets, from its metadata; its content, once read (the cache holds no data); and whether the
// policy refuses it. Every namespace event is matched against every source: without it, each
// event would parse every source's annotations again.
type parsedSources struct {
	kind   Kind
	policy mirror.Policy

	mu    sync.Mutex
	byKey map[types.NamespacedName]parsedSource
}

type parsedSource struct {
	resourceVersion string
	source          *mirror.Source
	contentKnown    bool
	refused         bool
}

func newParsedSources(k Kind, policy mirror.Policy) *parsedSources {
	return &parsedSources{kind: k, policy: policy, byKey: map[types.NamespacedName]parsedSource{}}
}

// get returns obj, a cached source (its metadata), parsed; whether its content is known; and
// whether the policy refuses it, as far as what is known of it tells (mirror.Policy.Refusal).
func (p *parsedSources) get(obj metav1.Object) (source *mirror.Source, contentKnown, refused bool) {
	key := types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if parsed, ok := p.byKey[key]; ok && parsed.resourceVersion == obj.GetResourceVersion() {
		return parsed.source, parsed.contentKnown, parsed.refused
	}
	parsed := p.parse(obj, mirror.Content{}, false)
	p.byKey[key] = parsed
	return parsed.source, false, parsed.refused
}

// learn parses live, a source read with its data, and keeps what it learnt, without the data.
func (p *parsedSources) learn(live client.Object) *mirror.Source {
	parsed := p.parse(metadataOf(p.kind, live), contentOf(p.kind, live), true)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.byKey[client.ObjectKeyFromObject(live)] = parsed
	return parsed.source
}

func (p *parsedSources) parse(obj metav1.Object, content mirror.Content, contentKnown bool) parsedSource {
	source := mirror.NewSource(obj, content)
	return parsedSource{
		resourceVersion: obj.GetResourceVersion(),
		source:          source,
		contentKnown:    contentKnown,
		refused:         p.policy.Refusal(p.kind.kind(), source) != "",
	}
}

// forget drops what was parsed from a source that is gone.
func (p *parsedSources) forget(key types.NamespacedName) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.byKey, key)
}
