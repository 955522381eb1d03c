// Package config_test checks what `make deploy` applies: config/default rendered by kustomize.
package config_test

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

func renderDefault(t *testing.T) resmap.ResMap {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), "default")
	if err != nil {
		t.Fatalf("kustomize build config/default: %v", err)
	}
	return resources
}

// decode finds the one resource of kind and name and decodes it into into.
func decode(t *testing.T, resources resmap.ResMap, kind, name string, into any) {
	t.Helper()
	for _, r := range resources.Resources() {
		if r.GetKind() != kind || r.GetName() != name {
			continue
		}
		content, err := r.AsYAML()
		if err == nil {
			err = yaml.UnmarshalStrict(content, into)
		}
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("config/default renders no %s %s", kind, name)
}

func TestDeploymentIsHardened(t *testing.T) {
	deployment := &appsv1.Deployment{}
	decode(t, renderDefault(t), "Deployment", "whisperer-controller-manager", deployment)
	pod := deployment.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and the RuntimeDefault seccomp profile", sc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want the manager alone", len(pod.Containers))
	}
	manager := pod.Containers[0]
	sc := manager.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("the manager container has no securityContext")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("allowPrivilegeEscalation is not false")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("readOnlyRootFilesystem is not true")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("capabilities %+v: want drop ALL and nothing added", sc.Capabilities)
	}
	for _, resource := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if manager.Resources.Requests.Name(resource, "").IsZero() || manager.Resources.Limits.Name(resource, "").IsZero() {
			t.Errorf("no %s request or limit: %+v", resource, manager.Resources)
		}
	}
	if !slices.Contains(manager.Args, "--leader-elect") || !slices.Contains(manager.Args, "--metrics-bind-address=:8443") {
		t.Errorf("args %v: want leader election and the secured metrics endpoint", manager.Args)
	}
	if manager.LivenessProbe == nil || manager.ReadinessProbe == nil {
		t.Error("the manager has no liveness or readiness probe")
	}
	memLimit := slices.IndexFunc(manager.Env, func(e corev1.EnvVar) bool {
		return e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil &&
			e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
	})
	if memLimit < 0 {
		t.Errorf("env %v: want GOMEMLIMIT set from the container's memory limit", manager.Env)
	}
}

// TestRBACIsLeastPrivilege holds the operator's permissions to what it uses: the generated
// ClusterRole, and leader election in its own namespace only.
func TestRBACIsLeastPrivilege(t *testing.T) {
	resources := renderDefault(t)
	manager := &rbacv1.ClusterRole{}
	decode(t, resources, "ClusterRole", "whisperer-manager-role", manager)
	want := map[string][]string{
		"/secrets":             {"create", "delete", "get", "list", "update", "watch"},
		"/configmaps":          {"create", "delete", "get", "list", "update", "watch"},
		"/namespaces":          {"get", "list", "watch"},
		"/serviceaccounts":     {"get", "list", "patch", "watch"},
		"events.k8s.io/events": {"create", "get"},
	}
	got := map[string][]string{}
	for _, rule := range manager.Rules {
		checkNoWildcard(t, rule)
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				got[group+"/"+resource] = append(got[group+"/"+resource], rule.Verbs...)
			}
		}
	}
	for key, verbs := range got {
		slices.Sort(verbs)
		if !slices.Equal(verbs, want[key]) {
			t.Errorf("ClusterRole grants %v on %s, want %v", verbs, key, want[key])
		}
	}
	if len(got) != len(want) {
		t.Errorf("ClusterRole covers %v, want exactly %v", got, want)
	}

	leaderElection := &rbacv1.Role{}
	decode(t, resources, "Role", "whisperer-leader-election-role", leaderElection)
	if leaderElection.Namespace != "whisperer-system" {
		t.Errorf("leader election Role in namespace %q, want the operator's own", leaderElection.Namespace)
	}
	for _, rule := range leaderElection.Rules {
		checkNoWildcard(t, rule)
	}
}

func checkNoWildcard(t *testing.T, rule rbacv1.PolicyRule) {
	t.Helper()
	for _, field := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.ResourceNames} {
		if slices.Contains(field, "*") {
			t.Errorf("rule %+v has a wildcard", rule)
		}
	}
	for _, verb := range []string{"escalate", "bind", "impersonate"} {
		if slices.Contains(rule.Verbs, verb) {
			t.Errorf("rule %+v grants %s", rule, verb)
		}
	}
}
