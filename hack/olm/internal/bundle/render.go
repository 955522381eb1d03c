// Package bundle turns the kustomize configuration in config/ into an OLM registry+v1 bundle:
// a ClusterServiceVersion whose install strategy holds the operator's Deployment and the RBAC
// bound to its ServiceAccount, the other objects as plain manifests, and the bundle metadata.
// The output depends only on its inputs: the same config/ and Options give the same bytes.
package bundle

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// render builds the kustomization in dir, as `kustomize build dir` would, and returns its
// objects in kustomize's output order.
func render(dir string) ([]*unstructured.Unstructured, error) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("rendering %s with kustomize: %w", dir, err)
	}
	var objects []*unstructured.Unstructured
	for _, r := range resources.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %s: %w", dir, r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(data, &u.Object); err != nil {
			return nil, fmt.Errorf("rendering %s: %s: %w", dir, r.CurId(), err)
		}
		objects = append(objects, u)
	}
	return objects, nil
}
