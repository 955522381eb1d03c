package clustertest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodeheartbeat "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

// NodeName is the node kwok plays, where every pod runs.
const NodeName = "kwok-node-0"

// StartNodeLayer gives the cluster what runs pods in a real one, minus the containers:
// kube-scheduler binds pods to a node, and kwok plays that node's kubelet (heartbeats, and pods
// marked Running and Ready once they are bound). No container ever runs. The control plane must
// run the deployment and replicaset controllers for Deployments to get pods, and nodelifecycle to
// lift the not-ready taint of the new node.
func (e Env) StartNodeLayer(t *testing.T, ctx context.Context, c client.Client) {
	t.Helper()
	e.Start(t, "kube-scheduler", nil, filepath.Join(e.ControlPlaneDir, "kube-scheduler"),
		"--kubeconfig="+e.Kubeconfig, "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=0")

	// kwok's own default stages: node initialize and heartbeat, pod ready, complete and delete.
	stages := filepath.Join(e.WorkDir, "kwok-stages.yaml")
	content := strings.Join([]string{nodefast.DefaultNodeInit, nodeheartbeat.DefaultNodeHeartbeat,
		podfast.DefaultPodReady, podfast.DefaultPodComplete, podfast.DefaultPodDelete}, "\n---\n")
	if err := os.WriteFile(stages, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Start(t, "kwok", nil, e.Bin("kwok"), "--kubeconfig="+e.Kubeconfig, "--config="+stages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-ip=127.0.0.1", "--node-port=0")

	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        NodeName,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			Labels:      map[string]string{"type": "kwok", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
		},
		Status: corev1.NodeStatus{
			Capacity:    nodeResources(),
			Allocatable: nodeResources(),
		},
	}
	if err := c.Create(ctx, node); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, ctx, "the kwok node is Ready", func(ctx context.Context) (bool, string, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(node), node); err != nil {
			return false, "", err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, "Ready=" + string(cond.Status), nil
			}
		}
		return false, "no Ready condition", nil
	})
}

func nodeResources() corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
}

// WaitRolledOut waits for the Deployment to have rolled out its current spec: every replica
// updated and available, and no pod of an older ReplicaSet left. Then it checks that each pod
// runs, on the kwok node, with the template's image and ServiceAccount, and returns the
// Deployment and its pods.
func WaitRolledOut(t *testing.T, ctx context.Context, c client.Client, key client.ObjectKey) (*appsv1.Deployment, []corev1.Pod) {
	t.Helper()
	dep := &appsv1.Deployment{}
	var pods []corev1.Pod
	WaitFor(t, ctx, "Deployment "+key.String()+" rolled out", func(ctx context.Context) (bool, string, error) {
		if err := c.Get(ctx, key, dep); err != nil {
			return false, "", err
		}
		list := &corev1.PodList{}
		if err := c.List(ctx, list, client.InNamespace(key.Namespace), client.MatchingLabels(dep.Spec.Selector.MatchLabels)); err != nil {
			return false, "", err
		}
		pods = list.Items
		s, want := dep.Status, *dep.Spec.Replicas
		done := s.ObservedGeneration == dep.Generation && s.UpdatedReplicas == want && s.AvailableReplicas == want &&
			s.Replicas == want && len(pods) == int(want)
		return done, fmt.Sprintf("generation %d observed %d, %d replicas, %d updated, %d available, %d pods, want %d",
			dep.Generation, s.ObservedGeneration, s.Replicas, s.UpdatedReplicas, s.AvailableReplicas, len(pods), want), nil
	})
	template := dep.Spec.Template.Spec
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != NodeName ||
			p.Spec.Containers[0].Image != template.Containers[0].Image || p.Spec.ServiceAccountName != template.ServiceAccountName {
			t.Errorf("pod %s of %s: phase %s on node %q, image %s as %s; want Running on %s, image %s as %s", p.Name, key,
				p.Status.Phase, p.Spec.NodeName, p.Spec.Containers[0].Image, p.Spec.ServiceAccountName,
				NodeName, template.Containers[0].Image, template.ServiceAccountName)
		}
	}
	return dep, pods
}
