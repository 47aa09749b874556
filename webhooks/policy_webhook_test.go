package webhooks_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/admission"
)

// labelledNamespace is a namespace whose HTTPRoutes, Services and Deployments are checked.
func labelledNamespace(t testing.TB, extra map[string]string) string {
	t.Helper()
	l := map[string]string{admission.NamespaceLabel: admission.NamespaceLabelValue}
	for k, v := range extra {
		l[k] = v
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "policies-", Labels: l}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// policyConfigMap writes (creates or updates) a policy ConfigMap in the manager's namespace.
func policyConfigMap(t testing.TB, name, kind string, data map[string]string) *corev1.ConfigMap {
	t.Helper()
	ctx := context.Background()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: policyNamespace, Name: name, Labels: map[string]string{controllers.PolicyLabel: kind}}}
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(cm), cm); err == nil {
		cm.Data = data
		if err := env.Client.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		return cm
	}
	cm.Data = data
	if err := env.Client.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), cm) })
	return cm
}

func healthGate(ns, name string, addresses ...string) *meshv1alpha1.HealthGate {
	return &meshv1alpha1.HealthGate{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: meshv1alpha1.HealthGateSpec{
			DataPlane:  meshv1alpha1.DataPlaneTraefik,
			Prometheus: meshv1alpha1.PrometheusSource{Addresses: addresses},
			Metrics:    []meshv1alpha1.HealthMetric{{Name: "success-rate", Builtin: meshv1alpha1.BuiltinRequestSuccessRate, ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.99)}}},
		},
	}
}

// TestPolicyDenyNamesPolicyObjectAndField: the real API server calls the real webhook over
// TLS; a built-in deny policy rejects with its name, the object and the field.
func TestPolicyDenyNamesPolicyObjectAndField(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	err := env.Client.Create(ctx, healthGate(ns, "metadata", "http://prometheus.monitoring:9090", "http://169.254.169.254/latest/meta-data"))
	if err == nil {
		t.Fatal("a HealthGate pointing the operator at the cloud metadata endpoint was admitted")
	}
	for _, want := range []string{"healthgate-prometheus-allowlist", "HealthGate " + ns + "/metadata", "spec.prometheus.addresses[1]"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the denial does not say %q: %v", want, err)
		}
	}
	if err := env.Client.Create(ctx, healthGate(ns, "in-cluster", "http://prometheus.monitoring:9090")); err != nil {
		t.Fatalf("an in-cluster address is refused: %v", err)
	}
}

func rolloutFor(ns, name, target string) *meshv1alpha1.Rollout {
	return &meshv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: meshv1alpha1.RolloutSpec{
			TargetRef:      meshv1alpha1.TargetReference{Name: target},
			Service:        meshv1alpha1.ServiceSpec{Port: 80},
			TrafficRouting: meshv1alpha1.TrafficRouting{GatewayAPI: meshv1alpha1.GatewayAPIRouting{ParentRefs: []meshv1alpha1.ParentReference{{Name: "edge"}}}},
			Strategy:       meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{StepWeight: ptr.To[int32](10)}},
		},
	}
}

func deployment(ns, name string, replicas *int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "shop/" + name + ":1"}}},
			},
		},
	}
}

