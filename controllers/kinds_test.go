package controllers

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/whisperer-operator/whisperer/internal/mirror"
)

// testKind is what the tests need to know of a kind they run for: the behaviours of the README's
// table hold for Secrets and ConfigMaps alike, and each test is written once for both.
type testKind struct {
	Kind
	// name is the kind's name, as Events and Warnings say it.
	name string
	// newSource returns a source in namespace, named name, asking for targets, with some data.
	newSource func(namespace, name string, targets ...string) client.Object
	// data returns obj's data as strings, whatever fields the kind keeps it in.
	data func(obj client.Object) map[string]string
	// setData replaces obj's data.
	setData func(obj client.Object, data map[string]string)
	// sameShape returns why m's content, besides its data, differs from source's.
	sameShape func(source, m client.Object) error
}

var (
	secretKindT = testKind{
		Kind: Secrets, name: "Secret",
		newSource: func(namespace, name string, targets ...string) client.Object {
			return sourceSecret(namespace, name, targets...)
		},
		data: func(obj client.Object) map[string]string {
			out := map[string]string{}
			for k, v := range obj.(*corev1.Secret).Data {
				out[k] = string(v)
			}
			return out
		},
		// A Secret's data is all binary: "binary:" keys, which tests use for ConfigMaps'
		// binaryData, are plain keys.
		setData: func(obj client.Object, data map[string]string) {
			s := obj.(*corev1.Secret)
			s.Data = map[string][]byte{}
			for k, v := range data {
				s.Data[strings.TrimPrefix(k, "binary:")] = []byte(v)
			}
		},
		sameShape: func(source, m client.Object) error {
			s, c := source.(*corev1.Secret), m.(*corev1.Secret)
			if s.Type != c.Type || isTrue(s.Immutable) != isTrue(c.Immutable) {
				return fmt.Errorf("type %q, immutable %v; want %q, %v", c.Type, isTrue(c.Immutable), s.Type, isTrue(s.Immutable))
			}
			return nil
		},
	}
	configMapKindT = testKind{
		Kind: ConfigMaps, name: "ConfigMap",
		newSource: func(namespace, name string, targets ...string) client.Object {
			return &corev1.ConfigMap{
				ObjectMeta: sourceMeta(namespace, name, targets...),
				Data:       map[string]string{"ca.crt": "-----BEGIN CERTIFICATE-----"},
				BinaryData: map[string][]byte{"blob": {0xde, 0xad, 0xbe, 0xef}},
			}
		},
		data: func(obj client.Object) map[string]string {
			c := obj.(*corev1.ConfigMap)
			out := maps.Clone(c.Data)
			if out == nil {
				out = map[string]string{}
			}
			for k, v := range c.BinaryData {
				out["binary:"+k] = string(v)
			}
			return out
		},
		setData: func(obj client.Object, data map[string]string) {
			c := obj.(*corev1.ConfigMap)
			c.Data, c.BinaryData = map[string]string{}, nil
			for k, v := range data {
				if name, binary := strings.CutPrefix(k, "binary:"); binary {
					if c.BinaryData == nil {
						c.BinaryData = map[string][]byte{}
					}
					c.BinaryData[name] = []byte(v)
				} else {
					c.Data[k] = v
				}
			}
		},
		sameShape: func(source, m client.Object) error {
			if s, c := source.(*corev1.ConfigMap), m.(*corev1.ConfigMap); isTrue(s.Immutable) != isTrue(c.Immutable) {
				return fmt.Errorf("immutable %v, want %v", isTrue(c.Immutable), isTrue(s.Immutable))
			}
			return nil
		},
	}
	testKinds = []testKind{secretKindT, configMapKindT}
)

// forEachKind runs test once for each kind whisperer mirrors.
func forEachKind(t *testing.T, test func(t *testing.T, k testKind)) {
	for _, k := range testKinds {
		t.Run(k.name, func(t *testing.T) { test(t, k) })
	}
}

// kindOf returns the testKind of obj.
func kindOf(obj client.Object) testKind {
	for _, k := range testKinds {
		if fmt.Sprintf("%T", k.newObject()) == fmt.Sprintf("%T", obj) {
			return k
		}
	}
	panic(fmt.Sprintf("no test kind for %T", obj))
}

// sourceMeta is the metadata of a source in namespace, named name, that asks for targets.
func sourceMeta(namespace, name string, targets ...string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: namespace,
		Labels:      map[string]string{mirror.LabelSync: "true"},
		Annotations: map[string]string{mirror.AnnotationNamespaces: strings.Join(targets, ",")},
	}
}

// getObject reads an object of kind k live; it returns nil when there is none.
func getObject(t *testing.T, k testKind, namespace, name string) client.Object {
	t.Helper()
	obj := k.newObject()
	err := k8s.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading %s %s/%s: %v", k.name, namespace, name, err)
	}
	return obj
}

// mirrorsOf lists, live, the namespaces holding an object labelled as a mirror of source, as the
// seed's `kubectl get secrets -l secret-syncer.jeffl.es/name=...,secret-syncer.jeffl.es/namespace=...` does.
func mirrorsOf(t *testing.T, source client.Object) []string {
	t.Helper()
	list := kindOf(source).newList()
	err := k8s.List(context.Background(), list, client.MatchingLabels{
		mirror.LabelSourceName: mirror.NameLabelValue(source.GetName()), mirror.LabelSourceNamespace: source.GetNamespace(),
	})
	if err != nil {
		t.Fatal(err)
	}
	var namespaces []string
	_ = meta.EachListItem(list, func(obj runtime.Object) error {
		namespaces = append(namespaces, obj.(client.Object).GetNamespace())
		return nil
	})
	return namespaces
}

// checkFaithful returns why m is not a faithful mirror of source, or nil. Labels and annotations
// that others add to a mirror are allowed.
func checkFaithful(source, m client.Object) error {
	if m == nil || reflect.ValueOf(m).IsNil() {
		return fmt.Errorf("no mirror")
	}
	k := kindOf(source)
	wantLabels := mirror.MirrorLabels(client.ObjectKeyFromObject(source))
	for key, value := range wantLabels {
		if m.GetLabels()[key] != value {
			return fmt.Errorf("labels %v, want %v among them", m.GetLabels(), wantLabels)
		}
	}
	_, namespaces := m.GetAnnotations()[mirror.AnnotationNamespaces]
	_, selector := m.GetAnnotations()[mirror.AnnotationNamespaceSelector]
	switch {
	case m.GetLabels()[mirror.LabelSync] != "":
		return fmt.Errorf("carries the sync label")
	case namespaces || selector:
		return fmt.Errorf("carries a source annotation")
	case !maps.Equal(k.data(m), k.data(source)):
		return fmt.Errorf("data %v, want the source's %v", k.data(m), k.data(source))
	}
	return k.sameShape(source, m)
}
