package controllers_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

func policyNamespace(t testing.TB, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// createService is Service "shop" (port 80 → 8080) in ns.
func createService(t testing.TB, ns string) {
	const name = "shop"
	t.Helper()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if err := env.Client.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// createRoute is a user's HTTPRoute with a rule to svc and a rule to another Service.
func createRoute(t testing.TB, ns, svc string) {
	t.Helper()
	rt := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "edge"}}},
			Rules: []gatewayv1.HTTPRouteRule{
				{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: gatewayv1.ObjectName(svc), Port: ptr.To(gatewayv1.PortNumber(80))}}}}},
				{
					Matches:     []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr.To(gatewayv1.PathMatchPathPrefix), Value: ptr.To("/other")}}},
					BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{Name: "other", Port: ptr.To(gatewayv1.PortNumber(80))}}}},
				},
			},
		},
	}
	if err := env.Client.Create(context.Background(), rt); err != nil {
		t.Fatal(err)
	}
}

func createPolicy(t *testing.T, ns, name string, spec meshv1alpha1.MeshPolicySpec) {
	t.Helper()
	p := &meshv1alpha1.MeshPolicy{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

func targets(names ...string) []meshv1alpha1.PolicyTargetReference {
	var out []meshv1alpha1.PolicyTargetReference
	for _, n := range names {
		out = append(out, meshv1alpha1.PolicyTargetReference{Kind: "Service", Name: n})
	}
	return out
}

// waitPolicy polls until cond holds and returns the policy; it fails with the last status.
func waitPolicy(t *testing.T, ns, name, what string, cond func(*meshv1alpha1.MeshPolicy) bool) *meshv1alpha1.MeshPolicy {
	t.Helper()
	p := &meshv1alpha1.MeshPolicy{}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 45*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return p.Status.ObservedGeneration == p.Generation && cond(p), nil
	})
	if err != nil {
		t.Fatalf("MeshPolicy %s/%s: waiting for %s: %v; status %+v", ns, name, what, err, p.Status)
	}
	return p
}

func condition(p *meshv1alpha1.MeshPolicy, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(p.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// readyIs: Ready has status and, unless reason is "", that reason.
func readyIs(status metav1.ConditionStatus, reason string) func(*meshv1alpha1.MeshPolicy) bool {
	return func(p *meshv1alpha1.MeshPolicy) bool {
		c := condition(p, meshv1alpha1.ConditionReady)
		return c.Status == status && (reason == "" || c.Reason == reason)
	}
}

func getObject(t *testing.T, gvk schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, bool) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)
	if client.IgnoreNotFound(err) != nil {
		t.Fatal(err)
	}
	return u, err == nil
}

var middlewareGVK = schema.GroupVersionKind{Group: "traefik.io", Version: "v1alpha1", Kind: "Middleware"}

func routeRules(t *testing.T, ns string) ([]gatewayv1.HTTPRouteRule, map[string]string) {
	t.Helper()
	rt := &gatewayv1.HTTPRoute{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "web"}, rt); err != nil {
		t.Fatal(err)
	}
	return rt.Spec.Rules, rt.Annotations
}

