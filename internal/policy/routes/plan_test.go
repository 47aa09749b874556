package routes

import (
	"encoding/json"
	"testing"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// rules decodes YAML rules into the typed and raw forms Plan takes.
func rules(t *testing.T, y string) ([]gwv1.HTTPRouteRule, []any) {
	t.Helper()
	var typed []gwv1.HTTPRouteRule
	if err := yaml.Unmarshal([]byte(y), &typed); err != nil {
		t.Fatal(err)
	}
	var raw []any
	if err := yaml.Unmarshal([]byte(y), &raw); err != nil {
		t.Fatal(err)
	}
	return typed, raw
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const twoRules = `
- name: shop
  backendRefs: [{name: shop-a, port: 80, weight: 80}, {name: shop-b, port: 80, weight: 20}]
  filters:
  - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-user, value: "1"}]}}
- name: other
  backendRefs: [{name: cart, port: 80}]
  timeouts: {request: 9s}
`

func edit(s *policy.RuleSettings) Edit {
	return Edit{
		Policy:      "pay",
		Namespace:   "shop",
		Backends:    map[string]bool{"shop": true, "shop-a": true, "shop-b": true},
		Settings:    s,
		OwnedFilter: func(name string) bool { return name == "pay-retry" || name == "pay-ratelimit" },
	}
}

func TestPlanWritesOnlyRulesThatReachTheTargets(t *testing.T) {
	typed, raw := rules(t, twoRules)
	s := &policy.RuleSettings{
		Timeouts: &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))},
		Filters:  []gwv1.HTTPRouteFilter{{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{Group: "traefik.io", Kind: "Middleware", Name: "pay-retry"}}},
	}
	got, carries, err := Plan(edit(s), typed, raw, false)
	if err != nil || !carries {
		t.Fatalf("Plan: %v, carries %v", err, carries)
	}
	_, want := rules(t, `
- name: shop
  backendRefs: [{name: shop-a, port: 80, weight: 80}, {name: shop-b, port: 80, weight: 20}]
  filters:
  - {type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-retry}}
  - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-user, value: "1"}]}}
  timeouts: {request: 5s}
- name: other
  backendRefs: [{name: cart, port: 80}]
  timeouts: {request: 9s}
`)
	if toJSON(t, got) != toJSON(t, want) {
		t.Errorf("got  %s\nwant %s", toJSON(t, got), toJSON(t, want))
	}

	// Applying again changes nothing; taking the settings out restores the route as it was.
	typed2, raw2 := rules(t, mustYAML(t, got))
	again, _, err := Plan(edit(s), typed2, raw2, true)
	if err != nil || toJSON(t, again) != toJSON(t, got) {
		t.Errorf("second Plan is not a no-op: %v\n%s", err, toJSON(t, again))
	}
	removed, carries, err := Plan(edit(nil), typed2, raw2, true)
	if err != nil || carries {
		t.Fatalf("Plan removal: %v, carries %v", err, carries)
	}
	if toJSON(t, removed) != toJSON(t, raw) {
		t.Errorf("after removal\n got  %s\n want %s", toJSON(t, removed), toJSON(t, raw))
	}
}

func TestPlanLeavesUnmarkedTimeoutsAlone(t *testing.T) {
	typed, raw := rules(t, `
- backendRefs: [{name: shop, port: 80}]
  timeouts: {request: 30s}
`)
	// Not marked: the timeout is the user's, and a policy without timeouts keeps it.
	got, _, err := Plan(edit(&policy.RuleSettings{Retry: &gwv1.HTTPRouteRetry{Attempts: ptr.To(2)}}), typed, raw, false)
	if err != nil {
		t.Fatal(err)
	}
	if s := toJSON(t, got); s != `[{"backendRefs":[{"name":"shop","port":80}],"retry":{"attempts":2},"timeouts":{"request":"30s"}}]` {
		t.Errorf("got %s", s)
	}
}

func TestBackendsFollowRollouts(t *testing.T) {
	ro := meshv1alpha1.Rollout{}
	ro.Name = "shop"
	ro.Spec.Service.Name = "shop"
	ro.Spec.Strategy.BlueGreen = &meshv1alpha1.BlueGreenStrategy{PreviewService: "shop-preview"}
	other := meshv1alpha1.Rollout{}
	other.Name = "cart"
	other.Spec.Service.Name = "cart"
	b := Backends([]string{"shop"}, []meshv1alpha1.Rollout{ro, other})
	for _, want := range []string{"shop", "shop-a", "shop-b", "shop-preview"} {
		if !b[want] {
			t.Errorf("Backends lacks %s: %v", want, b)
		}
	}
	if b["cart-a"] {
		t.Errorf("Backends has another Rollout's slot: %v", b)
	}
}

func TestMark(t *testing.T) {
	if got := Mark([]string{"b"}, "a", true); got != "a,b" {
		t.Errorf("Mark add = %q", got)
	}
	if got := Mark([]string{"a"}, "a", false); got != "" {
		t.Errorf("Mark remove = %q", got)
	}
	if got := Marked(map[string]string{meshv1alpha1.MeshPolicyRouteAnnotation: "a,b"}); len(got) != 2 {
		t.Errorf("Marked = %v", got)
	}
}

func mustYAML(t *testing.T, v any) string {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
