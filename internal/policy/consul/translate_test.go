package consul

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestTranslate compares every case's translation with its golden file (go test -update
// rewrites them; review the diff against Consul's documented semantics).
func TestTranslate(t *testing.T) {
	p := New()
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) {
			in := c.input("shop")
			out, err := p.Translate(in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			policytest.Golden(t, c.name, p, &in.Policy.Spec, out)
		})
	}
}

// TestTranslateDeterministic: the same input gives the same output, in the same order.
func TestTranslateDeterministic(t *testing.T) {
	var inputs []func() policy.Input
	for _, c := range cases() {
		inputs = append(inputs, func() policy.Input { return c.input("shop") })
	}
	policytest.Deterministic(t, New(), inputs...)
}

func TestTranslateWithoutPolicy(t *testing.T) {
	if _, err := New().Translate(policy.Input{}); err == nil {
		t.Error("Translate without a policy: want an error")
	}
}