// TestPolicyWarnAndLabelledNamespaces: a warn policy admits with a warning kubectl prints;
// Deployments and HTTPRoutes are checked in labelled namespaces and not in others.
func TestPolicyWarnAndLabelledNamespaces(t *testing.T) {
	ctx := context.Background()
	checked, unchecked := labelledNamespace(t, nil), namespace(t)
	for _, ns := range []string{checked, unchecked} {
		if err := env.Client.Create(ctx, rolloutFor(ns, "web", "web")); err != nil {
			t.Fatal(err)
		}
	}
	warnings.take()
	if err := apply(warnClient, deployment(checked, "web", ptr.To[int32](3))); err != nil {
		t.Fatalf("a warn policy refused: %v", err)
	}
	got := warnings.take()
	if len(got) != 1 || !strings.Contains(got[0], "deployment-replicas-released") || !strings.Contains(got[0], "Deployment "+checked+"/web") || !strings.Contains(got[0], "spec.replicas") {
		t.Errorf("warnings %q: want one from deployment-replicas-released naming the Deployment and spec.replicas", got)
	}
	if err := apply(warnClient, deployment(unchecked, "web", ptr.To[int32](3))); err != nil {
		t.Fatal(err)
	}
	if got := warnings.take(); len(got) != 0 {
		t.Errorf("a Deployment in an unlabelled namespace was checked: %q", got)
	}
	// Without replicas in the manifest there is nothing to warn about (the API server's
	// default is not the manifest's).
	if err := apply(warnClient, deployment(checked, "quiet", nil)); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, rolloutFor(checked, "quiet", "quiet")); err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: checked, Name: "quiet"}, d); err != nil {
		t.Fatal(err)
	}
	d = deployment(checked, "quiet", nil)
	d.Spec.Template.Spec.Containers[0].Image = "shop/quiet:2"
	if err := apply(warnClient, d); err != nil {
		t.Fatal(err)
	}
	if got := warnings.take(); len(got) != 0 {
		t.Errorf("a released Deployment whose manifest never set replicas got %q", got)
	}

	route := func(ns string) *gatewayv1.HTTPRoute {
		return &gatewayv1.HTTPRoute{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "wild"},
			Spec: gatewayv1.HTTPRouteSpec{
				CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "edge", Namespace: ptr.To(gatewayv1.Namespace("gateways"))}}},
				Hostnames:       []gatewayv1.Hostname{"*.example.com"},
			},
		}
	}
	err := env.Client.Create(ctx, route(checked))
	if err == nil || !strings.Contains(err.Error(), "httproute-shared-gateway-hostnames") || !strings.Contains(err.Error(), "spec.hostnames[0]") {
		t.Errorf("a wildcard HTTPRoute on a shared Gateway in a labelled namespace: %v", err)
	}
	if err := env.Client.Create(ctx, route(unchecked)); err != nil {
		t.Errorf("an HTTPRoute in an unlabelled namespace was checked: %v", err)
	}
}

