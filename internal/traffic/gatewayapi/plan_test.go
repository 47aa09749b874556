package gatewayapi

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// routeOf builds a route as getRoute would from a rules list in YAML (no CRD defaults applied,
// so the planner is also checked against sparse user input).
func routeOf(t *testing.T, rulesYAML string) *route {
	t.Helper()
	u := &unstructured.Unstructured{}
	manifest := "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: checkout, namespace: shop}\nspec:\n  rules:\n" + rulesYAML
	if err := yamlInto(manifest, u); err != nil {
		t.Fatalf("route: %v", err)
	}
	rt := &route{obj: u}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &rt.typed); err != nil {
		t.Fatal(err)
	}
	rules, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
	if err != nil {
		t.Fatal(err)
	}
	rt.rawRules = rules
	return rt
}

// Pieces of expectations, in JSON.
const (
	refA80  = `{"group":"","kind":"Service","name":"checkout-a","port":80,"weight":80}`
	refB20  = `{"group":"","kind":"Service","name":"checkout-b","port":80,"weight":20}`
	refB1   = `{"group":"","kind":"Service","name":"checkout-b","port":80,"weight":1}`
	mirror7 = `{"type":"RequestMirror","requestMirror":{"backendRef":{"group":"","kind":"Service","name":"checkout-b","port":80},"percent":7}}`
)

