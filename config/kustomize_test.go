package config_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// What config/default produces: everything prefixed and in one namespace.
const (
	installNamespace = "sluice-system"
	servingCert      = "sluice-serving-cert"
	webhookService   = "sluice-webhook-service"
	metricsService   = "sluice-controller-manager-metrics-service"
	managerName      = "sluice-controller-manager"
)

// clusterScoped are the kinds of the default overlay that carry no namespace.
var clusterScoped = []string{
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
	"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Namespace",
}

// build runs kustomize on one folder under config/, as `kustomize build` would, and returns
// the objects in output order.
func build(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	objs := make([]*unstructured.Unstructured, 0, m.Size())
	for _, r := range m.Resources() {
		// Through JSON, so the values have the types unstructured code expects (int64, not int).
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		objs = append(objs, u)
	}
	return objs
}

func TestKustomizeBuild(t *testing.T) {
	tests := []struct {
		dir string
		// kinds that must be in the output, at least once each.
		kinds []string
		check func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{dir: "crd", kinds: []string{"CustomResourceDefinition"}},
		{dir: "rbac", kinds: []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}},
		{dir: "manager", kinds: []string{"Namespace", "Deployment"}},
		{dir: "webhook", kinds: []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Service"}},
		{dir: "certmanager", kinds: []string{"Issuer", "Certificate"}},
		{dir: "prometheus", kinds: []string{"ServiceMonitor"}},
		{dir: "network-policy", kinds: []string{"NetworkPolicy"}},
		{dir: "samples", kinds: []string{"Rollout", "HealthGate", "MeshPolicy"}},
		{dir: "default", kinds: []string{"CustomResourceDefinition", "Deployment", "Service", "Certificate", "ServiceMonitor"}, check: checkDefault},
		{dir: "namespaced", kinds: []string{"CustomResourceDefinition", "Deployment", "RoleBinding"}, check: checkNamespaced},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			objs := build(t, tt.dir)
			if len(objs) == 0 {
				t.Fatalf("kustomize build %s: no resources", tt.dir)
			}
			for _, kind := range tt.kinds {
				if !slices.ContainsFunc(objs, func(u *unstructured.Unstructured) bool { return u.GetKind() == kind }) {
					t.Errorf("no %s in the output", kind)
				}
			}
			if tt.check != nil {
				tt.check(t, objs)
			}
		})
	}
}