// Traefik: Middlewares owned by the policy, wired by ExtensionRef filters into the rule that
// reaches the target only; deleting the policy unwires them and deletes them.
func TestMeshPolicyTraefikWiresMiddlewaresAndCleansUp(t *testing.T) {
	ctx := context.Background()
	ns := policyNamespace(t, "mp-traefik")
	createService(t, ns)
	createRoute(t, ns, "shop")
	createPolicy(t, ns, "shop", meshv1alpha1.MeshPolicySpec{
		TargetRefs: targets("shop"),
		Provider:   meshv1alpha1.ProviderTraefik,
		Retries:    &meshv1alpha1.Retries{Attempts: 2},
		RateLimit:  &meshv1alpha1.RateLimit{RequestsPerSecond: 10},
	})
	p := waitPolicy(t, ns, "shop", "Ready", readyIs(metav1.ConditionTrue, ""))
	if p.Status.Provider != meshv1alpha1.ProviderTraefik || len(p.Status.Unsupported) != 0 {
		t.Errorf("status: provider %q, unsupported %+v", p.Status.Provider, p.Status.Unsupported)
	}
	var names []string
	for _, r := range p.Status.Resources {
		if r.Kind != "Middleware" {
			t.Errorf("unexpected resource %+v", r)
			continue
		}
		names = append(names, r.Name)
		mw, ok := getObject(t, middlewareGVK, ns, r.Name)
		if !ok {
			t.Fatalf("Middleware %s listed in status does not exist", r.Name)
		}
		if !metav1.IsControlledBy(mw, p) || mw.GetLabels()["mesh.sluice.dev/meshpolicy"] != "shop" {
			t.Errorf("Middleware %s: owners %+v labels %v", r.Name, mw.GetOwnerReferences(), mw.GetLabels())
		}
	}
	if len(names) != 2 {
		t.Fatalf("resources %+v, want a retry and a rate-limit Middleware", p.Status.Resources)
	}
	rules, ann := routeRules(t, ns)
	if ann[meshv1alpha1.MeshPolicyRouteAnnotation] != "shop" {
		t.Errorf("route annotations %v", ann)
	}
	var wired []string
	for _, f := range rules[0].Filters {
		if f.Type == gatewayv1.HTTPRouteFilterExtensionRef {
			wired = append(wired, string(f.ExtensionRef.Name))
		}
	}
	if strings.Join(slices.Sorted(slices.Values(wired)), ",") != strings.Join(slices.Sorted(slices.Values(names)), ",") {
		t.Errorf("rule to shop has ExtensionRefs %v, want %v", wired, names)
	}
	if len(rules[1].Filters) != 0 {
		t.Errorf("the rule to another Service got filters: %+v", rules[1].Filters)
	}

	// A field Traefik can't express: listed, not Ready, the rest stays applied.
	// (No admission webhook in this test: with it, an explicit provider would be rejected.)
	patchSpec(t, ns, "shop", `{"spec":{"mtls":{"mode":"Strict"}}}`)
	p = waitPolicy(t, ns, "shop", "UnsupportedFields", readyIs(metav1.ConditionFalse, "UnsupportedFields"))
	if len(p.Status.Unsupported) != 1 || p.Status.Unsupported[0].Field != "mtls.mode" || p.Status.Unsupported[0].Reason == "" ||
		condition(p, meshv1alpha1.ConditionStalled).Status != metav1.ConditionTrue || len(p.Status.Resources) != 2 {
		t.Errorf("with mtls on traefik: status %+v", p.Status)
	}

	// Without the field it is Ready again; then delete: filters unwired, Middlewares deleted.
	patchSpec(t, ns, "shop", `{"spec":{"mtls":null}}`)
	waitPolicy(t, ns, "shop", "Ready again", readyIs(metav1.ConditionTrue, ""))
	if err := env.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, &meshv1alpha1.MeshPolicy{})
		return client.IgnoreNotFound(err) == nil && err != nil, nil
	})
	if err != nil {
		t.Fatal("the policy was not deleted (finalizer stuck?)")
	}
	for _, n := range names {
		if _, ok := getObject(t, middlewareGVK, ns, n); ok {
			t.Errorf("Middleware %s still exists after the policy was deleted", n)
		}
	}
	rules, ann = routeRules(t, ns)
	if len(rules[0].Filters) != 0 || ann[meshv1alpha1.MeshPolicyRouteAnnotation] != "" {
		t.Errorf("after deletion the route keeps filters %+v, annotations %v", rules[0].Filters, ann)
	}
}

