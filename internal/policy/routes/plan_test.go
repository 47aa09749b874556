package routes

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// rules reads YAML rules in their generic JSON form.
func rules(t *testing.T, y string) []any {
	t.Helper()
	var raw []any
	if err := yaml.Unmarshal([]byte(y), &raw); err != nil {
		t.Fatal(err)
	}
	return raw
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
- name: other
  backendRefs: [{name: cart, port: 80}]
  timeouts: {request: 9s}
`

var (
	retryFilter = gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{Group: "traefik.io", Kind: "Middleware", Name: "pay-retry"}}
	fiveSeconds = &policy.RuleSettings{Timeouts: &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))}}
)

func edit(s *policy.RuleSettings) Edit {
	return Edit{Policy: "pay", Namespace: "shop", Backends: map[string]bool{"shop": true, "shop-a": true, "shop-b": true}, Settings: s, Owned: []string{"pay-retry"}}
}

// published is the annotation value of an Edit.
func published(t *testing.T, e routerules.Edit) string {
	t.Helper()
	v, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestPlan(t *testing.T) {
	key := routerules.AnnotationKey("pay")
	backends := []string{"shop", "shop-a", "shop-b"}
	withTimeouts := `
- name: shop
  backendRefs: [{name: shop-a, port: 80, weight: 80}, {name: shop-b, port: 80, weight: 20}]
  timeouts: {request: 5s}
- name: other
  backendRefs: [{name: cart, port: 80}]
  timeouts: {request: 9s}
`
	cases := []struct {
		name        string
		edit        Edit
		annotations map[string]string
		rules       string
		driven      bool
		wantCarries bool
		wantRules   string // "" when spec.rules is left alone
		wantAnn     map[string]any
	}{
		{
			name: "a route a Rollout drives: the policy only publishes", edit: edit(fiveSeconds), rules: twoRules, driven: true, wantCarries: true,
			wantAnn: map[string]any{
				key:                                    published(t, routerules.Edit{Policy: "pay", Backends: backends, Settings: fiveSeconds, OwnedFilters: []string{"pay-retry"}}),
				meshv1alpha1.MeshPolicyRouteAnnotation: "pay",
			},
		},
		{
			name: "a route no Rollout drives: the policy writes the rules and publishes", edit: edit(fiveSeconds), rules: twoRules, wantCarries: true,
			wantRules: withTimeouts,
			wantAnn: map[string]any{
				key:                                    published(t, routerules.Edit{Policy: "pay", Backends: backends, Settings: fiveSeconds, OwnedFilters: []string{"pay-retry"}}),
				meshv1alpha1.MeshPolicyRouteAnnotation: "pay",
			},
		},
		{
			name: "settings gone on a driven route: a tombstone clears what the policy set",
			edit: edit(nil), rules: withTimeouts, driven: true,
			annotations: map[string]string{
				key:                                    published(t, routerules.Edit{Policy: "pay", Backends: backends, Settings: fiveSeconds}),
				meshv1alpha1.MeshPolicyRouteAnnotation: "pay",
			},
			wantAnn: map[string]any{
				key:                                    published(t, routerules.Edit{Policy: "pay", Backends: backends, Clear: []string{"timeouts"}, OwnedFilters: []string{"pay-retry"}}),
				meshv1alpha1.MeshPolicyRouteAnnotation: nil,
			},
		},
		{
			name: "settings gone on a route no Rollout drives: taken out, and nothing is left published",
			edit: edit(nil), rules: withTimeouts,
			annotations: map[string]string{
				key:                                    published(t, routerules.Edit{Policy: "pay", Backends: backends, Settings: fiveSeconds}),
				meshv1alpha1.MeshPolicyRouteAnnotation: "pay",
			},
			wantRules: twoRules,
			wantAnn:   map[string]any{key: nil, meshv1alpha1.MeshPolicyRouteAnnotation: nil},
		},
		{
			name: "a route marked before Edits were published: both fields are the policy's",
			edit: edit(&policy.RuleSettings{Filters: []gwv1.HTTPRouteFilter{retryFilter}}), rules: withTimeouts, wantCarries: true,
			annotations: map[string]string{meshv1alpha1.MeshPolicyRouteAnnotation: "pay"},
			wantRules: `
- name: shop
  backendRefs: [{name: shop-a, port: 80, weight: 80}, {name: shop-b, port: 80, weight: 20}]
  filters: [{type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-retry}}]
- name: other
  backendRefs: [{name: cart, port: 80}]
  timeouts: {request: 9s}