// checkDefault asserts that namePrefix, namespace, the patches and the replacements of
// config/default reached every place the running install depends on.
func checkDefault(t *testing.T, objs []*unstructured.Unstructured) {
	for _, u := range objs {
		data, err := json.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "SERVICE_NAME") {
			t.Errorf("%s %s: a SERVICE_NAME/SERVICE_NAMESPACE placeholder was not replaced", u.GetKind(), u.GetName())
		}
		switch {
		case slices.Contains(clusterScoped, u.GetKind()):
			if u.GetNamespace() != "" {
				t.Errorf("%s %s: cluster-scoped but has namespace %q", u.GetKind(), u.GetName(), u.GetNamespace())
			}
		case u.GetNamespace() != installNamespace:
			t.Errorf("%s %s: namespace %q, want %q", u.GetKind(), u.GetName(), u.GetNamespace(), installNamespace)
		}
	}

	if ns := find(t, objs, "Namespace", installNamespace); ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("Namespace %s: pod-security enforce label %q, want restricted", installNamespace, ns.GetLabels()["pod-security.kubernetes.io/enforce"])
	}

	checkDefaultManager(t, find(t, objs, "Deployment", managerName))
	checkEgressPolicy(t, find(t, objs, "Deployment", managerName), find(t, objs, "NetworkPolicy", "sluice-manager-egress"))
	checkAvailability(t, find(t, objs, "Deployment", managerName), find(t, objs, "PodDisruptionBudget", managerName))
	checkFailurePolicies(t, objs)

	for kind, name := range map[string]string{
		"MutatingWebhookConfiguration":   "sluice-mutating-webhook-configuration",
		"ValidatingWebhookConfiguration": "sluice-validating-webhook-configuration",
	} {
		wh := find(t, objs, kind, name)
		if got, want := wh.GetAnnotations()["cert-manager.io/inject-ca-from"], installNamespace+"/"+servingCert; got != want {
			t.Errorf("%s: cert-manager.io/inject-ca-from = %q, want %q", kind, got, want)
		}
		hooks, _, _ := unstructured.NestedSlice(wh.Object, "webhooks")
		if len(hooks) == 0 {
			t.Errorf("%s: no webhooks", kind)
		}
		for _, h := range hooks {
			hook, _ := h.(map[string]any)
			name, _, _ := unstructured.NestedString(hook, "clientConfig", "service", "name")
			namespace, _, _ := unstructured.NestedString(hook, "clientConfig", "service", "namespace")
			if name != webhookService || namespace != installNamespace {
				t.Errorf("%s webhook %v: clientConfig.service = %s/%s, want %s/%s", kind, hook["name"], namespace, name, installNamespace, webhookService)
			}
		}
	}

	for cert, service := range map[string]string{servingCert: webhookService, "sluice-metrics-certs": metricsService} {
		c := find(t, objs, "Certificate", cert)
		dnsNames, _, _ := unstructured.NestedStringSlice(c.Object, "spec", "dnsNames")
		for _, want := range []string{service + "." + installNamespace + ".svc", service + "." + installNamespace + ".svc.cluster.local"} {
			if !slices.Contains(dnsNames, want) {
				t.Errorf("Certificate %s: dnsNames %v lack %s", cert, dnsNames, want)
			}
		}
		if issuer, _, _ := unstructured.NestedString(c.Object, "spec", "issuerRef", "name"); issuer != "sluice-selfsigned-issuer" {
			t.Errorf("Certificate %s: issuerRef.name %q, want sluice-selfsigned-issuer", cert, issuer)
		}
	}

	monitor := find(t, objs, "ServiceMonitor", "sluice-controller-manager-metrics-monitor")
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("ServiceMonitor: %d endpoints, want 1", len(endpoints))
	}
	endpoint, _ := endpoints[0].(map[string]any)
	if got, _, _ := unstructured.NestedString(endpoint, "tlsConfig", "serverName"); got != metricsService+"."+installNamespace+".svc" {
		t.Errorf("ServiceMonitor: tlsConfig.serverName %q, want %s.%s.svc", got, metricsService, installNamespace)
	}

	binding := find(t, objs, "ClusterRoleBinding", "sluice-manager-rolebinding")
	if role, _, _ := unstructured.NestedString(binding.Object, "roleRef", "name"); role != "sluice-manager-role" {
		t.Errorf("ClusterRoleBinding %s: roleRef.name %q, want sluice-manager-role", binding.GetName(), role)
	}
	subjects, _, _ := unstructured.NestedSlice(binding.Object, "subjects")
	if len(subjects) != 1 {
		t.Fatalf("ClusterRoleBinding %s: %d subjects, want 1", binding.GetName(), len(subjects))
	}
	subject, _ := subjects[0].(map[string]any)
	if subject["kind"] != "ServiceAccount" || subject["name"] != managerName || subject["namespace"] != installNamespace {
		t.Errorf("ClusterRoleBinding %s: subject %v, want ServiceAccount %s/%s", binding.GetName(), subject, installNamespace, managerName)
	}
}

// checkDefaultManager asserts what the Deployment needs to serve webhooks and metrics.
func checkDefaultManager(t *testing.T, deploy *unstructured.Unstructured) {
	t.Helper()
	if sa, _, _ := unstructured.NestedString(deploy.Object, "spec", "template", "spec", "serviceAccountName"); sa != managerName {
		t.Errorf("Deployment: serviceAccountName %q, want %s", sa, managerName)
	}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	if len(containers) != 1 {
		t.Fatalf("Deployment: %d containers, want 1", len(containers))
	}
	manager, _ := containers[0].(map[string]any)
	if image, _, _ := unstructured.NestedString(manager, "image"); image != "ghcr.io/sluice-mesh/sluice:v0.1.0" {
		t.Errorf("Deployment: image %q, want ghcr.io/sluice-mesh/sluice:v0.1.0", image)
	}
	args, _, _ := unstructured.NestedStringSlice(manager, "args")
	for _, want := range []string{"--leader-elect", "--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs", "--metrics-cert-dir=/tmp/k8s-metrics-server/metrics-certs"} {
		if !slices.Contains(args, want) {
			t.Errorf("Deployment: args %v lack %s", args, want)
		}
	}
	ports, _, _ := unstructured.NestedSlice(manager, "ports")
	if !slices.ContainsFunc(ports, func(p any) bool {
		port, _ := p.(map[string]any)
		return port["containerPort"] == int64(9443)
	}) {
		t.Errorf("Deployment: ports %v lack the webhook port 9443", ports)
	}
	mounts := map[string]string{}
	volumeMounts, _, _ := unstructured.NestedSlice(manager, "volumeMounts")
	for _, m := range volumeMounts {
		mount, _ := m.(map[string]any)
		name, _ := mount["name"].(string)
		mounts[name], _ = mount["mountPath"].(string)
	}
	volumes, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
	secrets := map[string]string{}
	for _, v := range volumes {
		volume, _ := v.(map[string]any)
		name, _ := volume["name"].(string)
		secrets[name], _, _ = unstructured.NestedString(volume, "secret", "secretName")
	}
	for secret, path := range map[string]string{"webhook-server-cert": "/tmp/k8s-webhook-server/serving-certs", "metrics-server-cert": "/tmp/k8s-metrics-server/metrics-certs"} {
		found := false
		for volume, s := range secrets {
			if s == secret && mounts[volume] == path {
				found = true
			}
		}
		if !found {
			t.Errorf("Deployment: Secret %s is not mounted at %s (volumes %v, mounts %v)", secret, path, secrets, mounts)
		}
	}
}

