package istio

import (
	"context"
	"testing"

	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestApplyToAPIServer applies every case's objects to a real API server with Istio's CRDs:
// each must pass the schema (CEL included) without a warning or a pruned field. The policy
// itself goes in too, so the cases stay valid MeshPolicies.
func TestApplyToAPIServer(t *testing.T) {
	p := New()
	for _, named := range cases(goldenNamespace) {
		t.Run(named.name, func(t *testing.T) {
			ns := "istio-" + named.name
			tc := caseNamed(t, ns, named.name)
			policytest.Namespace(t, env.Client, ns)
			if err := env.Client.Create(context.Background(), tc.in.Policy.DeepCopy()); err != nil {
				t.Fatalf("the case's MeshPolicy is not valid: %v", err)
			}
			out, err := p.Translate(tc.in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			if len(out.Objects) == 0 {
				t.Fatal("no objects to apply")
			}
			policytest.Apply(t, env.Config, out.Objects)
		})
	}
}

// caseNamed is the case of that name with its policy and Services in namespace ns.
func caseNamed(t *testing.T, ns, name string) tcase {
	t.Helper()
	for _, tc := range cases(ns) {
		if tc.name == name {
			return tc
		}
	}
	t.Fatalf("no case %s", name)
	return tcase{}
}
