package gatewayapi

import (
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestNoWeakerTranslation pins why Gateway API has no weakening case: it expresses no
// security field at all. Every mode but Disabled (no mutual TLS, which is all a gateway does)
// and every authorization field is unsupported, so the policy is not Ready, and the route
// settings written for the rest of the policy carry nothing in their place.
func TestNoWeakerTranslation(t *testing.T) {
	checkout := []meshv1alpha1.AuthorizationSource{{ServiceAccount: "shop/checkout"}}
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
			unsupported: "authorization.rules", words: []string{"no authorization policy"},
		},
		{
			name:        "serviceAccount source",
			spec:        meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{From: checkout}}}},
			unsupported: "authorization.rules.from.serviceAccount", words: []string{"service account"},
		},
		{
			name: "methods and paths",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/api/*"}}}},
			}}},
			unsupported: "authorization.rules.to.paths", words: []string{"no authorization policy"},
		},
		{
			// Disabled asks for no mutual TLS: exactly what a gateway does.
			name: "disabled mTLS",
			spec: meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSDisabled}},
		},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A request timeout makes the translation write route settings to look into.
			tt.spec.Timeouts = &meshv1alpha1.Timeouts{Request: dur("5s")}
			in := tcase{spec: tt.spec, services: payments}.input("shop")
			out, err := p.Translate(in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			policytest.RequireOutcome(t, p, in, out, tt.unsupported, tt.words...)
			if len(out.Objects) > 0 || out.Rules == nil || out.Rules.Retry != nil || len(out.Rules.Filters) > 0 {
				t.Errorf("want only the request timeout written, got objects %v and rules %+v", out.Objects, out.Rules)
			}
		})
	}
}