// find returns the one object of kind and name, failing the test when it is missing.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, u := range objs {
		if u.GetKind() == kind && u.GetName() == name {
			return u
		}
	}
	t.Fatalf("no %s %s in the output", kind, name)
	return nil
}

// checkEgressPolicy: the egress NetworkPolicy selects the manager's pods and limits only egress.
func checkEgressPolicy(t *testing.T, manager, policy *unstructured.Unstructured) {
	checkSelectsManagerPods(t, "NetworkPolicy sluice-manager-egress", manager, policy, "spec", "podSelector", "matchLabels")
	if types, _, _ := unstructured.NestedStringSlice(policy.Object, "spec", "policyTypes"); !slices.Equal(types, []string{"Egress"}) {
		t.Errorf("NetworkPolicy sluice-manager-egress policyTypes %v, want [Egress] (ingress carries webhooks and metrics)", types)
	}
}

// checkAvailability: two replicas (one leads, both serve the webhooks), never both down for a
// rollout of the manager or a drain.
func checkAvailability(t *testing.T, deploy, pdb *unstructured.Unstructured) {
	t.Helper()
	if n, _, _ := unstructured.NestedInt64(deploy.Object, "spec", "replicas"); n < 2 {
		t.Errorf("Deployment: %d replicas, want 2 (the webhooks need a server while one is away)", n)
	}
	if u, _, _ := unstructured.NestedFieldNoCopy(deploy.Object, "spec", "strategy", "rollingUpdate", "maxUnavailable"); u != int64(0) {
		t.Errorf("Deployment: rollingUpdate.maxUnavailable %v, want 0", u)
	}
	if m, _, _ := unstructured.NestedFieldNoCopy(pdb.Object, "spec", "minAvailable"); m != int64(1) {
		t.Errorf("PodDisruptionBudget: minAvailable %v, want 1", m)
	}
	checkSelectsManagerPods(t, "PodDisruptionBudget", deploy, pdb, "spec", "selector", "matchLabels")
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	manager, _ := containers[0].(map[string]any)
	if path, _, _ := unstructured.NestedString(manager, "readinessProbe", "httpGet", "path"); path != "/readyz" {
		t.Errorf("Deployment: readiness probe %q, want /readyz (ready only once the webhook server serves)", path)
	}
}

// failurePolicies: every webhook's failurePolicy, and why. A webhook that can only warn or
// default must not fail closed (a Sluice outage would stop unrelated work); a check on
// Sluice's own kinds fails closed (nothing acts on them while Sluice is down, and a guard rail
// must not be bypassed by waiting for an outage).
var failurePolicies = map[string]struct{ policy, why string }{
	"mhealthgate.sluice.dev":      {"Ignore", "defaulting only: the controller reads every field through accessors with the same defaults"},
	"mmeshpolicy.sluice.dev":      {"Ignore", "defaulting only"},
	"mrollout.sluice.dev":         {"Ignore", "defaulting only"},
	"vhealthgate.sluice.dev":      {"Fail", "rejects what the controller can't act on; only Sluice reads HealthGates"},
	"vmeshpolicy.sluice.dev":      {"Fail", "rejects what the controller can't act on; only Sluice reads MeshPolicies"},
	"vrollout.sluice.dev":         {"Ignore", "only warns (a target or HealthGate not there yet): an outage must not fail a sync for a warning"},
	"policy.sluice.dev":           {"Fail", "the Rego guard rails on Sluice's own kinds"},
	"policy-workloads.sluice.dev": {"Ignore", "other teams' Deployments, Services and HTTPRoutes: a Sluice outage must never stop them; the periodic audit reports what slipped through"},
}

