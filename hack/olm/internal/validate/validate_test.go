package validate

import (
	"io"
	"strings"
	"testing"

	"github.com/whisperer-operator/whisperer/hack/olm/internal/bundle"
	"github.com/whisperer-operator/whisperer/hack/olm/internal/testbundle"
)

func TestTheGeneratedBundleIsValid(t *testing.T) {
	findings, err := Bundle(testbundle.Write(t, "0.1.0", nil), "", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if Failed(findings) {
		t.Errorf("findings: %v", findings)
	}
	for _, f := range findings {
		if !strings.Contains(f.Message, "Migrate the API(s) for events") {
			t.Errorf("unexpected accepted finding %s", f)
		}
	}
}

func TestInvalidMetadataFails(t *testing.T) {
	for name, change := range map[string]func(*bundle.Bundle){
		"unknown capability level": func(b *bundle.Bundle) { b.CSV.Annotations["capabilities"] = "Magic" },
		"unknown category":         func(b *bundle.Bundle) { b.CSV.Annotations["categories"] = "Secrets" },
		"maintainer without email": func(b *bundle.Bundle) { b.CSV.Spec.Maintainers[0].Email = "nobody" },
		"no icon":                  func(b *bundle.Bundle) { b.CSV.Spec.Icon = nil },
		"no resource requests": func(b *bundle.Bundle) {
			b.CSV.Spec.InstallStrategy.StrategySpec.DeploymentSpecs[0].Spec.Template.Spec.Containers[0].Resources.Requests = nil
		},
		"no channel": func(b *bundle.Bundle) {
			delete(b.Annotations, "operators.operatorframework.io.bundle.channels.v1")
		},
	} {
		t.Run(name, func(t *testing.T) {
			findings, err := Bundle(testbundle.Write(t, "0.1.0", change), "", io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !Failed(findings) {
				t.Errorf("no finding for a bundle with %s: %v", name, findings)
			}
		})
	}
}

func TestOnlyTheRBACEventsWarningIsAccepted(t *testing.T) {
	rbac := `Value whisperer.v0.1.0: this bundle is using APIs which were deprecated and removed in v1.25. More info: https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-25. Migrate the API(s) for events: (["ClusterServiceVersion.Spec.InstallStrategy.StrategySpec.ClusterPermissions[0].Rules[2]"])`
	manifest := `Value whisperer.v0.1.0: this bundle is using APIs which were deprecated and removed in v1.25. More info: https://kubernetes.io/docs/reference/using-api/deprecation-guide/#v1-25. Migrate the API(s) for Event: (["my-event"])`
	mixed := strings.Replace(rbac, `"])`, `", "some-event"])`, 1)
	for msg, want := range map[string]bool{rbac: true, manifest: false, mixed: false} {
		if got := accept(Finding{Warning: true, Message: msg}).Accepted != ""; got != want {
			t.Errorf("accepted %v, want %v: %s", got, want, msg)
		}
	}
	if accept(Finding{Message: rbac}).Accepted != "" {
		t.Error("an error was accepted")
	}
}
