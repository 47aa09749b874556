package traefik

import (
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestNoWeakerTranslation pins why Traefik has no weakening case: it expresses no security
// field at all. Every mode but Disabled (Traefik has no mutual TLS between workloads) and
// every authorization field is unsupported, so the policy is not Ready, and the Middlewares
// written for the rest of the policy include none standing in for them (no IP allow-list,
// no authentication).
func TestNoWeakerTranslation(t *testing.T) {
	monitoring := []meshv1alpha1.AuthorizationSource{{Namespace: "monitoring"}}
	tests := []struct {
		name string
		spec meshv1alpha1.MeshPolicySpec
		// unsupported is the field reported, with words in its reason; "" for Ready.
		unsupported string
		words       []string
	}{
		{
			name:        "strict mTLS",
			spec:        meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict}},
			unsupported: "mtls.mode", words: []string{"Strict", "only Disabled"},
		},
		{
			name:        "permissive mTLS",
			spec:        meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive}},
			unsupported: "mtls.mode", words: []string{"Permissive", "only Disabled"},
		},
		{
			name:        "deny all",
			spec:        meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{}},
			unsupported: "authorization.rules", words: []string{"workload identities"},
		},
		{
			name:        "namespace source",
			spec:        meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{From: monitoring}}}},
			unsupported: "authorization.rules.from.namespace", words: []string{"namespaces"},
		},
		{
			name: "methods and paths",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/api/*"}}}},
			}}},
			unsupported: "authorization.rules.to.methods", words: []string{"method and path"},
		},
		{
			// Disabled asks for no mutual TLS: exactly what Traefik does.
			name: "disabled mTLS",
			spec: meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSDisabled}},
		},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A rate limit makes the translation write a Middleware to look into.
			tt.spec.RateLimit = &meshv1alpha1.RateLimit{RequestsPerSecond: 10}
			in := tcase{spec: tt.spec, services: payments}.input("shop")
			out, err := p.Translate(in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			policytest.RequireOutcome(t, p, in, out, tt.unsupported, tt.words...)
			specs := policytest.Specs(out, kindMiddle)
			if len(specs) != 1 || len(specs[0]) != 1 || specs[0]["rateLimit"] == nil {
				t.Errorf("want only the rate-limit Middleware, got %v", specs)
			}
		})
	}
}
