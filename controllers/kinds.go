package controllers

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// Kind is a kind of object whisperer mirrors. The reconciler, its caches and its writes are the
// same for every kind; a Kind says how to make its objects and what their content is.
type Kind interface {
	// String names it as --resources does: secrets, configmaps.
	String() string
	// kind names it for planning, Events and metrics.
	kind() mirror.Kind
	resource() schema.GroupVersionResource
	newObject() client.Object
	newList() client.ObjectList
	// shape returns obj's type (empty for kinds that have none) and immutability.
	shape(obj client.Object) (typ string, immutable bool)
	// hashData feeds obj's data to d.
	hashData(obj client.Object, d *digester)
	// copyContent gives dst, which it modifies, the content of src.
	copyContent(dst, src client.Object)
}

// Secrets is the Kind of Secrets.
var Secrets Kind = secretKind{}

type secretKind struct{}

func (secretKind) String() string { return "secrets" }

func (secretKind) kind() mirror.Kind { return mirror.KindSecret }

func (secretKind) resource() schema.GroupVersionResource {
	return corev1.SchemeGroupVersion.WithResource("secrets")
}

func (secretKind) newObject() client.Object { return &corev1.Secret{} }

func (secretKind) newList() client.ObjectList { return &corev1.SecretList{} }

func (secretKind) shape(obj client.Object) (string, bool) {
	s := obj.(*corev1.Secret)
	return string(s.Type), isTrue(s.Immutable)
}

func (secretKind) hashData(obj client.Object, d *digester) { d.bytes(obj.(*corev1.Secret).Data) }

func (secretKind) copyContent(dst, src client.Object) {
	d, s := dst.(*corev1.Secret), src.(*corev1.Secret)
	d.Type, d.Data, d.Immutable = s.Type, maps.Clone(s.Data), s.Immutable
}

// ConfigMaps is the Kind of ConfigMaps.
var ConfigMaps Kind = configMapKind{}

type configMapKind struct{}

func (configMapKind) String() string { return "configmaps" }

func (configMapKind) kind() mirror.Kind { return mirror.KindConfigMap }

func (configMapKind) resource() schema.GroupVersionResource {
	return corev1.SchemeGroupVersion.WithResource("configmaps")
}

func (configMapKind) newObject() client.Object { return &corev1.ConfigMap{} }

func (configMapKind) newList() client.ObjectList { return &corev1.ConfigMapList{} }

func (configMapKind) shape(obj client.Object) (string, bool) {
	return "", isTrue(obj.(*corev1.ConfigMap).Immutable)
}

func (configMapKind) hashData(obj client.Object, d *digester) {
	c := obj.(*corev1.ConfigMap)
	d.strings(c.Data)
	d.bytes(c.BinaryData)
}

func (configMapKind) copyContent(dst, src client.Object) {
	d, s := dst.(*corev1.ConfigMap), src.(*corev1.ConfigMap)
	d.Data, d.BinaryData, d.Immutable = maps.Clone(s.Data), maps.Clone(s.BinaryData), s.Immutable
}

// AllKinds are the kinds whisperer can mirror, Secrets first, as they are its main use.
var AllKinds = []Kind{Secrets, ConfigMaps}

func isTrue(b *bool) bool { return b != nil && *b }

// metadataObject returns an empty object of k's metadata alone, as the caches hold them.
func metadataObject(k Kind) *metav1.PartialObjectMetadata {
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(k.resource().GroupVersion().WithKind(string(k.kind())))
	return obj
}

// objectMeta returns the ObjectMeta of obj, a typed object or a PartialObjectMetadata.
func objectMeta(obj metav1.Object) *metav1.ObjectMeta {
	return obj.(metav1.ObjectMetaAccessor).GetObjectMeta().(*metav1.ObjectMeta)
}

// contentOf summarises the content of obj, which holds its data: read live, not from a cache.
func contentOf(k Kind, obj client.Object) mirror.Content {
	var d digester
	k.hashData(obj, &d)
	typ, immutable := k.shape(obj)
	return mirror.Content{Type: typ, Immutable: immutable, Digest: d.sum(), Size: d.size}
}

// digester hashes an object's data maps: SHA-256 over each map's keys in order, each key and value
// prefixed by its length and each map by a tag, so that no two different contents share a digest
// by moving bytes between keys, values or maps. It also counts the data's size.
type digester struct {
	h    hash.Hash
	size int
}

func (d *digester) bytes(data map[string][]byte) {
	d.tag('b', len(data))
	for _, key := range slices.Sorted(maps.Keys(data)) {
		d.part([]byte(key))
		d.part(data[key])
		d.size += len(key) + len(data[key])
	}
}

func (d *digester) strings(data map[string]string) {
	d.tag('s', len(data))
	for _, key := range slices.Sorted(maps.Keys(data)) {
		d.part([]byte(key))
		d.part([]byte(data[key]))
		d.size += len(key) + len(data[key])
	}
}

func (d *digester) tag(tag byte, n int) {
	if d.h == nil {
		d.h = sha256.New()
	}
	d.h.Write([]byte{tag})
	d.length(n)
}

func (d *digester) part(p []byte) {
	d.length(len(p))
	d.h.Write(p)
}

func (d *digester) length(n int) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n)) //nolint:gosec // G115: n is a length or a count, never negative
	d.h.Write(b[:])
}

// sum returns the digest, as the raw bytes of the hash: it is only ever compared.
func (d *digester) sum() string {
	return string(d.h.Sum(nil))
}