`,
			wantAnn: map[string]any{
				key: published(t, routerules.Edit{Policy: "pay", Backends: backends, Settings: &policy.RuleSettings{Filters: []gwv1.HTTPRouteFilter{retryFilter}}, Clear: []string{"retry", "timeouts"}, OwnedFilters: []string{"pay-retry"}}),
			},
		},
		{
			name: "another policy's tombstone is composed and dropped by whoever writes the rules",
			edit: edit(fiveSeconds), rules: twoRules, wantCarries: true,
			annotations: map[string]string{
				routerules.AnnotationKey("cart"): published(t, routerules.Edit{Policy: "cart", Backends: []string{"cart"}, Clear: []string{"timeouts"}}),
			},
			wantRules: `
- name: shop
  backendRefs: [{name: shop-a, port: 80, weight: 80}, {name: shop-b, port: 80, weight: 20}]
  timeouts: {request: 5s}
- name: other
  backendRefs: [{name: cart, port: 80}]
`,
			wantAnn: map[string]any{
				key:                                    published(t, routerules.Edit{Policy: "pay", Backends: backends, Settings: fiveSeconds, OwnedFilters: []string{"pay-retry"}}),
				meshv1alpha1.MeshPolicyRouteAnnotation: "pay",
				routerules.AnnotationKey("cart"):       nil,
			},
		},
		{
			name: "a route that reaches no target and never carried the policy: nothing",
			edit: edit(fiveSeconds), rules: "[{backendRefs: [{name: cart, port: 80}]}]",
			wantAnn: map[string]any{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			raw := rules(t, tc.rules)
			p, err := plan(tc.edit, tc.annotations, raw, tc.driven)
			if err != nil {
				t.Fatal(err)
			}
			if p.carries != tc.wantCarries {
				t.Errorf("carries = %v, want %v", p.carries, tc.wantCarries)
			}
			switch {
			case tc.wantRules == "" && p.rules != nil:
				t.Errorf("rules written: %s", toJSON(t, p.rules))
			case tc.wantRules != "" && toJSON(t, p.rules) != toJSON(t, rules(t, tc.wantRules)):
				t.Errorf("rules\n got  %s\n want %s", toJSON(t, p.rules), toJSON(t, rules(t, tc.wantRules)))
			}
			if g, w := toJSON(t, p.annotations), toJSON(t, tc.wantAnn); g != w {
				t.Errorf("annotations\n got  %s\n want %s", g, w)
			}
			// Planned again on the result, nothing is left to do.
			ann := map[string]string{}
			for k, v := range tc.annotations {
				ann[k] = v
			}
			for k, v := range p.annotations {
				if s, ok := v.(string); ok {
					ann[k] = s
				} else {
					delete(ann, k)
				}
			}
			if p.rules != nil {
				raw = p.rules
			}
			if again, err := plan(tc.edit, ann, raw, tc.driven); err != nil || again.changed() {
				t.Errorf("second plan is not a no-op: %v %+v", err, again)
			}
		})
	}
}

func TestDriven(t *testing.T) {
	existing := meshv1alpha1.Rollout{}
	existing.Name, existing.UID = "shop", "uid-shop"
	existing.Spec.TrafficRouting.GatewayAPI.HTTPRouteRef = &meshv1alpha1.LocalObjectReference{Name: "storefront"}
	generated := meshv1alpha1.Rollout{}
	generated.Name, generated.UID = "cart", "uid-cart"
	deleting := meshv1alpha1.Rollout{}
	deleting.Name, deleting.UID = "pay", "uid-pay"
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	deleting.Spec.TrafficRouting.GatewayAPI.HTTPRouteRef = &meshv1alpha1.LocalObjectReference{Name: "payments"}
	route := func(name string, labels map[string]string, owners ...metav1.OwnerReference) gwv1.HTTPRoute {
		rt := gwv1.HTTPRoute{}
		rt.Name, rt.Labels, rt.OwnerReferences = name, labels, owners
		return rt
	}
	got := Driven([]meshv1alpha1.Rollout{existing, generated, deleting}, []gwv1.HTTPRoute{
		route("storefront", nil),
		route("cart", map[string]string{traffic.LabelRolloutUID: "uid-cart"}),
		route("legacy", nil, metav1.OwnerReference{APIVersion: "mesh.sluice.dev/v1alpha1", Kind: "Rollout", Name: "cart", UID: "uid-cart", Controller: ptr.To(true)}),
		route("released", map[string]string{traffic.LabelRollout: "cart"}),
		route("orphan", map[string]string{traffic.LabelRolloutUID: "uid-gone"}),
		route("payments", nil),
	})
	want := map[string]bool{"storefront": true, "cart": true, "legacy": true}
	if toJSON(t, got) != toJSON(t, want) {
		t.Errorf("Driven = %v, want %v", got, want)
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
