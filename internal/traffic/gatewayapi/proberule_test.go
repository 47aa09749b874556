package gatewayapi

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/routes"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// The data-plane probe's rule on the real API server: written with the split (first in a
// generated route; before the A/B rules in an existing one), accepted by the CRD's schema, read
// back equal (a repeated Apply writes nothing), replaced when it moves, removed when the split
// has none or the route is released, never given a MeshPolicy's settings, never a driven rule.

// pubPolicy publishes MeshPolicy "pay" (a 5s request timeout and its ExtensionRef filter) on the
// routes of ns for the apex Service checkout and its slots; rollout drives the route.
func pubPolicy(t *testing.T, ns string, rollout meshv1alpha1.Rollout) {
	t.Helper()
	ext := gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{Group: "traefik.io", Kind: "Middleware", Name: "pay-retry"}}
	rollouts := []meshv1alpha1.Rollout{rollout}
	edit := routes.Edit{
		Policy: "pay", Namespace: ns,
		Backends: routes.Backends([]string{"checkout"}, rollouts),
		Settings: &policy.RuleSettings{Timeouts: &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))}, Filters: []gwv1.HTTPRouteFilter{ext}},
		Owned:    []string{"pay-retry"},
	}
	if !edit.Backends["checkout-b"] {
		t.Fatalf("policy backends %v: the slots must be among them", edit.Backends)
	}
	if _, err := routes.Sync(context.Background(), k8s, edit, rollouts); err != nil {
		t.Fatalf("publishing the policy: %v", err)
	}
}

