package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/blang/semver/v4"
	opversion "github.com/operator-framework/api/pkg/lib/version"
	opv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	packageName = "sluice"
	namePrefix  = "sluice-"
	// OLM mounts the webhook serving certificate here, where the manager looks by default.
	webhookPort = 9443
)

type options struct {
	root, out, version, image, channel string
}

// file is one file of the bundle, relative to its folder.
type file struct {
	path string
	data []byte
}

// build renders the bundle's files in memory.
func build(o options) ([]file, error) {
	objs := map[string][]*unstructured.Unstructured{}
	for _, dir := range []string{"crd", "rbac", "manager", "samples"} {
		list, err := kustomize(filepath.Join(o.root, "config", dir))
		if err != nil {
			return nil, err
		}
		objs[dir] = list
	}
	webhookObjs, err := readYAML(filepath.Join(o.root, "config", "webhook", "manifests.yaml"))
	if err != nil {
		return nil, err
	}
	// The policy webhook's namespace selector has no place in a CSV: OLM scopes webhooks to
	// the OperatorGroup's namespaces itself, and the handler ignores HTTPRoutes, Services
	// and Deployments of namespaces not labelled for policy checks.
	policyObjs, err := readYAML(filepath.Join(o.root, "config", "webhook", "policy_webhook.yaml"))
	if err != nil {
		return nil, err
	}
	webhookObjs = append(webhookObjs, policyObjs...)
	metricsSvc, err := readYAML(filepath.Join(o.root, "config", "default", "metrics_service.yaml"))
	if err != nil {
		return nil, err
	}

	csv := baseCSV(o)
	if csv.Spec.Icon, err = icon(o.root); err != nil {
		return nil, err
	}
	var files []file

	for _, u := range objs["crd"] {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := fromUnstructured(u, &crd); err != nil {
			return nil, err
		}
		csv.Spec.CustomResourceDefinitions.Owned = append(csv.Spec.CustomResourceDefinitions.Owned, ownedCRD(&crd))
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		files = append(files, file{"manifests/" + crd.Spec.Group + "_" + crd.Spec.Names.Plural + ".yaml", data})
	}
	sort.Slice(csv.Spec.CustomResourceDefinitions.Owned, func(i, j int) bool {
		return csv.Spec.CustomResourceDefinitions.Owned[i].Kind < csv.Spec.CustomResourceDefinitions.Owned[j].Kind
	})

	dep, err := managerDeployment(objs["manager"], o.image)
	if err != nil {
		return nil, err
	}
	sa := dep.Spec.Template.Spec.ServiceAccountName
	extra, err := permissions(&csv.Spec.InstallStrategy.StrategySpec, objs["rbac"], sa)
	if err != nil {
		return nil, err
	}
	csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs = []opv1alpha1.StrategyDeploymentSpec{{
		Name: dep.Name, Label: dep.Labels, Spec: dep.Spec,
	}}
	if csv.Spec.WebhookDefinitions, err = webhooks(webhookObjs, dep.Name); err != nil {
		return nil, err
	}

	examples := make([]map[string]any, 0, len(objs["samples"]))
	for _, u := range objs["samples"] {
		examples = append(examples, u.Object)
	}
	alm, err := json.MarshalIndent(examples, "", "  ")
	if err != nil {
		return nil, err
	}
	csv.Annotations["alm-examples"] = string(alm)

	// The manager's PodDisruptionBudget ships as a bundle object (OLM installs it in the
	// operator's namespace).
	var pdbs []*unstructured.Unstructured
	for _, u := range objs["manager"] {
		if u.GetKind() == "PodDisruptionBudget" {
			pdbs = append(pdbs, u)
		}
	}
	for _, u := range append(append(extra, metricsSvc...), pdbs...) {
		u.SetName(namePrefix + u.GetName())
		u.SetNamespace("")
		data, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		gvk := u.GroupVersionKind()
		group := gvk.Group
		if group == "" {
			group = "core"
		}
		files = append(files, file{fmt.Sprintf("manifests/%s_%s_%s_%s.yaml", u.GetName(), group, gvk.Version, strings.ToLower(gvk.Kind)), data})
	}

	csvData, err := yaml.Marshal(csv)
	if err != nil {
		return nil, err
	}
	files = append(files,
		file{"manifests/" + packageName + ".clusterserviceversion.yaml", csvData},
		file{"metadata/annotations.yaml", annotations(o.channel)},
		file{"bundle.Dockerfile", dockerfile(o.channel)},
	)
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files, nil
}