func checkFailurePolicies(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	seen := map[string]bool{}
	for _, u := range objs {
		if u.GetKind() != "MutatingWebhookConfiguration" && u.GetKind() != "ValidatingWebhookConfiguration" {
			continue
		}
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		for _, h := range hooks {
			hook, _ := h.(map[string]any)
			name, _ := hook["name"].(string)
			policy, _ := hook["failurePolicy"].(string)
			seen[name] = true
			want, ok := failurePolicies[name]
			switch {
			case !ok:
				t.Errorf("%s %s: webhook %s has no justified failurePolicy in failurePolicies", u.GetKind(), u.GetName(), name)
			case policy != want.policy:
				t.Errorf("webhook %s: failurePolicy %q, want %q (%s)", name, policy, want.policy, want.why)
			}
			if s, _ := hook["timeoutSeconds"].(int64); s == 0 || s > 5 {
				t.Errorf("webhook %s: timeoutSeconds %v, want 1-5 (an API request waits that long when Sluice is slow)", name, hook["timeoutSeconds"])
			}
		}
	}
	for name := range failurePolicies {
		if !seen[name] {
			t.Errorf("webhook %s is in failurePolicies but not installed", name)
		}
	}
}

// checkNamespaced: the manager's role is granted in the watched namespace only, the manager is
// told to watch it, and every webhook reviews only it.
func checkNamespaced(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	const watched = "apps"
	bound := false
	for _, u := range objs {
		ref, _, _ := unstructured.NestedString(u.Object, "roleRef", "name")
		switch {
		case u.GetKind() == "ClusterRoleBinding" && ref == "sluice-manager-role":
			t.Errorf("ClusterRoleBinding %s grants the manager's role cluster-wide", u.GetName())
		case u.GetKind() == "RoleBinding" && ref == "sluice-manager-role":
			bound = bound || u.GetNamespace() == watched
		}
	}
	if !bound {
		t.Errorf("no RoleBinding of sluice-manager-role in namespace %s", watched)
	}
	deploy := find(t, objs, "Deployment", managerName)
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	manager, _ := containers[0].(map[string]any)
	if args, _, _ := unstructured.NestedStringSlice(manager, "args"); !slices.Contains(args, "--namespaces="+watched) {
		t.Errorf("Deployment: args %v lack --namespaces=%s", args, watched)
	}
	for _, u := range objs {
		if u.GetKind() != "MutatingWebhookConfiguration" && u.GetKind() != "ValidatingWebhookConfiguration" {
			continue
		}
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		for _, h := range hooks {
			hook, _ := h.(map[string]any)
			exprs, _, _ := unstructured.NestedSlice(hook, "namespaceSelector", "matchExpressions")
			scoped := slices.ContainsFunc(exprs, func(e any) bool {
				m, _ := e.(map[string]any)
				values, _, _ := unstructured.NestedStringSlice(m, "values")
				return m["key"] == "kubernetes.io/metadata.name" && m["operator"] == "In" && slices.Equal(values, []string{watched})
			})
			if !scoped {
				t.Errorf("webhook %s reviews namespaces beyond %s: namespaceSelector %v", hook["name"], watched, hook["namespaceSelector"])
			}
		}
	}
}

// checkSelectsManagerPods: obj's label selector (at path) is not empty and matches the
// manager's pods.
func checkSelectsManagerPods(t *testing.T, what string, deploy, obj *unstructured.Unstructured, path ...string) {
	t.Helper()
	podLabels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
	selector, _, _ := unstructured.NestedStringMap(obj.Object, path...)
	if len(selector) == 0 {
		t.Errorf("%s selects no labels (it would select every pod of the namespace)", what)
	}
	for k, v := range selector {
		if podLabels[k] != v {
			t.Errorf("%s selects %s=%s, which the manager's pods lack (%v)", what, k, v, podLabels)
		}
	}
}
