package controllers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/probe"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// wantRules compares the route's rules, as stored by the API server (defaults included), with
// the YAML of the rules expected.
func wantRules(t *testing.T, c *cluster, route, want string) {
	t.Helper()
	rt := c.route(t, route)
	got, err := json.Marshal(withoutProbe(rt.Spec.Rules))
	if err != nil {
		t.Fatal(err)
	}
	wantJSON, err := yaml.YAMLToJSON([]byte(want))
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	_ = json.Unmarshal(got, &g)
	_ = json.Unmarshal(wantJSON, &w)
	gy, _ := yaml.Marshal(g)
	wy, _ := yaml.Marshal(w)
	if string(gy) != string(wy) {
		t.Errorf("route %s rules:\n%s\nwant:\n%s", route, gy, wy)
	}
}

// withoutProbe is rules without the data-plane probe's rule (see wantProbe).
func withoutProbe(rules []gatewayv1.HTTPRouteRule) []gatewayv1.HTTPRouteRule {
	var out []gatewayv1.HTTPRouteRule
	for _, r := range rules {
		if !probe.IsRule(r) {
			out = append(out, r)
		}
	}
	return out
}

// wantProbe asserts the route's probe rule reaches Service svc.
func wantProbe(t *testing.T, c *cluster, route, svc string) {
	t.Helper()
	for _, r := range c.route(t, route).Spec.Rules {
		if probe.IsRule(r) {
			if len(r.BackendRefs) != 1 || string(r.BackendRefs[0].Name) != svc {
				t.Errorf("route %s: the probe rule reaches %+v, want %s", route, r.BackendRefs, svc)
			}
			return
		}
	}
	t.Errorf("route %s has no probe rule", route)
}

func TestBlueGreenRouteAndPreview(t *testing.T) {
	c := newCluster(t, "bluegreen")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "web")
	ro := canaryRollout(c.ns, "web")
	ro.Spec.Strategy = meshv1alpha1.RolloutStrategy{BlueGreen: &meshv1alpha1.BlueGreenStrategy{
		PreviewService: "web-preview", PrePromotionChecks: ptrTo(int32(2)), ScaleDownDelay: &metav1.Duration{Duration: time.Second},
	}}
	create(t, ro)
	c.healthyOn(t, "web", meshv1alpha1.SlotA)
	c.setImage(t, "web", "demo:v2")
	r := c.waitRollout(t, "web", "waiting for promote", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhasePaused && condIs(r, meshv1alpha1.ConditionReconciling, "WaitingForPromote")
	})
	if r.Status.Analysis.StepPassed < 2 {
		t.Errorf("pre-promotion checks %d, want 2", r.Status.Analysis.StepPassed)
	}
	preview := &corev1.Service{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: "web-preview"}, preview); err != nil {
		t.Fatal(err)
	}
	if preview.Spec.Selector[rollout.LabelSlot] != "b" {
		t.Errorf("preview selects %v, want slot b", preview.Spec.Selector)
	}
	split := func(a, b int) string {
		return `
- name: sluice-split
  matches: [{path: {type: PathPrefix, value: /}}]
  backendRefs:
  - {group: "", kind: Service, name: web-a, port: 80, weight: ` + itoa(a) + `}
  - {group: "", kind: Service, name: web-b, port: 80, weight: ` + itoa(b) + `}
`
	}
	wantRules(t, c, "web", split(100, 0))
	wantProbe(t, c, "web", "web-b") // the preview slot, proven before the switch

	annotate(t, r, meshv1alpha1.ActionPromote)
	c.healthyOn(t, "web", meshv1alpha1.SlotB)
	wantRules(t, c, "web", split(0, 100))
	wantProbe(t, c, "web", "web-b") // now the stable slot
}