func baseCSV(o options) *opv1alpha1.ClusterServiceVersion {
	csv := &opv1alpha1.ClusterServiceVersion{
		TypeMeta: metav1.TypeMeta{APIVersion: opv1alpha1.SchemeGroupVersion.String(), Kind: opv1alpha1.ClusterServiceVersionKind},
		ObjectMeta: metav1.ObjectMeta{
			Name: packageName + ".v" + o.version,
			Annotations: map[string]string{
				"capabilities":   "Basic Install",
				"categories":     "Networking,Developer Tools",
				"containerImage": o.image,
				"description":    "Progressive delivery and traffic policy for edge service meshes.",
				"repository":     "https://github.com/sluice-mesh/sluice",
				"operators.operatorframework.io/suggested-namespace": "sluice-system",
			},
		},
		Spec: opv1alpha1.ClusterServiceVersionSpec{
			DisplayName: "Sluice",
			Description: "Sluice releases new revisions of Deployments by canary, blue-green or A/B steps through " +
				"Gateway API HTTPRoutes, judges them with Prometheus HealthGates (and holds, rather than rolls back, " +
				"when an edge site loses its link to Prometheus), and translates one mesh-neutral MeshPolicy for " +
				"Gateway API, Istio, Linkerd, Consul or Traefik.",
			Maturity:       "alpha",
			Keywords:       []string{"progressive delivery", "canary", "blue-green", "gateway api", "service mesh", "edge"},
			Provider:       opv1alpha1.AppLink{Name: "The Sluice Authors", URL: "https://github.com/sluice-mesh/sluice"},
			Links:          []opv1alpha1.AppLink{{Name: "Source", URL: "https://github.com/sluice-mesh/sluice"}},
			Maintainers:    []opv1alpha1.Maintainer{{Name: "The Sluice Authors", Email: "maintainers@sluice.dev"}},
			MinKubeVersion: "1.30.0",
			// The manager watches the namespaces of its --namespaces flag, or all of them; OLM
			// has no way to pass a target-namespace list to it yet, so only AllNamespaces.
			InstallModes: []opv1alpha1.InstallMode{
				// The manager watches the OperatorGroup's target namespaces (SLUICE_NAMESPACES,
				// from olm.targetNamespaces); OLM copies its namespaced permissions there.
				{Type: opv1alpha1.InstallModeTypeOwnNamespace, Supported: true},
				{Type: opv1alpha1.InstallModeTypeSingleNamespace, Supported: true},
				{Type: opv1alpha1.InstallModeTypeMultiNamespace, Supported: true},
				{Type: opv1alpha1.InstallModeTypeAllNamespaces, Supported: true},
			},
			InstallStrategy: opv1alpha1.NamedInstallStrategy{StrategyName: opv1alpha1.InstallStrategyNameDeployment},
		},
	}
	csv.Spec.Version = opversion.OperatorVersion{Version: semver.MustParse(o.version)}
	return csv
}

func icon(root string) ([]opv1alpha1.Icon, error) {
	data, err := os.ReadFile(filepath.Join(root, "docs", "icon.svg"))
	if err != nil {
		return nil, err
	}
	return []opv1alpha1.Icon{{Data: base64.StdEncoding.EncodeToString(data), MediaType: "image/svg+xml"}}, nil
}

func ownedCRD(crd *apiextensionsv1.CustomResourceDefinition) opv1alpha1.CRDDescription {
	v := crd.Spec.Versions[0]
	desc := ""
	if v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
		desc = strings.SplitN(v.Schema.OpenAPIV3Schema.Description, ".", 2)[0] + "."
	}
	return opv1alpha1.CRDDescription{
		Name: crd.Name, Version: v.Name, Kind: crd.Spec.Names.Kind,
		DisplayName: crd.Spec.Names.Kind, Description: desc,
	}
}

