package main

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// kind is a kind of object that whisperer mirrors and the benchmark writes: how to build one, read
// the version of its data, and reach it through a core/v1 REST client. The phases and the raw
// writer know nothing else of the kind, so a ConfigMap phase is one more value of this type.
type kind struct {
	name string // as in the table: "Secret"
	// resource is the API resource, as the API server's request metrics name it.
	resource string
	// object returns an empty object, to decode a response into.
	object func() runtime.Object
	// build returns an object of size bytes of data, the version among them.
	build func(meta metav1.ObjectMeta, size int, version string) runtime.Object
	// version returns the version the data of obj carries.
	version func(obj runtime.Object) string
	// versionPatch is a merge patch that sets the version in the data.
	versionPatch func(version string) string
}

var secretKind = kind{
	name:     "Secret",
	resource: "secrets",
	object:   func() runtime.Object { return &corev1.Secret{} },
	build: func(meta metav1.ObjectMeta, size int, version string) runtime.Object {
		data := map[string][]byte{}
		for k, v := range payload(size, version) {
			data[k] = []byte(v)
		}
		return &corev1.Secret{ObjectMeta: meta, Data: data}
	},
	version: func(obj runtime.Object) string { return string(obj.(*corev1.Secret).Data[versionKey]) },
	// stringData is written into data by the API server, so the patch needs no base64.
	versionPatch: func(version string) string { return `{"stringData":{"` + versionKey + `":"` + version + `"}}` },
}

var configMapKind = kind{
	name:     "ConfigMap",
	resource: "configmaps",
	object:   func() runtime.Object { return &corev1.ConfigMap{} },
	build: func(meta metav1.ObjectMeta, size int, version string) runtime.Object {
		return &corev1.ConfigMap{ObjectMeta: meta, Data: payload(size, version)}
	},
	version:      func(obj runtime.Object) string { return obj.(*corev1.ConfigMap).Data[versionKey] },
	versionPatch: func(version string) string { return `{"data":{"` + versionKey + `":"` + version + `"}}` },
}

// kinds are the kinds of sources the benchmark can measure, by the name --kinds gives them, as
// whisperer's --resources does.
var kinds = map[string]kind{"secrets": secretKind, "configmaps": configMapKind}

// payload is size bytes of data in two keys: the version the observers read, and filler.
func payload(size int, version string) map[string]string {
	return map[string]string{versionKey: version, "filler": strings.Repeat("x", max(0, size-len(version)))}
}

func (k kind) create(ctx context.Context, c rest.Interface, obj runtime.Object) (metav1.Object, error) {
	out := k.object()
	err := c.Post().Namespace(obj.(metav1.Object).GetNamespace()).Resource(k.resource).Body(obj).Do(ctx).Into(out)
	return out.(metav1.Object), err
}

// update replaces the object, on the condition that it is still at the object's resourceVersion.
func (k kind) update(ctx context.Context, c rest.Interface, obj runtime.Object) (metav1.Object, error) {
	m := obj.(metav1.Object)
	out := k.object()
	err := c.Put().Namespace(m.GetNamespace()).Resource(k.resource).Name(m.GetName()).Body(obj).Do(ctx).Into(out)
	return out.(metav1.Object), err
}

func (k kind) patch(ctx context.Context, c rest.Interface, namespace, name, patch string) error {
	return c.Patch(types.MergePatchType).Namespace(namespace).Resource(k.resource).Name(name).Body([]byte(patch)).Do(ctx).Error()
}

// delete deletes the object on the condition that it is still the one written, as whisperer
// deletes a mirror; without a written object, unconditionally.
func (k kind) delete(ctx context.Context, c rest.Interface, namespace, name string, written metav1.Object) error {
	var opts metav1.DeleteOptions
	if written != nil {
		uid, version := written.GetUID(), written.GetResourceVersion()
		opts.Preconditions = &metav1.Preconditions{UID: &uid, ResourceVersion: &version}
	}
	return c.Delete().Namespace(namespace).Resource(k.resource).Name(name).Body(&opts).Do(ctx).Error()
}

// listWatch lists and watches the objects of this kind that match selector, in every namespace.
func (k kind) listWatch(c rest.Interface, selector string) cache.ListerWatcher {
	return cache.NewFilteredListWatchFromClient(c, k.resource, metav1.NamespaceAll, func(opts *metav1.ListOptions) {
		opts.LabelSelector = selector
	})
}