func applyAndObserve(t *testing.T, r *Router, s traffic.Split) traffic.Status {
	t.Helper()
	if err := r.Apply(context.Background(), s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	st, err := r.Observe(context.Background(), s)
	if err != nil {
		t.Fatalf("Observe: %v", err)
	}
	return st
}

// assertNoWrite applies s again and fails if the route changed.
func assertNoWrite(t *testing.T, r *Router, s traffic.Split, ns, what string) {
	t.Helper()
	before := getUnstructured(t, ns).GetResourceVersion()
	if err := r.Apply(context.Background(), s); err != nil {
		t.Fatalf("repeated Apply: %v", err)
	}
	if after := getUnstructured(t, ns).GetResourceVersion(); after != before {
		t.Errorf("%s: an unchanged split rewrote the route (resourceVersion %s -> %s)", what, before, after)
	}
}

func TestGeneratedRouteProbeRule(t *testing.T) {
	ns := namespace(t)
	r := New(k8s)
	s := generatedSplit(ns)
	s.Matches = []meshv1alpha1.RouteMatch{{Headers: []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "always"}}}}
	s.MirrorPercent = 20
	s.Probe = probeTo("checkout-b", "5ca1ab1e0000")
	if err := r.Apply(context.Background(), s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	ro := checkoutRollout()
	ro.UID = s.OwnerUID
	pubPolicy(t, ns, ro)

	st := applyAndObserve(t, r, s)
	extJSON := `{"type":"ExtensionRef","extensionRef":{"group":"traefik.io","kind":"Middleware","name":"pay-retry"}}`
	mirror20 := `{"type":"RequestMirror","requestMirror":{"backendRef":{"group":"","kind":"Service","name":"checkout-b","port":80},"percent":20}}`
	wantAB := jsonMap(t, `{"name":"sluice-match-0",
		"matches":[{"path":{"type":"PathPrefix","value":"/"},"headers":[{"type":"Exact","name":"x-canary","value":"always"}]}],
		"filters":[`+extJSON+`],"timeouts":{"request":"5s"},
		"backendRefs":[`+refB1+`]}`)
	wantSplit := jsonMap(t, `{"name":"sluice-split","matches":[{"path":{"type":"PathPrefix","value":"/"}}],
		"filters":[`+extJSON+`,`+mirror20+`],"timeouts":{"request":"5s"},
		"backendRefs":[{"group":"","kind":"Service","name":"checkout-a","port":80,"weight":90},{"group":"","kind":"Service","name":"checkout-b","port":80,"weight":10}]}`)
	assertSameJSON(t, "rules (the policy's settings on every rule but the probe's)", rulesOf(t, getUnstructured(t, ns)),
		[]any{jsonMap(t, wantProbeJSON("checkout-b", "5ca1ab1e0000")), wantAB, wantSplit})
	assertSameJSON(t, "observed probe", st.Probe, probeTo("checkout-b", "5ca1ab1e0000"))
	if !st.MatchesApplied || st.MirrorPercent != 20 || st.Weights["checkout-a"] != 90 || st.Weights["checkout-b"] != 10 {
		t.Errorf("Observe = %+v", st)
	}
	assertNoWrite(t, r, s, ns, "probe, A/B, mirror and policy settings")

	// Promotion moves the probe to the other slot with a new split version: replaced in place.
	s.Probe = probeTo("checkout-a", "0ddba11c0000")
	st = applyAndObserve(t, r, s)
	assertSameJSON(t, "rules with the probe moved", rulesOf(t, getUnstructured(t, ns)),
		[]any{jsonMap(t, wantProbeJSON("checkout-a", "0ddba11c0000")), wantAB, wantSplit})
	assertSameJSON(t, "observed probe after the move", st.Probe, s.Probe)
	assertNoWrite(t, r, s, ns, "moved probe")

	// Without a probe the rule goes, and the canary at weight 0 is reached no more.
	s.Probe, s.Matches, s.MirrorPercent = probeTo("checkout-b", ""), nil, 0
	s.Stable.Weight, s.Canary.Weight = 100, 0
	st = applyAndObserve(t, r, s)
	assertSameJSON(t, "Reaches with the probe on the drained canary", st.Reaches, map[string]bool{"checkout-a": true, "checkout-b": true})
	s.Probe = nil
	st = applyAndObserve(t, r, s)
	got := rulesOf(t, getUnstructured(t, ns))
	if len(got) != 1 || got[0]["name"] != SplitRuleName {
		t.Errorf("rules without a probe: %s", mustJSON(t, got))
	}
	if st.Probe != nil {
		t.Errorf("observed probe %+v after its removal", st.Probe)
	}
	assertSameJSON(t, "Reaches without the probe", st.Reaches, map[string]bool{"checkout-a": true})
	assertNoWrite(t, r, s, ns, "no probe")
}