// managerDeployment is config/manager's Deployment, renamed as config/default names it, with
// the bundle's image and the webhook port OLM routes to.
func managerDeployment(objs []*unstructured.Unstructured, image string) (*appsv1.Deployment, error) {
	for _, u := range objs {
		if u.GetKind() != "Deployment" {
			continue
		}
		var dep appsv1.Deployment
		if err := fromUnstructured(u, &dep); err != nil {
			return nil, err
		}
		dep.Name = namePrefix + dep.Name
		pod := &dep.Spec.Template.Spec
		pod.ServiceAccountName = namePrefix + pod.ServiceAccountName
		c := &pod.Containers[0]
		c.Image = image
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: "webhook-server", ContainerPort: webhookPort, Protocol: corev1.ProtocolTCP})
		// The OperatorGroup's target namespaces ("" for all) become the watched ones.
		c.Env = append(c.Env, corev1.EnvVar{Name: "SLUICE_NAMESPACES", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['olm.targetNamespaces']"}}})
		// OLM adds its own certificate volume; the empty lists kustomize patches need are noise here.
		if len(c.VolumeMounts) == 0 {
			c.VolumeMounts = nil
		}
		if len(pod.Volumes) == 0 {
			pod.Volumes = nil
		}
		return &dep, nil
	}
	return nil, fmt.Errorf("config/manager has no Deployment")
}

// permissions moves the manager's own roles into the CSV (OLM creates and binds them) and
// returns the roles meant for people, which ship as bundle manifests.
func permissions(s *opv1alpha1.StrategyDetailsDeployment, objs []*unstructured.Unstructured, sa string) ([]*unstructured.Unstructured, error) {
	boundToManager := map[string]bool{}
	for _, u := range objs {
		if u.GetKind() != "RoleBinding" && u.GetKind() != "ClusterRoleBinding" {
			continue
		}
		var b rbacv1.ClusterRoleBinding // RoleBinding has the same shape
		if err := fromUnstructured(u, &b); err != nil {
			return nil, err
		}
		for _, subj := range b.Subjects {
			if subj.Kind == rbacv1.ServiceAccountKind && namePrefix+subj.Name == sa {
				boundToManager[b.RoleRef.Kind+"/"+b.RoleRef.Name] = true
			}
		}
	}
	var extra []*unstructured.Unstructured
	for _, u := range objs {
		kind := u.GetKind()
		if kind != "Role" && kind != "ClusterRole" {
			continue
		}
		var r rbacv1.ClusterRole // Role has the same shape
		if err := fromUnstructured(u, &r); err != nil {
			return nil, err
		}
		switch {
		case !boundToManager[kind+"/"+u.GetName()]:
			extra = append(extra, u)
		case kind == "Role":
			s.Permissions = append(s.Permissions, opv1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa, Rules: r.Rules})
		default:
			// Rules on namespaced kinds go to permissions: OLM grants them in the target
			// namespaces only (cluster-wide for AllNamespaces). Cluster-scoped kinds stay in
			// clusterPermissions.
			var namespaced, cluster []rbacv1.PolicyRule
			for _, rule := range r.Rules {
				if clusterScoped(rule) {
					cluster = append(cluster, rule)
				} else {
					namespaced = append(namespaced, rule)
				}
			}
			if len(cluster) > 0 {
				if len(s.ClusterPermissions) == 0 {
					s.ClusterPermissions = []opv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: sa}}
				}
				s.ClusterPermissions[0].Rules = append(s.ClusterPermissions[0].Rules, cluster...)
			}
			if len(namespaced) > 0 {
				s.Permissions = append(s.Permissions, opv1alpha1.StrategyDeploymentPermissions{ServiceAccountName: sa, Rules: namespaced})
			}
		}
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].GetName() < extra[j].GetName() })
	return extra, nil
}