func TestPlanExisting(t *testing.T) {
	header := []meshv1alpha1.RouteMatch{{Headers: []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "1"}}}}
	cases := []struct {
		name    string
		rules   string
		adjust  func(*traffic.Split)
		want    string // JSON of the planned rules
		wantErr error
	}{
		{
			name: "driven refs collapse into one pair where the first was; others stay",
			rules: `
  - backendRefs:
    - {name: other, port: 80, weight: 5}
    - {name: checkout, port: 80}
    - {name: checkout-b, port: 80, weight: 3}
`,
			want: `[{"backendRefs":[{"name":"other","port":80,"weight":5},` + refA80 + `,` + refB20 + `]}]`,
		},
		{
			name: "per-backend filters of the replaced ref carry over, also to the A/B rule",
			rules: `
  - backendRefs:
    - name: checkout
      port: 80
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {add: [{name: x-from, value: checkout}]}}]
`,
			adjust: func(s *traffic.Split) { s.Matches = header },
			want: `[
 {"name":"sluice-match-0",
  "matches":[{"path":{"type":"PathPrefix","value":"/"},"headers":[{"type":"Exact","name":"x-canary","value":"1"}]}],
  "backendRefs":[{"group":"","kind":"Service","name":"checkout-b","port":80,"weight":1,"filters":[{"type":"ResponseHeaderModifier","responseHeaderModifier":{"add":[{"name":"x-from","value":"checkout"}]}}]}]},
 {"backendRefs":[
  {"group":"","kind":"Service","name":"checkout-a","port":80,"weight":80,"filters":[{"type":"ResponseHeaderModifier","responseHeaderModifier":{"add":[{"name":"x-from","value":"checkout"}]}}]},
  {"group":"","kind":"Service","name":"checkout-b","port":80,"weight":20,"filters":[{"type":"ResponseHeaderModifier","responseHeaderModifier":{"add":[{"name":"x-from","value":"checkout"}]}}]}]}]`,
		},
		{
			name: "Sluice's old A/B rules go when the split has no matches",
			rules: `
  - name: sluice-match-0
    matches: [{headers: [{name: x-canary, value: "1"}]}]
    backendRefs: [{name: checkout-b, port: 80}]
  - backendRefs: [{name: checkout-a, port: 80, weight: 80}, {name: checkout-b, port: 80, weight: 20}]
`,
			want: `[{"backendRefs":[` + refA80 + `,` + refB20 + `]}]`,
		},
		{
			name: "a mirror to either slot is Sluice's: replaced, a user's mirror elsewhere stays",
			rules: `
  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: audit, port: 80}}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: checkout-a, port: 80}, percent: 30}}
    backendRefs: [{name: checkout, port: 80}]
`,
			adjust: func(s *traffic.Split) { s.MirrorPercent = 7 },
			want: `[{"filters":[{"type":"RequestMirror","requestMirror":{"backendRef":{"name":"audit","port":80}}},` + mirror7 + `],
				"backendRefs":[` + refA80 + `,` + refB20 + `]}]`,
		},
		{
			name: "mirror 0 removes Sluice's mirror and an emptied filters list",
			rules: `
  - filters: [` + mirror7 + `]
    backendRefs: [{name: checkout, port: 80}]
`,
			want: `[{"backendRefs":[` + refA80 + `,` + refB20 + `]}]`,
		},
		{
			name: "A/B rules go before the first driven rule, once per distinct path, with its filters",
			rules: `
  - matches: [{path: {type: PathPrefix, value: /static}}]
    backendRefs: [{name: static, port: 80}]
  - matches:
    - {path: {type: PathPrefix, value: /api}}
    - {path: {type: Exact, value: /v2}}
    - {path: {type: PathPrefix, value: /api}, method: POST}
    filters: [{type: URLRewrite, urlRewrite: {hostname: internal}}]
    backendRefs: [{name: checkout, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /b}}]
    backendRefs: [{name: checkout, port: 80}]
`,
			adjust: func(s *traffic.Split) { s.Matches = header },
			want: `[
 {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"static","port":80}]},
 {"name":"sluice-match-0",
  "matches":[
   {"path":{"type":"PathPrefix","value":"/api"},"headers":[{"type":"Exact","name":"x-canary","value":"1"}]},
   {"path":{"type":"Exact","value":"/v2"},"headers":[{"type":"Exact","name":"x-canary","value":"1"}]}],
  "filters":[{"type":"URLRewrite","urlRewrite":{"hostname":"internal"}}],
  "backendRefs":[` + refB1 + `]},
 {"matches":[{"path":{"type":"PathPrefix","value":"/api"}},{"path":{"type":"Exact","value":"/v2"}},{"path":{"type":"PathPrefix","value":"/api"},"method":"POST"}],
  "filters":[{"type":"URLRewrite","urlRewrite":{"hostname":"internal"}}],
  "backendRefs":[` + refA80 + `,` + refB20 + `]},
 {"matches":[{"path":{"type":"PathPrefix","value":"/b"}}],"backendRefs":[` + refA80 + `,` + refB20 + `]}]`,
		},
		{
			name: "refs to another namespace or another kind are not driven",
			rules: `
  - backendRefs: [{name: checkout, namespace: other, port: 80}]
  - backendRefs: [{group: example.com, kind: Backend, name: checkout}]
`,
			wantErr: ErrNoDrivenRule,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := existingSplit("shop")
			if tc.adjust != nil {
				tc.adjust(&s)
			}
			got, err := planExisting(s, routeOf(t, tc.rules))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("planExisting: %v", err)
			}
			assertSameJSON(t, "rules", got, jsonMap(t, tc.want))
		})
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		adjust func(*traffic.Split)
		want   string // part of the error; "" for valid
	}{
		{name: "valid existing"},
		{name: "weights must sum to 100", adjust: func(s *traffic.Split) { s.Canary.Weight = 30 }, want: "sum to 100"},
		{name: "same Service twice", adjust: func(s *traffic.Split) { s.Canary.Service = "checkout-a" }, want: "same Service"},
		{name: "no route", adjust: func(s *traffic.Split) { s.Existing = "" }, want: "neither"},
		{name: "mirror over 100", adjust: func(s *traffic.Split) { s.MirrorPercent = 101 }, want: "mirror percent"},
		{name: "no port", adjust: func(s *traffic.Split) { s.Port = 0 }, want: "port 0"},
		{name: "generated without owner", adjust: func(s *traffic.Split) {
			g := generatedSplit("shop")
			s.Existing, s.Generated = "", g.Generated
		}, want: "owner reference"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := existingSplit("shop")
			if tc.adjust != nil {
				tc.adjust(&s)
			}
			err := validate(s)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidSplit) {
				t.Fatalf("validate = %v, want ErrInvalidSplit", err)
			}
			assertContains(t, "error", err.Error(), tc.want)
		})
	}
}