// gaugeValue reads a gauge of the manager's metrics registry by its labels.
func gaugeValue(t testing.TB, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// eventsFor lists the events about one object with a reason.
func eventsFor(t testing.TB, ns, name, reason string) []eventsv1.Event {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

const frozenPolicy = `# METADATA
# title: Frozen Rollouts
# custom:
#   mode: %s
#   kinds: [Rollout]
package team.frozen

violation contains {"msg": sprintf("Rollout %%s is frozen", [input.object.metadata.name]), "field": "metadata.name"} if startswith(input.object.metadata.name, "frozen")
`

// waitFor polls a condition every 20ms and returns how long it took to hold.
func waitFor(t testing.TB, what string, limit time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, limit, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("%s: not within %s", what, limit)
	}
	return time.Since(start)
}

// apply writes obj by server-side apply, as kubectl apply --server-side, Flux and Argo CD do.
func apply(c client.Client, obj client.Object) error {
	gvks, _, err := env.Scheme.ObjectKinds(obj)
	if err != nil {
		return err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetGroupVersionKind(gvks[0])
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("gitops"), client.ForceOwnership)
}

// dryRunCreate asks the API server (and so the webhooks) about a create without keeping it.
func dryRunCreate(obj client.Object) error {
	return env.Client.Create(context.Background(), obj, client.DryRunAll)
}

// TestPolicyHotReloadAndFailSafe: a policy ConfigMap is in force within 2 s; a broken text
// leaves the previous one in force and is reported (event on the ConfigMap, metric);
// deleting the ConfigMap removes the policy.
func TestPolicyHotReloadAndFailSafe(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	frozen := rolloutFor(ns, "frozen-web", "web")
	if err := dryRunCreate(frozen.DeepCopy()); err != nil {
		t.Fatalf("before the policy: %v", err)
	}
	cm := policyConfigMap(t, "team-rules", controllers.PolicyLabelRego, map[string]string{"frozen.rego": fmt.Sprintf(frozenPolicy, "deny")})
	took := waitFor(t, "the new policy in force", 2*time.Second, func() bool { return dryRunCreate(frozen.DeepCopy()) != nil })
	t.Logf("policy ConfigMap created → in force after %s", took)
	err := dryRunCreate(frozen.DeepCopy())
	if !strings.Contains(err.Error(), "team-rules/frozen") || !strings.Contains(err.Error(), "metadata.name") {
		t.Errorf("denial: %v", err)
	}

	// Broken: the previous text stays in force, the ConfigMap gets a Warning event and the
	// load-error metric is 1.
	policyConfigMap(t, "team-rules", controllers.PolicyLabelRego, map[string]string{"frozen.rego": fmt.Sprintf(frozenPolicy, "deny") + "\nviolation contains x if {"})
	waitFor(t, "an event on the ConfigMap", 5*time.Second, func() bool { return len(eventsFor(t, policyNamespace, cm.Name, "PolicyLoadFailed")) > 0 })
	ev := eventsFor(t, policyNamespace, cm.Name, "PolicyLoadFailed")[0]
	if !strings.Contains(ev.Note, "team-rules/frozen") || !strings.Contains(ev.Note, "previous text stays in force") {
		t.Errorf("event: %s", ev.Note)
	}
	if v, ok := gaugeValue(t, "sluice_admission_policy_load_errors", map[string]string{"policy": "team-rules/frozen"}); !ok || v != 1 {
		t.Errorf("load error metric %v %v", v, ok)
	}
	if err := dryRunCreate(frozen.DeepCopy()); err == nil {
		t.Fatal("the broken text opened the gate")
	}

	// Re-moded to warn by a fixed text: in force within 2 s, and the metric clears.
	policyConfigMap(t, "team-rules", controllers.PolicyLabelRego, map[string]string{"frozen.rego": fmt.Sprintf(frozenPolicy, "warn")})
	took = waitFor(t, "the fixed text in force", 2*time.Second, func() bool { return dryRunCreate(frozen.DeepCopy()) == nil })
	t.Logf("policy ConfigMap changed → in force after %s", took)
	if _, ok := gaugeValue(t, "sluice_admission_policy_load_errors", map[string]string{"policy": "team-rules/frozen"}); ok {
		t.Error("the load error metric stays after the fix")
	}

	// The configuration turns it to deny again; deleting the ConfigMap removes the policy.
	cfg := policyConfigMap(t, "policy-config", controllers.PolicyLabelConfig, map[string]string{admission.ConfigKey: "policies:\n  team-rules/frozen: {mode: deny}\n"})
	waitFor(t, "the configuration in force", 2*time.Second, func() bool { return dryRunCreate(frozen.DeepCopy()) != nil })
	if err := env.Client.Delete(ctx, cm); err != nil {
		t.Fatal(err)
	}
	took = waitFor(t, "the deleted policy gone", 2*time.Second, func() bool { return dryRunCreate(frozen.DeepCopy()) == nil })
	t.Logf("policy ConfigMap deleted → out of force after %s", took)
	if err := env.Client.Delete(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestPolicyNeverStrandsAnAbortOrTheOperator: a Rollout that a newer policy rejects still
// takes a person's abort (an update that leaves spec alone) and every write of the operator
// itself; a change of its spec is refused.
func TestPolicyNeverStrandsAnAbortOrTheOperator(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	ro := rolloutFor(ns, "frozen-api", "api")
	if err := env.Client.Create(ctx, ro); err != nil {
		t.Fatal(err)
	}
	policyConfigMap(t, "freeze", controllers.PolicyLabelRego, map[string]string{"frozen.rego": fmt.Sprintf(frozenPolicy, "deny")})
	waitFor(t, "the policy in force", 2*time.Second, func() bool { return dryRunCreate(rolloutFor(ns, "frozen-probe", "x")) != nil })

	patch := client.MergeFrom(ro.DeepCopy())
	ro.Annotations = map[string]string{meshv1alpha1.ActionAnnotation: "abort"}
	if err := env.Client.Patch(ctx, ro, patch); err != nil {
		t.Fatalf("a person's abort was refused: %v", err)
	}
	patch = client.MergeFrom(ro.DeepCopy())
	ro.Spec.Strategy.Canary.StepWeight = ptr.To[int32](5)
	if err := env.Client.Patch(ctx, ro, patch); err == nil || !strings.Contains(err.Error(), "freeze/frozen") {
		t.Fatalf("a spec change of a rejected Rollout: %v", err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: exemptUser, Groups: []string{"system:masters"}}
	operator, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := operator.Patch(ctx, ro, patch); err != nil {
		t.Fatalf("the operator's own write was refused: %v", err)
	}
}

// TestPolicyAuditReportsExistingObjects: an audit-mode policy admits; the audit counts the
// violation in sluice_policy_violations{policy,mode,kind,namespace} and sends one Warning
// event per new violation, at most MaxEvents per run.
func TestPolicyAuditReportsExistingObjects(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	// Existing objects, then a new policy: the audit after the change finds them.
	for i := range 3 {
		if err := env.Client.Create(ctx, rolloutFor(ns, fmt.Sprintf("frozen-old-%d", i), "web")); err != nil {
			t.Fatal(err)
		}
	}
	policyConfigMap(t, "audit-rules", controllers.PolicyLabelRego, map[string]string{"frozen.rego": fmt.Sprintf(frozenPolicy, "audit")})
	labels := map[string]string{"policy": "audit-rules/frozen", "mode": "audit", "kind": "Rollout", "namespace": ns}
	took := waitFor(t, "the audit after the policy change", 10*time.Second, func() bool {
		v, ok := gaugeValue(t, "sluice_policy_violations", labels)
		return ok && v == 3
	})
	t.Logf("policy created → existing violations counted by the audit after %s", took)
	waitFor(t, "the policy in force", 2*time.Second, func() bool {
		for _, p := range engine.Policies() {
			if p.Name == "audit-rules/frozen" {
				return true
			}
		}
		return false
	})
	for i := range 5 {
		if err := env.Client.Create(ctx, rolloutFor(ns, fmt.Sprintf("frozen-%d", i), "web")); err != nil {
			t.Fatalf("an audit-mode policy refused: %v", err)
		}
	}
	// Every audit sends at most 5 events; the later ones send what is left over, until
	// every violation had its one event.
	for run := 1; ; run++ {
		res, err := auditor.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("audit %d: %d objects, %d violations, %d events in %s", run, res.Objects, res.Violations, res.Events, res.Took)
		if res.Events > 5 {
			t.Fatalf("%d events in one audit: the bound is 5", res.Events)
		}
		if res.Events == 0 {
			break
		}
		if run > 20 {
			t.Fatal("the audit keeps sending events")
		}
	}
	if v, ok := gaugeValue(t, "sluice_policy_violations", labels); !ok || v != 8 {
		t.Errorf("sluice_policy_violations%v = %v (%v), want 8", labels, v, ok)
	}
	once := func() bool {
		for i := range 8 {
			name := fmt.Sprintf("frozen-%d", i)
			if i >= 5 {
				name = fmt.Sprintf("frozen-old-%d", i-5)
			}
			if len(eventsFor(t, ns, name, "PolicyViolation")) != 1 {
				return false
			}
		}
		return true
	}
	waitFor(t, "one event per violation", 5*time.Second, once)
	ev := eventsFor(t, ns, "frozen-0", "PolicyViolation")[0]
	if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Note, "audit-rules/frozen") || !strings.Contains(ev.Note, "metadata.name") {
		t.Errorf("event %s: %s", ev.Type, ev.Note)
	}
}