func patchSpec(t testing.TB, ns, name, patch string) {
	t.Helper()
	p := &meshv1alpha1.MeshPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := env.Client.Patch(context.Background(), p, client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// Two policies on one Service: the older governs, the newer is Conflicted and applies
// nothing; when the older goes, the newer takes over.
func TestMeshPolicyConflictOlderWins(t *testing.T) {
	ctx := context.Background()
	ns := policyNamespace(t, "mp-conflict")
	createService(t, ns)
	createRoute(t, ns, "shop")
	createPolicy(t, ns, "first", meshv1alpha1.MeshPolicySpec{TargetRefs: targets("shop"), Provider: meshv1alpha1.ProviderTraefik, RateLimit: &meshv1alpha1.RateLimit{RequestsPerSecond: 5}})
	waitPolicy(t, ns, "first", "Ready", readyIs(metav1.ConditionTrue, ""))
	// Created in the same second (timestamps have a one-second resolution), the name decides:
	// "first" is older either way.
	createPolicy(t, ns, "second", meshv1alpha1.MeshPolicySpec{TargetRefs: targets("shop"), Provider: meshv1alpha1.ProviderTraefik, RateLimit: &meshv1alpha1.RateLimit{RequestsPerSecond: 50}})
	second := waitPolicy(t, ns, "second", "Conflicted", func(p *meshv1alpha1.MeshPolicy) bool {
		return condition(p, meshv1alpha1.ConditionConflicted).Status == metav1.ConditionTrue
	})
	if c := condition(second, meshv1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || !strings.Contains(condition(second, meshv1alpha1.ConditionConflicted).Message, "first") {
		t.Errorf("second: Ready %+v, Conflicted %+v", c, condition(second, meshv1alpha1.ConditionConflicted))
	}
	if len(second.Status.Resources) != 0 {
		t.Errorf("a conflicted policy lists resources: %+v", second.Status.Resources)
	}
	first := &meshv1alpha1.MeshPolicy{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "first"}, first); err != nil {
		t.Fatal(err)
	}
	if c := condition(first, meshv1alpha1.ConditionConflicted); c.Status != metav1.ConditionFalse {
		t.Errorf("the older policy is Conflicted: %+v", c)
	}
	rules, ann := routeRules(t, ns)
	if ann[meshv1alpha1.MeshPolicyRouteAnnotation] != "first" || len(rules[0].Filters) != 1 {
		t.Errorf("route carries %v with filters %+v, want first's only", ann, rules[0].Filters)
	}

	if err := env.Client.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	second = waitPolicy(t, ns, "second", "Ready after the older left", readyIs(metav1.ConditionTrue, ""))
	if c := condition(second, meshv1alpha1.ConditionConflicted); c.Status != metav1.ConditionFalse {
		t.Errorf("second still Conflicted: %+v", c)
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, ann := routeRules(t, ns)
		return ann[meshv1alpha1.MeshPolicyRouteAnnotation] == "second", nil
	})
	if err != nil {
		_, ann := routeRules(t, ns)
		t.Errorf("route marked %v, want second", ann)
	}
}

// Linkerd (chosen by auto: the only mesh whose CRDs are installed): generated objects owned by
// the policy; retries and timeouts as annotations on the Service, removed with the policy.
func TestMeshPolicyAutoLinkerdAnnotatesServices(t *testing.T) {
	ctx := context.Background()
	ns := policyNamespace(t, "mp-linkerd")
	createService(t, ns)
	createPolicy(t, ns, "shop", meshv1alpha1.MeshPolicySpec{
		TargetRefs: targets("shop"),
		MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
		Timeouts:   &meshv1alpha1.Timeouts{Request: &metav1.Duration{Duration: 5 * time.Second}},
		Retries:    &meshv1alpha1.Retries{Attempts: 3, RetryOn: []meshv1alpha1.RetryOn{"5xx"}},
		RateLimit:  &meshv1alpha1.RateLimit{RequestsPerSecond: 100},
	})
	p := waitPolicy(t, ns, "shop", "applied", func(p *meshv1alpha1.MeshPolicy) bool {
		return condition(p, meshv1alpha1.ConditionAccepted).Status == metav1.ConditionTrue
	})
	if p.Status.Provider != meshv1alpha1.ProviderLinkerd {
		t.Fatalf("provider auto chose %q, want linkerd", p.Status.Provider)
	}
	svc := &corev1.Service{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, svc); err != nil {
		t.Fatal(err)
	}
	var linkerdKeys []string
	for k := range svc.Annotations {
		if strings.Contains(k, "linkerd.io/") {
			linkerdKeys = append(linkerdKeys, k)
		}
	}
	if len(linkerdKeys) == 0 {
		t.Errorf("Service annotations %v carry no Linkerd retry/timeout settings", svc.Annotations)
	}
	owned := 0
	for _, r := range p.Status.Resources {
		if r.Kind == "Service" {
			continue
		}
		gv, _ := schema.ParseGroupVersion(r.APIVersion)
		obj, ok := getObject(t, gv.WithKind(r.Kind), ns, r.Name)
		if !ok || !metav1.IsControlledBy(obj, p) {
			t.Errorf("%s %s: exists %v, owners %+v", r.Kind, r.Name, ok, obj.GetOwnerReferences())
		}
		owned++
	}
	if owned == 0 {
		t.Errorf("no Linkerd objects generated: %+v", p.Status.Resources)
	}

	if err := env.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, svc); err != nil {
			return false, err
		}
		for k := range svc.Annotations {
			if strings.Contains(k, "linkerd.io/") {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Errorf("Service annotations after the policy left: %v", svc.Annotations)
	}
	for _, r := range p.Status.Resources {
		if r.Kind == "Service" {
			continue
		}
		gv, _ := schema.ParseGroupVersion(r.APIVersion)
		if _, ok := getObject(t, gv.WithKind(r.Kind), ns, r.Name); ok {
			t.Errorf("%s %s still exists after the policy was deleted", r.Kind, r.Name)
		}
	}
}

// A provider whose CRDs are missing changes nothing and says so; so does a missing Service.
func TestMeshPolicyProviderNotInstalledAndMissingTarget(t *testing.T) {
	ns := policyNamespace(t, "mp-missing")
	createService(t, ns)
	createPolicy(t, ns, "istio", meshv1alpha1.MeshPolicySpec{TargetRefs: targets("shop"), Provider: meshv1alpha1.ProviderIstio, MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict}})
	p := waitPolicy(t, ns, "istio", "ProviderNotInstalled", readyIs(metav1.ConditionFalse, "ProviderNotInstalled"))
	if c := condition(p, meshv1alpha1.ConditionStalled); c.Status != metav1.ConditionTrue || !strings.Contains(c.Message, "PeerAuthentication") && !strings.Contains(c.Message, "DestinationRule") {
		t.Errorf("Stalled %+v should name the missing Istio kinds", c)
	}
	createPolicy(t, ns, "ghost", meshv1alpha1.MeshPolicySpec{TargetRefs: targets("nowhere"), Provider: meshv1alpha1.ProviderTraefik, RateLimit: &meshv1alpha1.RateLimit{RequestsPerSecond: 1}})
	p = waitPolicy(t, ns, "ghost", "TargetNotFound", readyIs(metav1.ConditionFalse, "TargetNotFound"))
	if !strings.Contains(condition(p, meshv1alpha1.ConditionReady).Message, "nowhere") || len(p.Status.Resources) != 0 {
		t.Errorf("ghost: %+v", p.Status)
	}
}

