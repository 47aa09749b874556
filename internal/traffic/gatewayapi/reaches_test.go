package gatewayapi

import (
	"errors"
	"testing"

	"github.com/sluice-mesh/sluice/internal/traffic"
)

func TestReaches(t *testing.T) {
	generated := func(s *traffic.Split) { g := generatedSplit("shop"); s.Existing, s.Generated = "", g.Generated }
	cases := []struct {
		name   string
		adjust func(*traffic.Split)
		rules  string
		want   map[string]bool
	}{
		{
			name: "existing: weights above 0 in driven rules, the default weight counting as 1",
			rules: `
  - backendRefs:
    - {name: checkout-a, port: 80, weight: 100}
    - {name: checkout-b, port: 80, weight: 0}
    - {name: legacy, port: 80}
  - backendRefs: [{name: static, port: 80}]
`,
			want: map[string]bool{"checkout-a": true, "legacy": true},
		},
		{
			name: "existing: the backend of a Sluice A/B rule and the target of Sluice's mirror",
			rules: `
  - name: sluice-match-0
    matches: [{headers: [{name: x-canary, value: always}]}]
    backendRefs: [{name: checkout-b, port: 80, weight: 0}]
  - filters:
    - {type: RequestMirror, requestMirror: {backendRef: {name: checkout-b, port: 80}, percent: 5}}
    backendRefs:
    - {name: checkout-a, port: 80, weight: 100}
    - {name: checkout-b, port: 80, weight: 0}
`,
			want: map[string]bool{"checkout-a": true, "checkout-b": true},
		},
		{
			name: "existing: the probe rule's backend, whatever the weights",
			rules: `
  - ` + wantProbeJSON("checkout-b", "") + `
  - backendRefs:
    - {name: checkout-a, port: 80, weight: 100}
    - {name: checkout-b, port: 80, weight: 0}
`,
			want: map[string]bool{"checkout-a": true, "checkout-b": true},
		},
		{
			name:   "generated: the probe rule's backend",
			adjust: generated,
			rules: `
  - ` + wantProbeJSON("checkout-b", "") + `
  - name: sluice-split
    backendRefs:
    - {name: checkout-a, port: 80, weight: 100}
    - {name: checkout-b, port: 80, weight: 0}
`,
			want: map[string]bool{"checkout-a": true, "checkout-b": true},
		},
		{
			name: "existing: a rule Sluice does not drive does not count",
			rules: `
  - backendRefs: [{name: checkout, port: 80}]
  - backendRefs: [{name: checkout-b, namespace: elsewhere, port: 80}]
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: checkout-b, port: 80}}}]
    backendRefs: [{name: static, port: 80}]
`,
			want: map[string]bool{"checkout": true},
		},
		{
			name:   "generated: every rule is Sluice's",
			adjust: generated,
			rules: `
  - name: sluice-match-0
    backendRefs: [{name: checkout-b, port: 80, weight: 1}]
  - name: sluice-split
    backendRefs:
    - {name: checkout-a, port: 80, weight: 0}
    - {name: checkout-b, port: 80, weight: 100}
`,
			want: map[string]bool{"checkout-b": true},
		},
		{
			name:   "generated: drained canary",
			adjust: generated,
			rules: `
  - name: sluice-split
    backendRefs:
    - {name: checkout-a, port: 80, weight: 100}
    - {name: checkout-b, port: 80, weight: 0}
`,
			want: map[string]bool{"checkout-a": true},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := existingSplit("shop")
			if tc.adjust != nil {
				tc.adjust(&s)
			}
			assertSameJSON(t, "Reaches", reaches(s, routeOf(t, tc.rules)), tc.want)
		})
	}
}

func TestValidateRelease(t *testing.T) {
	cases := []struct {
		name   string
		adjust func(*traffic.Split)
		want   string // part of the error; "" for valid
	}{
		{name: "valid existing, weights ignored", adjust: func(s *traffic.Split) { s.Stable.Weight, s.Canary.Weight = 0, 0 }},
		{name: "valid generated", adjust: func(s *traffic.Split) {
			g := generatedSplit("shop")
			s.Existing, s.Generated, s.OwnerName, s.OwnerUID = "", g.Generated, g.OwnerName, g.OwnerUID
		}},
		{name: "generated without owner", adjust: func(s *traffic.Split) { s.Existing, s.Generated = "", generatedSplit("shop").Generated }, want: "owner's name and uid"},
		{name: "no slot names", adjust: func(s *traffic.Split) { s.Stable.Service = "" }, want: "slot Services"},
		{name: "no route", adjust: func(s *traffic.Split) { s.Existing = "" }, want: "exactly one"},
		{name: "no port", adjust: func(s *traffic.Split) { s.Port = 0 }, want: "port 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := existingSplit("shop")
			if tc.adjust != nil {
				tc.adjust(&s)
			}
			err := validateRelease(s)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("validateRelease = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidSplit) {
				t.Fatalf("validateRelease = %v, want ErrInvalidSplit", err)
			}
			assertContains(t, "error", err.Error(), tc.want)
		})
	}
}
