package bundle

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/blang/semver/v4"
	"github.com/operator-framework/api/pkg/operators/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// Options say which bundle to make.
type Options struct {
	// ConfigDir is the kustomization holding the CSV base and the operator's manifests
	// (config/manifests).
	ConfigDir string
	// Package is the OLM package name, and the CSV's name before ".v<version>".
	Package string
	// Version is the operator's semantic version, without a leading "v".
	Version string
	// Image is the operator image the Deployment runs.
	Image string
	// CreatedAt, when set, replaces the base's createdAt annotation (RFC 3339).
	CreatedAt string
	// Channels the bundle belongs to; DefaultChannel is the package's default channel.
	Channels       []string
	DefaultChannel string
	// ManagerContainer is the Deployment container that runs Image.
	ManagerContainer string
}

// Bundle is a registry+v1 bundle.
type Bundle struct {
	CSV *v1alpha1.ClusterServiceVersion
	// Objects are the bundle's other manifests, without a namespace: OLM creates them in the
	// namespace it installs the operator into.
	Objects []*unstructured.Unstructured
	// Annotations are the bundle's metadata/annotations.yaml, and its image's labels.
	Annotations map[string]string
}

// Generate renders opts.ConfigDir and builds the bundle from it.
func Generate(opts Options) (*Bundle, error) {
	if _, err := semver.Parse(opts.Version); err != nil {
		return nil, fmt.Errorf("version %q is not a semantic version: %w", opts.Version, err)
	}
	if opts.CreatedAt != "" {
		if _, err := time.Parse(time.RFC3339, opts.CreatedAt); err != nil {
			return nil, fmt.Errorf("createdAt %q is not an RFC 3339 time: %w", opts.CreatedAt, err)
		}
	}
	objects, err := render(opts.ConfigDir)
	if err != nil {
		return nil, err
	}
	parts, err := sortObjects(objects)
	if err != nil {
		return nil, err
	}
	if parts.csv == nil {
		return nil, fmt.Errorf("%s has no ClusterServiceVersion base", opts.ConfigDir)
	}
	if len(parts.deployments) == 0 {
		return nil, fmt.Errorf("%s has no Deployment", opts.ConfigDir)
	}
	csv := parts.csv
	strategy, consumed, err := installStrategy(parts, opts)
	if err != nil {
		return nil, err
	}
	csv.Name = opts.Package + ".v" + opts.Version
	csv.Namespace = ""
	csv.Spec.Version.Version = semver.MustParse(opts.Version)
	csv.Spec.InstallStrategy = v1alpha1.NamedInstallStrategy{
		StrategyName: v1alpha1.InstallStrategyNameDeployment,
		StrategySpec: strategy,
	}
	csv.Spec.RelatedImages = relatedImages(csv.Spec.RelatedImages, opts)
	if csv.Annotations == nil {
		csv.Annotations = map[string]string{}
	}
	csv.Annotations["containerImage"] = opts.Image
	if opts.CreatedAt != "" {
		csv.Annotations["createdAt"] = opts.CreatedAt
	}

	b := &Bundle{CSV: csv, Annotations: annotations(opts)}
	for _, o := range parts.others {
		if consumed[key(o)] {
			continue
		}
		o = o.DeepCopy()
		o.SetNamespace("")
		b.Objects = append(b.Objects, o)
	}
	return b, nil
}

// parts are the rendered objects, sorted by what the bundle does with them.
type parts struct {
	csv          *v1alpha1.ClusterServiceVersion
	deployments  []appsv1.Deployment
	roles        map[string]rbacv1.Role
	clusterRoles map[string]rbacv1.ClusterRole
	bindings     []rbacv1.RoleBinding
	clusterBinds []rbacv1.ClusterRoleBinding
	// others are every object but the CSV, the Deployments and the Namespaces, in render order;
	// the RBAC and ServiceAccounts that become the install strategy are dropped from them later.
	others []*unstructured.Unstructured
}