// An object the policy would generate that exists and is someone else's is not taken over.
func TestMeshPolicyDoesNotAdoptForeignObjects(t *testing.T) {
	ctx := context.Background()
	ns := policyNamespace(t, "mp-adopt")
	createService(t, ns)
	mine := &unstructured.Unstructured{}
	mine.SetGroupVersionKind(middlewareGVK)
	mine.SetNamespace(ns)
	mine.SetName("edge-ratelimit")
	_ = unstructured.SetNestedField(mine.Object, map[string]any{"average": int64(7)}, "spec", "rateLimit")
	if err := env.Client.Create(ctx, mine); err != nil {
		t.Fatal(err)
	}
	createPolicy(t, ns, "edge", meshv1alpha1.MeshPolicySpec{TargetRefs: targets("shop"), Provider: meshv1alpha1.ProviderTraefik, RateLimit: &meshv1alpha1.RateLimit{RequestsPerSecond: 100}})
	p := waitPolicy(t, ns, "edge", "ObjectNotOwned", readyIs(metav1.ConditionFalse, meshv1alpha1.ReasonObjectNotOwned))
	if msg := condition(p, meshv1alpha1.ConditionReady).Message; !strings.Contains(msg, "Middleware edge-ratelimit") {
		t.Errorf("Ready message %q does not name the object", msg)
	}
	got, _ := getObject(t, middlewareGVK, ns, "edge-ratelimit")
	if avg, _, _ := unstructured.NestedInt64(got.Object, "spec", "rateLimit", "average"); avg != 7 || len(got.GetOwnerReferences()) != 0 {
		t.Errorf("the user's Middleware was changed: %v", got.Object)
	}
}