func TestABHeaderMatchAndMirrorRoute(t *testing.T) {
	c := newCluster(t, "ab")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "shop")
	ro := canaryRollout(c.ns, "shop")
	ro.Spec.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{{SetWeight: ptrTo(int32(10))}, {Pause: &meshv1alpha1.PauseStep{}}}
	ro.Spec.Strategy.Canary.Match = []meshv1alpha1.RouteMatch{{Headers: []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "always"}}}}
	ro.Spec.Strategy.Canary.Mirror = &meshv1alpha1.Mirror{Percent: 20}
	create(t, ro)
	c.healthyOn(t, "shop", meshv1alpha1.SlotA)
	wantRules(t, c, "shop", `
- name: sluice-split
  matches: [{path: {type: PathPrefix, value: /}}]
  backendRefs:
  - {group: "", kind: Service, name: shop-a, port: 80, weight: 100}
  - {group: "", kind: Service, name: shop-b, port: 80, weight: 0}
`)
	c.setImage(t, "shop", "demo:v2")
	c.waitRollout(t, "shop", "paused at 10%", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhasePaused && r.Status.CanaryWeight == 10 && condIs(r, meshv1alpha1.ConditionTrafficApplied, "")
	})
	wantRules(t, c, "shop", `
- name: sluice-match-0
  matches:
  - path: {type: PathPrefix, value: /}
    headers: [{type: Exact, name: x-canary, value: always}]
  backendRefs:
  - {group: "", kind: Service, name: shop-b, port: 80, weight: 1}
- name: sluice-split
  matches: [{path: {type: PathPrefix, value: /}}]
  filters:
  - type: RequestMirror
    requestMirror:
      backendRef: {group: "", kind: Service, name: shop-b, port: 80}
      percent: 20
  backendRefs:
  - {group: "", kind: Service, name: shop-a, port: 80, weight: 90}
  - {group: "", kind: Service, name: shop-b, port: 80, weight: 10}
`)
}

func ptrTo[T any](v T) *T { return &v }

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// An existing route the user owns (field manager gitops): a release changes only the backendRefs
// of the rule that points at the rollout's Service; the other rule, the filter, the third
// backend and everything outside spec.rules stay byte for byte.
func TestExistingRouteKeepsWhatSluiceDoesNotOwn(t *testing.T) {
	c := newCluster(t, "existing")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "shop")
	userRoute := `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: storefront
  namespace: ` + c.ns + `
  annotations: {team: web}
spec:
  parentRefs: [{name: edge, namespace: gateways}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {add: [{name: x-from, value: gitops}]}
    backendRefs:
    - {name: shop, port: 80}
    - {name: legacy, port: 80, weight: 0}
  - matches: [{path: {type: PathPrefix, value: /static}}]
    backendRefs: [{name: static, port: 80}]
`
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(userRoute), &u.Object); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("gitops")); err != nil {
		t.Fatal(err)
	}
	before := c.route(t, "storefront")

	ro := canaryRollout(c.ns, "shop")
	ro.Spec.TrafficRouting.GatewayAPI = meshv1alpha1.GatewayAPIRouting{HTTPRouteRef: &meshv1alpha1.LocalObjectReference{Name: "storefront"}}
	create(t, ro)
	c.healthyOn(t, "shop", meshv1alpha1.SlotA)
	c.setImage(t, "shop", "demo:v2")
	r := c.waitRollout(t, "shop", "the manual gate", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhasePaused })
	annotate(t, r, meshv1alpha1.ActionPromote)
	c.healthyOn(t, "shop", meshv1alpha1.SlotB)

	after := c.route(t, "storefront")
	after.Spec.Rules = withoutProbe(after.Spec.Rules)
	same := func(what string, x, y any) {
		t.Helper()
		bx, _ := json.Marshal(x)
		by, _ := json.Marshal(y)
		if string(bx) != string(by) {
			t.Errorf("%s changed:\n%s\n%s", what, bx, by)
		}
	}
	same("parentRefs", before.Spec.ParentRefs, after.Spec.ParentRefs)
	same("hostnames", before.Spec.Hostnames, after.Spec.Hostnames)
	same("annotations", before.Annotations, after.Annotations)
	same("the /static rule", before.Spec.Rules[1], after.Spec.Rules[1])
	same("the /api rule's matches", before.Spec.Rules[0].Matches, after.Spec.Rules[0].Matches)
	same("the /api rule's filters", before.Spec.Rules[0].Filters, after.Spec.Rules[0].Filters)
	if len(after.Spec.Rules) != 2 {
		t.Fatalf("rules: %d, want 2", len(after.Spec.Rules))
	}
	var refs []string
	for _, b := range after.Spec.Rules[0].BackendRefs {
		refs = append(refs, string(b.Name)+"="+itoa(int(ptrDeref(b.Weight, 1))))
	}
	if got := strings.Join(refs, ","); got != "shop-a=0,shop-b=100,legacy=0" {
		t.Errorf("/api backends %s, want shop-a=0,shop-b=100,legacy=0", got)
	}
}

func ptrDeref[T any](p *T, d T) T {
	if p == nil {
		return d
	}
	return *p
}