func sortObjects(objects []*unstructured.Unstructured) (*parts, error) {
	p := &parts{roles: map[string]rbacv1.Role{}, clusterRoles: map[string]rbacv1.ClusterRole{}}
	for _, o := range objects {
		var err error
		other := true
		switch o.GetKind() {
		case "ClusterServiceVersion":
			if p.csv != nil {
				return nil, errors.New("more than one ClusterServiceVersion base")
			}
			p.csv = &v1alpha1.ClusterServiceVersion{}
			err = fromUnstructured(o, p.csv)
			other = false
		case "Namespace":
			// OLM installs into the namespace of the OperatorGroup, not into config/'s.
			other = false
		case "Deployment":
			var d appsv1.Deployment
			err = fromUnstructured(o, &d)
			other = false
			p.deployments = append(p.deployments, d)
		case "Role":
			var r rbacv1.Role
			err = fromUnstructured(o, &r)
			p.roles[r.Name] = r
		case "ClusterRole":
			var r rbacv1.ClusterRole
			err = fromUnstructured(o, &r)
			p.clusterRoles[r.Name] = r
		case "RoleBinding":
			var rb rbacv1.RoleBinding
			err = fromUnstructured(o, &rb)
			p.bindings = append(p.bindings, rb)
		case "ClusterRoleBinding":
			var crb rbacv1.ClusterRoleBinding
			err = fromUnstructured(o, &crb)
			p.clusterBinds = append(p.clusterBinds, crb)
		}
		if err != nil {
			return nil, err
		}
		if other {
			p.others = append(p.others, o)
		}
	}
	return p, nil
}

// installStrategy builds the Deployment install strategy: each Deployment, and for each of
// their ServiceAccounts the rules of the Roles (permissions) and ClusterRoles
// (clusterPermissions) bound to it. It returns the objects it turned into the strategy, which
// OLM creates itself: the ServiceAccounts, their bindings, and the roles nothing else binds.
func installStrategy(p *parts, opts Options) (v1alpha1.StrategyDetailsDeployment, map[string]bool, error) {
	var s v1alpha1.StrategyDetailsDeployment
	var accounts []string
	for _, d := range p.deployments {
		spec := d.Spec.DeepCopy()
		if err := setImage(spec, opts); err != nil {
			return s, nil, fmt.Errorf("deployment %s: %w", d.Name, err)
		}
		s.DeploymentSpecs = append(s.DeploymentSpecs, v1alpha1.StrategyDeploymentSpec{
			Name: d.Name, Spec: *spec, Label: d.Labels,
		})
		sa := spec.Template.Spec.ServiceAccountName
		if sa == "" {
			return s, nil, fmt.Errorf("deployment %s names no serviceAccountName: OLM would give it no permissions", d.Name)
		}
		if !slices.Contains(accounts, sa) {
			accounts = append(accounts, sa)
		}
	}

	consumed := map[string]bool{}
	boundElsewhere := map[string]bool{}
	rules := map[string][]rbacv1.PolicyRule{}
	clusterRules := map[string][]rbacv1.PolicyRule{}
	bind := func(kind, name string, subjects []rbacv1.Subject, ref rbacv1.RoleRef, into map[string][]rbacv1.PolicyRule) error {
		sa, others := boundAccount(subjects, accounts)
		if sa == "" {
			boundElsewhere[keyOf(ref.Kind, ref.Name)] = true
			return nil
		}
		if others {
			return fmt.Errorf("%s %s binds the operator's ServiceAccount %s and other subjects: give them a binding of their own", kind, name, sa)
		}
		r, err := roleRules(p, ref)
		if err != nil {
			return fmt.Errorf("%s %s: %w", kind, name, err)
		}
		into[sa] = append(into[sa], r...)
		consumed[keyOf(kind, name)] = true
		consumed[keyOf(ref.Kind, ref.Name)] = true
		return nil
	}
	for _, rb := range p.bindings {
		if err := bind("RoleBinding", rb.Name, rb.Subjects, rb.RoleRef, rules); err != nil {
			return s, nil, err
		}
	}
	for _, crb := range p.clusterBinds {
		if err := bind("ClusterRoleBinding", crb.Name, crb.Subjects, crb.RoleRef, clusterRules); err != nil {
			return s, nil, err
		}
	}
	for ref := range boundElsewhere {
		delete(consumed, ref)
	}
	for _, sa := range accounts {
		consumed[keyOf("ServiceAccount", sa)] = true
		if len(rules[sa]) > 0 {
			s.Permissions = append(s.Permissions, v1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa, Rules: rules[sa]})
		}
		if len(clusterRules[sa]) > 0 {
			s.ClusterPermissions = append(s.ClusterPermissions, v1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa, Rules: clusterRules[sa]})
		}
	}
	return s, consumed, nil
}