// webhooks turns the generated webhook configurations into CSV webhook definitions.
func webhooks(objs []*unstructured.Unstructured, deployment string) ([]opv1alpha1.WebhookDescription, error) {
	var out []opv1alpha1.WebhookDescription
	for _, u := range objs {
		var hooks []webhookFields
		switch u.GetKind() {
		case "MutatingWebhookConfiguration":
			var c admissionv1.MutatingWebhookConfiguration
			if err := fromUnstructured(u, &c); err != nil {
				return nil, err
			}
			for _, w := range c.Webhooks {
				hooks = append(hooks, webhookFields{opv1alpha1.MutatingAdmissionWebhook, w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchPolicy})
			}
		case "ValidatingWebhookConfiguration":
			var c admissionv1.ValidatingWebhookConfiguration
			if err := fromUnstructured(u, &c); err != nil {
				return nil, err
			}
			for _, w := range c.Webhooks {
				hooks = append(hooks, webhookFields{opv1alpha1.ValidatingAdmissionWebhook, w.Name, w.ClientConfig, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds, w.AdmissionReviewVersions, w.MatchPolicy})
			}
		}
		for _, h := range hooks {
			if h.client.Service == nil || h.client.Service.Path == nil {
				return nil, fmt.Errorf("webhook %s has no service path", h.name)
			}
			target := intstr.FromInt32(webhookPort)
			out = append(out, opv1alpha1.WebhookDescription{
				GenerateName: h.name, Type: h.typ, DeploymentName: deployment,
				ContainerPort: 443, TargetPort: &target, WebhookPath: h.client.Service.Path,
				Rules: h.rules, FailurePolicy: h.failurePolicy, SideEffects: h.sideEffects,
				TimeoutSeconds: h.timeout, AdmissionReviewVersions: h.reviewVersions, MatchPolicy: h.matchPolicy,
			})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("config/webhook/manifests.yaml has no webhooks")
	}
	return out, nil
}

// webhookFields are what mutating and validating webhooks share.
type webhookFields struct {
	typ            opv1alpha1.WebhookAdmissionType
	name           string
	client         admissionv1.WebhookClientConfig
	rules          []admissionv1.RuleWithOperations
	failurePolicy  *admissionv1.FailurePolicyType
	sideEffects    *admissionv1.SideEffectClass
	timeout        *int32
	reviewVersions []string
	matchPolicy    *admissionv1.MatchPolicyType
}

func annotations(channel string) []byte {
	return []byte(strings.Join([]string{
		"annotations:",
		"  operators.operatorframework.io.bundle.mediatype.v1: registry+v1",
		"  operators.operatorframework.io.bundle.manifests.v1: manifests/",
		"  operators.operatorframework.io.bundle.metadata.v1: metadata/",
		"  operators.operatorframework.io.bundle.package.v1: " + packageName,
		"  operators.operatorframework.io.bundle.channels.v1: " + channel,
		"  operators.operatorframework.io.bundle.channel.default.v1: " + channel,
		"",
	}, "\n"))
}

// dockerfile builds the bundle image: the same annotations as labels, and the two folders.
func dockerfile(channel string) []byte {
	lines := []string{"FROM scratch", ""}
	for _, l := range strings.Split(strings.TrimSpace(string(annotations(channel))), "\n")[1:] {
		k, v, _ := strings.Cut(strings.TrimSpace(l), ": ")
		lines = append(lines, "LABEL "+k+"="+v)
	}
	lines = append(lines, "", "COPY manifests /manifests/", "COPY metadata /metadata/", "")
	return []byte(strings.Join(lines, "\n"))
}

func kustomize(dir string) ([]*unstructured.Unstructured, error) {
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize %s: %w", dir, err)
	}
	var out []*unstructured.Unstructured
	for _, r := range m.Resources() {
		obj, err := r.Map()
		if err != nil {
			return nil, err
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
	return out, nil
}

func readYAML(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(string(data), "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, u)
	}
	return out, nil
}

func fromUnstructured(u *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, into)
}

// write replaces the bundle folder with files.
func write(out string, files []file) error {
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	for _, f := range files {
		p := filepath.Join(out, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// clusterScopedResources are the cluster-scoped kinds the manager's roles name.
var clusterScopedResources = map[string]bool{
	"customresourcedefinitions": true, "namespaces": true, "tokenreviews": true, "subjectaccessreviews": true,
}

// clusterScoped: the rule is about cluster-scoped kinds (or non-resource URLs).
func clusterScoped(rule rbacv1.PolicyRule) bool {
	if len(rule.NonResourceURLs) > 0 {
		return true
	}
	for _, res := range rule.Resources {
		if !clusterScopedResources[res] {
			return false
		}
	}
	return true
}
