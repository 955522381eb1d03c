package clustertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	setenv "k8s.io/kubectl/pkg/cmd/set/env"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StartAsPod runs bin/whisperer as pod runs the image: the arguments and environment of its
// container, the environment resolved as the kubelet resolves it for that pod (kubectl's own
// resolver), nothing of the test's environment, and a token of the pod's ServiceAccount. Two
// arguments stand for what a pod has and a process does not: --kubeconfig (in StartOperator) for
// the in-cluster configuration, and --leader-election-namespace for the namespace file of the
// ServiceAccount's mount. It returns once whisperer is ready on the readiness probe's port and
// holds the leader election Lease.
func (e Env) StartAsPod(t *testing.T, ctx context.Context, c client.Client, pod *corev1.Pod) *Process {
	t.Helper()
	container := &pod.Spec.Containers[0]
	if container.Name != "manager" || len(container.Command) > 0 || len(container.EnvFrom) > 0 {
		t.Fatalf("container %s: command %v, envFrom %v; want the manager, running the image's entrypoint, whisperer", container.Name, container.Command, container.EnvFrom)
	}
	kc, err := kubernetes.NewForConfig(e.RESTConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	var environment []string
	for _, v := range container.Env {
		value := v.Value
		if v.ValueFrom != nil {
			if value, err = setenv.GetEnvVarRefValue(kc, pod.Namespace, setenv.NewResourceStore(), v.ValueFrom, pod, container); err != nil {
				t.Fatalf("env %s of pod %s: %v", v.Name, pod.Name, err)
			}
		} else if strings.Contains(value, "$(") {
			t.Fatalf("env %s=%s refers to another variable, which this test does not expand", v.Name, value)
		}
		environment = append(environment, v.Name+"="+value)
	}
	probe := container.ReadinessProbe
	if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != "/readyz" {
		t.Fatalf("the manager's readiness probe is %+v, want an HTTP GET of /readyz", probe)
	}
	args := append(slices.Clone(container.Args), "--leader-election-namespace="+pod.Namespace)
	t.Logf("running bin/whisperer as pod %s: args %q, environment %q, ServiceAccount %s", pod.Name, args, environment, pod.Spec.ServiceAccountName)
	return e.StartOperator(t, ctx, c, Operator{
		Namespace:      pod.Namespace,
		ServiceAccount: pod.Spec.ServiceAccountName,
		Args:           args,
		Env:            environment,
		ProbeAddress:   fmt.Sprintf("127.0.0.1:%d", probe.HTTPGet.Port.IntValue()),
	})
}

// ServiceTargetAddress is where the Service of one port sends its clients when its pods are
// played by processes of this host: its target port, on loopback.
func ServiceTargetAddress(t *testing.T, ctx context.Context, c client.Client, key client.ObjectKey) string {
	t.Helper()
	svc := &corev1.Service{}
	if err := c.Get(ctx, key, svc); err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.IntValue() == 0 {
		t.Fatalf("the ports of Service %s: %+v", key, svc.Spec.Ports)
	}
	return fmt.Sprintf("127.0.0.1:%d", svc.Spec.Ports[0].TargetPort.IntValue())
}
