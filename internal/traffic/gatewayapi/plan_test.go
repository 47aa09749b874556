package gatewayapi

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// routeOf builds a route as routerules.Get would from a rules list in YAML (no CRD defaults
// applied, so the planner is also checked against sparse user input).
func routeOf(t *testing.T, rulesYAML string) *routerules.Route {
	t.Helper()
	u := &unstructured.Unstructured{}
	manifest := "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: checkout, namespace: shop}\nspec:\n  rules:\n" + rulesYAML
	if err := yamlInto(manifest, u); err != nil {
		t.Fatalf("route: %v", err)
	}
	rt, err := routerules.FromUnstructured(u)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// Pieces of expectations, in JSON.
const (
	refA80  = `{"group":"","kind":"Service","name":"checkout-a","port":80,"weight":80}`
	refB20  = `{"group":"","kind":"Service","name":"checkout-b","port":80,"weight":20}`
	refB1   = `{"group":"","kind":"Service","name":"checkout-b","port":80,"weight":1}`
	mirror7 = `{"type":"RequestMirror","requestMirror":{"backendRef":{"group":"","kind":"Service","name":"checkout-b","port":80},"percent":7}}`
)

// wantProbeJSON is the probe rule to service on /readyz with token "t0k3n" and split version
// split, written out as the API server stores it.
func wantProbeJSON(service, split string) string {
	set := `{"name":"X-Sluice-Probe-Rule","value":"t0k3n"}`
	if split != "" {
		set += `,{"name":"X-Sluice-Split","value":"` + split + `"}`
	}
	return `{"name":"sluice-probe",` +
		`"matches":[{"path":{"type":"Exact","value":"/readyz"},"headers":[{"type":"Exact","name":"X-Sluice-Probe","value":"t0k3n"}]}],` +
		`"filters":[{"type":"ResponseHeaderModifier","responseHeaderModifier":{"set":[` + set + `]}}],` +
		`"backendRefs":[{"group":"","kind":"Service","name":"` + service + `","port":80,"weight":1}]}`
}

// probeTo is the split's probe of service on /readyz with token "t0k3n".
func probeTo(service, split string) *traffic.ProbeRule {
	return &traffic.ProbeRule{Service: service, Path: "/readyz", Token: "t0k3n", Split: split}
}

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
			name: "the probe rule goes before the A/B rules, before the first driven rule",
			rules: `
  - matches: [{path: {type: PathPrefix, value: /static}}]
    backendRefs: [{name: static, port: 80}]
  - backendRefs: [{name: checkout, port: 80}]
`,
			adjust: func(s *traffic.Split) { s.Matches, s.Probe = header, probeTo("checkout-b", "5ca1ab1e0000") },
			want: `[
 {"matches":[{"path":{"type":"PathPrefix","value":"/static"}}],"backendRefs":[{"name":"static","port":80}]},
 ` + wantProbeJSON("checkout-b", "5ca1ab1e0000") + `,
 {"name":"sluice-match-0",
  "matches":[{"path":{"type":"PathPrefix","value":"/"},"headers":[{"type":"Exact","name":"x-canary","value":"1"}]}],
  "backendRefs":[` + refB1 + `]},
 {"backendRefs":[` + refA80 + `,` + refB20 + `]}]`,
		},
		{
			name: "an old probe rule is replaced, wherever it was: moved to the other slot",
			rules: `
  - backendRefs: [{name: checkout-a, port: 80, weight: 80}, {name: checkout-b, port: 80, weight: 20}]
  - ` + wantProbeJSON("checkout-b", "") + `
`,
			adjust: func(s *traffic.Split) { s.Probe = probeTo("checkout-a", "") },
			want:   `[` + wantProbeJSON("checkout-a", "") + `,{"backendRefs":[` + refA80 + `,` + refB20 + `]}]`,
		},
		{
			name: "a probe rule is not a driven rule (its slot is not weighted in), and goes without a probe",
			rules: `
  - name: sluice-probe
    matches: [{path: {type: Exact, value: /readyz}, headers: [{name: X-Sluice-Probe, value: t0k3n}]}]
    backendRefs: [{name: checkout-b, port: 80}]
    timeouts: {request: 5s}
  - backendRefs: [{name: checkout, port: 80}]
`,
			want: `[{"backendRefs":[` + refA80 + `,` + refB20 + `]}]`,
		},
		{
			name: "a route whose only rule to a slot is the probe rule has no driven rule",
			rules: `
  - ` + wantProbeJSON("checkout-b", "") + `
  - backendRefs: [{name: static, port: 80}]
`,
			adjust:  func(s *traffic.Split) { s.Probe = probeTo("checkout-b", "") },
			wantErr: ErrNoDrivenRule,
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
		{name: "valid probe", adjust: func(s *traffic.Split) { s.Probe = probeTo("checkout-b", "") }},
		{name: "probe without a Service", adjust: func(s *traffic.Split) { s.Probe = probeTo("", "") }, want: "probe.service is empty"},
		{name: "probe path not absolute", adjust: func(s *traffic.Split) { s.Probe = probeTo("checkout-b", ""); s.Probe.Path = "readyz" }, want: `probe.path "readyz"`},
		{name: "probe without a token", adjust: func(s *traffic.Split) { s.Probe = probeTo("checkout-b", ""); s.Probe.Token = "" }, want: "probe.token is empty"},
		{name: "generated without owner", adjust: func(s *traffic.Split) {
			g := generatedSplit("shop")
			s.Existing, s.Generated = "", g.Generated
		}, want: "owner is incomplete"},
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