func setImage(spec *appsv1.DeploymentSpec, opts Options) error {
	for i := range spec.Template.Spec.Containers {
		if spec.Template.Spec.Containers[i].Name == opts.ManagerContainer {
			spec.Template.Spec.Containers[i].Image = opts.Image
			return nil
		}
	}
	return fmt.Errorf("no container named %q", opts.ManagerContainer)
}

// boundAccount returns the operator ServiceAccount among subjects, if any, and whether
// subjects name anyone else.
func boundAccount(subjects []rbacv1.Subject, accounts []string) (account string, others bool) {
	for _, s := range subjects {
		if s.Kind == rbacv1.ServiceAccountKind && slices.Contains(accounts, s.Name) && account == "" {
			account = s.Name
			continue
		}
		others = true
	}
	return account, others
}

func roleRules(p *parts, ref rbacv1.RoleRef) ([]rbacv1.PolicyRule, error) {
	switch ref.Kind {
	case "Role":
		if r, ok := p.roles[ref.Name]; ok {
			return r.Rules, nil
		}
	case "ClusterRole":
		if r, ok := p.clusterRoles[ref.Name]; ok {
			if r.AggregationRule != nil {
				return nil, fmt.Errorf("clusterrole %s aggregates other roles: its rules are not known before install", ref.Name)
			}
			return r.Rules, nil
		}
	}
	return nil, fmt.Errorf("%s %s is not in the configuration", ref.Kind, ref.Name)
}

// relatedImages lists the operator image first, then the base's other images.
func relatedImages(base []v1alpha1.RelatedImage, opts Options) []v1alpha1.RelatedImage {
	images := []v1alpha1.RelatedImage{{Name: opts.Package, Image: opts.Image}}
	for _, ri := range base {
		if ri.Name != opts.Package {
			images = append(images, ri)
		}
	}
	return images
}

// annotations are the bundle's metadata: its format, where its parts are and its channels.
func annotations(opts Options) map[string]string {
	a := map[string]string{
		"operators.operatorframework.io.bundle.mediatype.v1": "registry+v1",
		"operators.operatorframework.io.bundle.manifests.v1": "manifests/",
		"operators.operatorframework.io.bundle.metadata.v1":  "metadata/",
		"operators.operatorframework.io.bundle.package.v1":   opts.Package,
		"operators.operatorframework.io.bundle.channels.v1":  strings.Join(opts.Channels, ","),
	}
	if opts.DefaultChannel != "" {
		a["operators.operatorframework.io.bundle.channel.default.v1"] = opts.DefaultChannel
	}
	return a
}

func fromUnstructured(u *unstructured.Unstructured, into any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// keyOf names an object by kind and name: a bundle installs into one namespace, so that is
// unique.
func keyOf(kind, name string) string { return kind + "/" + name }

func key(u *unstructured.Unstructured) string { return keyOf(u.GetKind(), u.GetName()) }
