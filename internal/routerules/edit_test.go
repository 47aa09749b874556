package routerules

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/policy"
)

// rulesOf reads YAML rules in their generic JSON form.
func rulesOf(t *testing.T, y string) []any {
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
  filters:
  - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-user, value: "1"}]}}
- name: other
  backendRefs: [{name: cart, port: 80}]
  timeouts: {request: 9s}
`

var retryFilter = gwv1.HTTPRouteFilter{Type: gwv1.HTTPRouteFilterExtensionRef, ExtensionRef: &gwv1.LocalObjectReference{Group: "traefik.io", Kind: "Middleware", Name: "pay-retry"}}

func payEdit(s *policy.RuleSettings, clear ...string) Edit {
	return Edit{Policy: "pay", Backends: []string{"shop", "shop-a", "shop-b"}, Settings: s, Clear: clear, OwnedFilters: []string{"pay-ratelimit", "pay-retry"}}
}

func TestEditApply(t *testing.T) {
	fiveSeconds := &policy.RuleSettings{Timeouts: &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("5s"))}, Filters: []gwv1.HTTPRouteFilter{retryFilter}}
	cases := []struct {
		name        string
		edit        Edit
		rules       string
		want        string
		wantCarries bool
	}{
		{
			name: "settings go into the rules that reach a backend only, policy filters first",
			edit: payEdit(fiveSeconds), rules: twoRules, wantCarries: true,
			want: `
- name: shop
  backendRefs: [{name: shop-a, port: 80, weight: 80}, {name: shop-b, port: 80, weight: 20}]
  filters:
  - {type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-retry}}
  - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-user, value: "1"}]}}
  timeouts: {request: 5s}
- name: other
  backendRefs: [{name: cart, port: 80}]
  timeouts: {request: 9s}
`,
		},
		{
			name: "applied again, nothing changes (the old policy filter is replaced, not doubled)",
			edit: payEdit(fiveSeconds), wantCarries: true,
			rules: `
- backendRefs: [{name: shop-a, port: 80}]
  filters: [{type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-retry}}]
  timeouts: {request: 5s}
`,
			want: `
- backendRefs: [{name: shop-a, port: 80}]
  filters: [{type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-retry}}]
  timeouts: {request: 5s}
`,
		},
		{
			name: "a tombstone takes the owned filters out of every rule and the cleared fields out of reaching rules",
			edit: payEdit(nil, FieldTimeouts),
			rules: `
- backendRefs: [{name: shop, port: 80}]
  filters:
  - {type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-ratelimit}}
  - {type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: users-auth}}
  timeouts: {request: 5s}
  retry: {attempts: 2}
- backendRefs: [{name: cart, port: 80}]
  filters: [{type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-retry}}]
  timeouts: {request: 9s}
`,
			want: `
- backendRefs: [{name: shop, port: 80}]
  filters:
  - {type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: users-auth}}
  retry: {attempts: 2}
- backendRefs: [{name: cart, port: 80}]
  timeouts: {request: 9s}
`,
		},
		{
			name: "a field the policy never set is the user's: kept",
			edit: payEdit(&policy.RuleSettings{Retry: &gwv1.HTTPRouteRetry{Attempts: ptr.To(2)}}), wantCarries: true,
			rules: `
- backendRefs: [{name: shop, port: 80}]
  timeouts: {request: 30s}
`,
			want: `
- backendRefs: [{name: shop, port: 80}]
  retry: {attempts: 2}
  timeouts: {request: 30s}
`,
		},
		{
			name: "the data-plane probe's rule never gets settings, nor loses anything",
			edit: payEdit(fiveSeconds, FieldRetry),
			rules: `
- name: sluice-probe
  matches: [{path: {type: Exact, value: /readyz}, headers: [{type: Exact, name: X-Sluice-Probe, value: t0k3n}]}]
  filters: [{type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-retry}}]
  backendRefs: [{name: shop-b, port: 80, weight: 1}]
  retry: {attempts: 2}