// A Service a Rollout releases: Linkerd's Service annotations go on its slot Services too (each
// has its own load balancer, where failure accrual acts).
func TestMeshPolicyLinkerdCoversRolloutSlots(t *testing.T) {
	ctx := context.Background()
	ns := policyNamespace(t, "mp-slots")
	createService(t, ns) // the apex "shop"
	for _, slot := range []string{"shop-a", "shop-b"} {
		s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: slot, Namespace: ns}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": slot}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
		if err := env.Client.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// No Rollout controller runs during this test: only the Rollout's spec is read. It must be
	// gone before the Rollout tests start managers that watch every namespace (its slot
	// Services here are not theirs to apply).
	ro := canaryRollout(ns, "shop")
	create(t, ro)
	t.Cleanup(func() {
		if err := env.Client.Delete(context.Background(), ro); client.IgnoreNotFound(err) != nil {
			t.Error(err)
		}
	})
	createPolicy(t, ns, "shop", meshv1alpha1.MeshPolicySpec{
		TargetRefs:     targets("shop"),
		Provider:       meshv1alpha1.ProviderLinkerd,
		CircuitBreaker: &meshv1alpha1.CircuitBreaker{OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 5, MaxEjectionPercent: ptr.To[int32](100)}},
	})
	p := waitPolicy(t, ns, "shop", "applied", func(p *meshv1alpha1.MeshPolicy) bool {
		return condition(p, meshv1alpha1.ConditionAccepted).Status == metav1.ConditionTrue
	})
	for _, name := range []string{"shop", "shop-a", "shop-b"} {
		svc := &corev1.Service{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
			t.Fatal(err)
		}
		if svc.Annotations["balancer.linkerd.io/failure-accrual"] != "consecutive" {
			t.Errorf("Service %s annotations %v: no failure accrual", name, svc.Annotations)
		}
	}
	if n := len(p.Status.Resources); n != 3 {
		t.Errorf("resources %+v, want the three annotated Services", p.Status.Resources)
	}
}

// A mesh's CRDs installed, then removed, while the manager runs: the policy that names the
// mesh is applied once they are served, and says it is not installed once they are gone
// (Stalled, no retry loop); provider auto chooses again each time, without a restart.
func TestMeshPolicyProviderCRDRemovedAtRunTime(t *testing.T) {
	path, err := testenv.IstioCRDs()
	if err != nil {
		t.Fatal(err)
	}
	named, auto := policyNamespace(t, "mp-crd-named"), policyNamespace(t, "mp-crd-auto")
	createService(t, named)
	createService(t, auto)
	mtls := &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict}
	createPolicy(t, named, "shop", meshv1alpha1.MeshPolicySpec{TargetRefs: targets("shop"), Provider: meshv1alpha1.ProviderIstio, MTLS: mtls})
	waitPolicy(t, named, "shop", "ProviderNotInstalled before Istio is", readyIs(metav1.ConditionFalse, meshv1alpha1.ReasonProviderNotInstalled))

	opts := envtest.CRDInstallOptions{Paths: []string{path}, MaxTime: time.Minute}
	if _, err := envtest.InstallCRDs(env.Config, opts); err != nil {
		t.Fatal(err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			_ = envtest.UninstallCRDs(env.Config, opts)
		}
	})
	createPolicy(t, auto, "shop", meshv1alpha1.MeshPolicySpec{TargetRefs: targets("shop"), MTLS: mtls})
	applied := func(provider meshv1alpha1.Provider) func(*meshv1alpha1.MeshPolicy) bool {
		return func(p *meshv1alpha1.MeshPolicy) bool {
			return p.Status.Provider == provider && condition(p, meshv1alpha1.ConditionAccepted).Status == metav1.ConditionTrue &&
				p.Status.ObservedGeneration == p.Generation
		}
	}
	waitPolicy(t, named, "shop", "applied with istio once it is installed", applied(meshv1alpha1.ProviderIstio))
	waitPolicy(t, auto, "shop", "auto applied with istio (installed, first in order)", applied(meshv1alpha1.ProviderIstio))
	t.Run("named targetPort resolved from endpoints", checkIstioNamedTargetPortResolved)

	if err := envtest.UninstallCRDs(env.Config, opts); err != nil {
		t.Fatal(err)
	}
	removed = true
	p := waitPolicy(t, named, "shop", "ProviderNotInstalled", readyIs(metav1.ConditionFalse, meshv1alpha1.ReasonProviderNotInstalled))
	if c := condition(p, meshv1alpha1.ConditionStalled); c.Status != metav1.ConditionTrue {
		t.Errorf("Stalled %+v, want True: only installing Istio again helps", c)
	}
	waitPolicy(t, auto, "shop", "auto chose again: linkerd", applied(meshv1alpha1.ProviderLinkerd))
}