func TestExistingRouteProbeRule(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	if err := gitopsApply(ctx, ns, false); err != nil {
		t.Fatalf("user's apply: %v", err)
	}
	orig := getUnstructured(t, ns)
	origRules := rulesOf(t, orig)
	s := existingSplit(ns)
	s.Matches = []meshv1alpha1.RouteMatch{{Headers: []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "always"}}}}
	s.MirrorPercent = 10
	s.Probe = probeTo("checkout-b", "5ca1ab1e0000")
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	ro := checkoutRollout()
	ro.Spec.TrafficRouting.GatewayAPI.HTTPRouteRef = &meshv1alpha1.LocalObjectReference{Name: "checkout"}
	pubPolicy(t, ns, ro)
	st := applyAndObserve(t, r, s)

	got := getUnstructured(t, ns)
	rules := rulesOf(t, got)
	if len(rules) != 4 {
		t.Fatalf("rules = %s, want probe, A/B, /api, /static", mustJSON(t, rules))
	}
	assertSameJSON(t, "the probe rule (no policy settings)", rules[0], jsonMap(t, wantProbeJSON("checkout-b", "5ca1ab1e0000")))
	for i, name := range []string{"A/B", "/api"} {
		if mustJSON(t, rules[i+1]["timeouts"]) != mustJSON(t, map[string]any{"request": "5s"}) {
			t.Errorf("the %s rule's timeouts = %s, want the policy's", name, mustJSON(t, rules[i+1]["timeouts"]))
		}
	}
	if rules[1]["name"] != "sluice-match-0" {
		t.Errorf("rule 1 is %v, want the A/B rule", rules[1]["name"])
	}
	assertSameJSON(t, "the /static rule", rules[3], origRules[1])
	assertSameJSON(t, "observed probe", st.Probe, s.Probe)
	assertSameJSON(t, "observed weights (the probe rule is not a driven rule)", st.Weights, map[string]int32{"checkout-a": 80, "checkout-b": 20})
	if !st.MatchesApplied || st.MirrorPercent != 10 {
		t.Errorf("Observe = %+v", st)
	}
	// Accepted by its parent: nothing in the route disagrees (the probe's slot is not weighted).
	rt := getRoute(t, ns)
	rt.Status.Parents = []gwv1.RouteParentStatus{parentStatus(rt.Spec.ParentRefs[0], metav1.ConditionTrue, rt.Generation, "Accepted", "")}
	if err := k8s.Status().Update(ctx, rt); err != nil {
		t.Fatalf("writing the route status: %v", err)
	}
	if st, _ = r.Observe(ctx, s); !st.Accepted {
		t.Errorf("not Accepted: %s", st.Message)
	}
	assertNoWrite(t, r, s, ns, "probe, A/B, mirror and policy settings")

	// Moved to the other slot: only the probe rule changes.
	s.Probe = probeTo("checkout-a", "")
	st = applyAndObserve(t, r, s)
	moved := rulesOf(t, getUnstructured(t, ns))
	assertSameJSON(t, "rules with the probe moved", moved, append([]map[string]any{jsonMap(t, wantProbeJSON("checkout-a", "")).(map[string]any)}, rules[1:]...))
	assertSameJSON(t, "observed probe after the move", st.Probe, s.Probe)

	// Removed: the rest stays byte for byte.
	s.Probe = nil
	st = applyAndObserve(t, r, s)
	assertSameJSON(t, "rules without the probe", rulesOf(t, getUnstructured(t, ns)), rules[1:])
	if st.Probe != nil {
		t.Errorf("observed probe %+v after its removal", st.Probe)
	}
	assertNoWrite(t, r, s, ns, "no probe")

	// Released with a probe in place: the probe rule goes with Sluice's other rules.
	s.Probe = probeTo("checkout-b", "")
	if err := r.Apply(ctx, s); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if err := r.Release(ctx, s); err != nil {
		t.Fatalf("Release: %v", err)
	}
	released := rulesOf(t, getUnstructured(t, ns))
	if len(released) != 2 || released[0]["name"] != nil || mustJSON(t, released[1]) != mustJSON(t, origRules[1]) {
		t.Errorf("rules after the release: %s", mustJSON(t, released))
	}
}

// A probe rule that is not as Apply writes it (here a timeout added by hand) is reported as no
// probe rule, and the next Apply puts the rule back.
func TestObserveProbeRuleEditedByHand(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	r := New(k8s)
	s := generatedSplit(ns)
	s.Probe = probeTo("checkout-b", "")
	if st := applyAndObserve(t, r, s); st.Probe == nil {
		t.Fatalf("no probe observed after Apply")
	}
	rt := getRoute(t, ns)
	rt.Spec.Rules[0].Timeouts = &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("1s"))}
	if err := k8s.Update(ctx, rt, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatalf("hand edit: %v", err)
	}
	st, err := r.Observe(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if st.Probe != nil {
		t.Errorf("observed probe %+v from a rule edited by hand, want none", st.Probe)
	}
	if st = applyAndObserve(t, r, s); st.Probe == nil || *st.Probe != *s.Probe {
		t.Errorf("observed probe %+v after Apply, want %+v", st.Probe, s.Probe)
	}
	assertSameJSON(t, "the probe rule put back", rulesOf(t, getUnstructured(t, ns))[0], jsonMap(t, wantProbeJSON("checkout-b", "")))
}
