package linkerd

import (
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestTranslate compares every case's translation with its golden file (go test -update
// rewrites them; review the diff against Linkerd's documented semantics).
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

// TestTranslateNameClash: a Service named like the routes' prefix, with an unnamed port
// numbered like a route, would give two AuthorizationPolicies one name: an error, not a
// silent overwrite.
func TestTranslateNameClash(t *testing.T) {
	c := cases()[1] // all-supported: routes payments-paths-1 and -2
	in := c.input("shop")
	svc := policytest.Service("shop", "paths", 1)
	svc.Spec.Ports[0].Name = ""
	in.Services = []corev1.Service{svc}
	if _, err := New().Translate(in); err == nil {
		t.Error("want an error for two AuthorizationPolicies named payments-paths-1")
	}
}
