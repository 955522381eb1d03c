// Package validate runs on a bundle folder the checks `operator-sdk bundle validate
// --select-optional suite=operatorframework` runs: the bundle format and content checks of
// operator-registry, the default validators of operator-framework/api (CSV, CRD, bundle), and
// the optional validators of the operatorframework suite.
package validate

import (
	"fmt"
	"io"
	"path/filepath"
	"regexp"

	apimanifests "github.com/operator-framework/api/pkg/manifests"
	apivalidation "github.com/operator-framework/api/pkg/validation"
	apierrors "github.com/operator-framework/api/pkg/validation/errors"
	interfaces "github.com/operator-framework/api/pkg/validation/interfaces"
	registrybundle "github.com/operator-framework/operator-registry/pkg/lib/bundle"
	"github.com/sirupsen/logrus"
)

// Suite names the validators Bundle runs, after the format and content checks.
var Suite = []struct {
	Name      string
	Validator interfaces.Validator
}{
	{"default: ClusterServiceVersion", apivalidation.ClusterServiceVersionValidator},
	{"default: CustomResourceDefinition", apivalidation.CustomResourceDefinitionValidator},
	{"default: Bundle", apivalidation.BundleValidator},
	// operatorhub (v1) is deprecated in favour of these three, which make the same checks; it
	// would only add a warning that says so.
	{"operatorhubv2", apivalidation.OperatorHubV2Validator},
	{"standardcapabilities", apivalidation.StandardCapabilitiesValidator},
	{"standardcategories", apivalidation.StandardCategoriesValidator},
	{"good-practices", apivalidation.GoodPracticesValidator},
	{"alpha-deprecated-apis", apivalidation.AlphaDeprecatedAPIsValidator},
	{"object", apivalidation.ObjectValidator},
}

// Finding is one error or warning of a validator.
type Finding struct {
	Validator string
	Warning   bool
	Message   string
	// Accepted says why this warning is a known false positive; empty for a real finding.
	Accepted string
}

func (f Finding) String() string {
	level := "error"
	if f.Warning {
		level = "warning"
	}
	if f.Accepted != "" {
		level = "accepted warning (" + f.Accepted + ")"
	}
	return fmt.Sprintf("%s: %s: %s", level, f.Validator, f.Message)
}

// rbacOnEventsGroup is the deprecated-API check's warning about a permission on events in the
// events.k8s.io group, that names only RBAC rules of the CSV (never a manifest).
var rbacOnEventsGroup = regexp.MustCompile(`removed in v1\.25\. .* Migrate the API\(s\) for events: \((\["ClusterServiceVersion\.Spec\.InstallStrategy\.StrategySpec\.(Cluster)?Permissions\[\d+\]\.Rules\[\d+\]"(, )?)+\]\)$`)

// accept marks the one known false positive: RBAC rules have no API version, and the check
// warns about any rule on events.k8s.io events because events.k8s.io/v1beta1 went away in 1.25.
// whisperer records Events through events.k8s.io/v1, GA since 1.19. A v1beta1 Event manifest in
// the bundle would still be reported (it is named by kind, "Event", not by "events").
func accept(f Finding) Finding {
	if f.Warning && rbacOnEventsGroup.MatchString(f.Message) {
		f.Accepted = "RBAC rules carry no API version; whisperer uses events.k8s.io/v1"
	}
	return f
}

// Failed reports whether findings hold an error or a warning that is not accepted.
func Failed(findings []Finding) bool {
	for _, f := range findings {
		if f.Accepted == "" {
			return true
		}
	}
	return false
}

// Bundle validates the bundle in dir (holding manifests/ and metadata/). k8sVersion is the
// Kubernetes version the deprecated-API check targets; empty means the CSV's minKubeVersion.
// It returns every error and warning found; an error means the bundle could not be read.
func Bundle(dir, k8sVersion string, log io.Writer) ([]Finding, error) {
	logger := logrus.New()
	logger.SetOutput(log)
	registry := registrybundle.NewImageValidator(nil, logrus.NewEntry(logger))
	var findings []Finding
	if err := registry.ValidateBundleFormat(dir); err != nil {
		findings = append(findings, Finding{Validator: "bundle format", Message: err.Error()})
	}
	if err := registry.ValidateBundleContent(filepath.Join(dir, "manifests")); err != nil {
		findings = append(findings, Finding{Validator: "bundle content", Message: err.Error()})
	}

	b, err := apimanifests.GetBundleFromDir(filepath.Join(dir, "manifests"))
	if err != nil {
		return nil, fmt.Errorf("reading bundle %s: %w", dir, err)
	}
	// As operator-sdk does: the bundle, each object, and the optional values.
	objs := b.ObjectsToValidate()
	for _, o := range b.Objects {
		objs = append(objs, o)
	}
	objs = append(objs, map[string]string{"k8s-version": k8sVersion})
	for _, v := range Suite {
		findings = append(findings, results(v.Name, v.Validator.Validate(objs...))...)
	}
	return findings, nil
}

func results(validator string, rs []apierrors.ManifestResult) []Finding {
	var findings []Finding
	for _, r := range rs {
		for _, e := range r.Errors {
			findings = append(findings, Finding{Validator: validator, Message: e.Error()})
		}
		for _, w := range r.Warnings {
			findings = append(findings, accept(Finding{Validator: validator, Warning: true, Message: w.Error()}))
		}
	}
	return findings
}
