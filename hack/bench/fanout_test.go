package main

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Sources with namespaces "*" mirror into every namespace but their own and the excluded ones: a
// count that includes those waits for mirrors that never come.
func TestFanoutTargets(t *testing.T) {
	var namespaces []corev1.Namespace
	for _, name := range []string{"bench-00000", "default", "fanout", "kube-node-lease", "kube-public", "kube-system", "late-00000", "source"} {
		namespaces = append(namespaces, corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
	if got, want := fanoutTargets(namespaces), []string{"bench-00000", "default", "late-00000", "source"}; !slices.Equal(got, want) {
		t.Fatalf("fanoutTargets = %v, want %v", got, want)
	}
}

func TestParseKinds(t *testing.T) {
	got, serviceAccounts, err := parseKinds("secrets, configmaps,serviceaccounts")
	if err != nil || len(got) != 2 || got[0].name != "Secret" || got[1].name != "ConfigMap" || !serviceAccounts {
		t.Fatalf("parseKinds = %v, %v, %v", got, serviceAccounts, err)
	}
	if got, serviceAccounts, err := parseKinds("configmaps"); err != nil || len(got) != 1 || serviceAccounts {
		t.Fatalf("parseKinds(configmaps) = %v, %v, %v", got, serviceAccounts, err)
	}
	for _, bad := range []string{"", "secrets,secrets", "pods", "serviceaccounts", "configmaps,serviceaccounts", "secrets,serviceaccounts,serviceaccounts"} {
		if _, _, err := parseKinds(bad); err == nil {
			t.Errorf("parseKinds(%q) gave no error", bad)
		}
	}
}