`,
			want: `
- name: sluice-probe
  matches: [{path: {type: Exact, value: /readyz}, headers: [{type: Exact, name: X-Sluice-Probe, value: t0k3n}]}]
  filters: [{type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-retry}}]
  backendRefs: [{name: shop-b, port: 80, weight: 1}]
  retry: {attempts: 2}
`,
		},
		{
			name: "a Service of another namespace or kind is not a backend",
			edit: payEdit(fiveSeconds),
			rules: `
- backendRefs: [{name: shop, namespace: elsewhere, port: 80}]
- backendRefs: [{group: example.com, kind: Bucket, name: shop}]
`,
			want: `
- backendRefs: [{name: shop, namespace: elsewhere, port: 80}]
- backendRefs: [{group: example.com, kind: Bucket, name: shop}]
`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, carries, err := tc.edit.Apply("shop", rulesOf(t, tc.rules))
			if err != nil {
				t.Fatal(err)
			}
			if carries != tc.wantCarries {
				t.Errorf("carries = %v, want %v", carries, tc.wantCarries)
			}
			if g, w := toJSON(t, got), toJSON(t, rulesOf(t, tc.want)); g != w {
				t.Errorf("got  %s\nwant %s", g, w)
			}
		})
	}
}

// Compose applies every published Edit, in policy order, and ignores what does not decode.
func TestCompose(t *testing.T) {
	pay, err := payEdit(&policy.RuleSettings{Filters: []gwv1.HTTPRouteFilter{retryFilter}}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	cart, err := Edit{Policy: "cart", Backends: []string{"cart"}, Settings: &policy.RuleSettings{Timeouts: &gwv1.HTTPRouteTimeouts{Request: ptr.To(gwv1.Duration("2s"))}}}.Encode()
	if err != nil {
		t.Fatal(err)
	}
	annotations := map[string]string{
		AnnotationKey("pay"):         pay,
		AnnotationKey("cart"):        cart,
		AnnotationKey("broken"):      `{"policy":`,
		AnnotationKey("impostor"):    cart, // names policy cart under another key
		"team.example.com/something": "else",
	}
	got, err := Compose("shop", annotations, rulesOf(t, twoRules))
	if err != nil {
		t.Fatal(err)
	}
	want := rulesOf(t, `
- name: shop
  backendRefs: [{name: shop-a, port: 80, weight: 80}, {name: shop-b, port: 80, weight: 20}]
  filters:
  - {type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: pay-retry}}
  - {type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-user, value: "1"}]}}
- name: other
  backendRefs: [{name: cart, port: 80}]
  timeouts: {request: 2s}
`)
	if g, w := toJSON(t, got), toJSON(t, want); g != w {
		t.Errorf("got  %s\nwant %s", g, w)
	}
	if got := Published(annotations); len(got) != 2 || got[0].Policy != "cart" || got[1].Policy != "pay" {
		t.Errorf("Published = %+v, want cart then pay", got)
	}
	tomb, _ := payEdit(nil, FieldRetry).Encode()
	if got := Tombstones(map[string]string{AnnotationKey("pay"): tomb, AnnotationKey("cart"): cart}); len(got) != 1 || got[0] != AnnotationKey("pay") {
		t.Errorf("Tombstones = %v", got)
	}
}

func TestAnnotationKey(t *testing.T) {
	if got := AnnotationKey("pay"); got != "rules.mesh.sluice.dev/pay" {
		t.Errorf("AnnotationKey = %q", got)
	}
	long := strings.Repeat("p", 200)
	got := AnnotationKey(long)
	if name := strings.TrimPrefix(got, AnnotationPrefix); len(name) > 63 || name == long[:63] {
		t.Errorf("AnnotationKey of a long name = %q: the name part must fit 63 characters and keep a hash", got)
	}
}
