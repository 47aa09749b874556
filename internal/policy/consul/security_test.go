package consul

import (
	"strings"
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestNoWeakerTranslation: every authorization or mTLS field Consul could only express by
// allowing more than the policy says is unsupported (the policy is not Ready), and what is
// written allows no more than the policy: no intention source but "*", which allows only what
// the rules with an empty from allow, and no permissive mTLS next to authorization.
func TestNoWeakerTranslation(t *testing.T) {
	api := []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/api/*"}}}
	tests := []struct {
		name string
		spec meshv1alpha1.MeshPolicySpec
		// field is reported unsupported, its reason saying each of words.
		field string
		words []string
		// anyCaller is what the source "*" must come to: "deny", "allow", or the paths of its
		// allow permissions.
		anyCaller string
		// mtlsMode is the ServiceDefaults mutualTLSMode, "" for none.
		mtlsMode string
	}{
		{
			// Consul would match "checkout" in every namespace, not only shop's.
			name: "serviceAccount loses its namespace",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{sa("shop/checkout")}},
			}}},
			field: "authorization.rules.from.serviceAccount", words: []string{"namespace", "every other namespace"},
			anyCaller: "deny",
		},
		{
			name: "serviceAccount with methods and paths",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{sa("shop/checkout")}, To: api},
			}}},
			field: "authorization.rules.from.serviceAccount", words: []string{"namespace"},
			anyCaller: "deny",
		},
		{
			name: "namespace source",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{nsSource("shop")}},
			}}},
			field: "authorization.rules.from.namespace", words: []string{"namespace"},
			anyCaller: "deny",
		},
		{
			// The named rule's path must not reach the source "*" the other rule fills.
			name: "a rule naming sources next to one for any caller",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{sa("shop/admin"), nsSource("ops")}, To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/admin/*"}}}},
				{To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/healthz"}}}},
			}}},
			field: "authorization.rules.from.serviceAccount", words: []string{"namespace"},
			anyCaller: "/healthz",
		},
		{
			// Plaintext callers bypass intentions in permissive mode: strict is written.
			name: "permissive mTLS with authorization",
			spec: meshv1alpha1.MeshPolicySpec{
				MTLS:          &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive},
				Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{To: api}}},
			},
			field: "mtls.mode", words: []string{"Permissive", "plaintext", "strict"},
			anyCaller: "/api/", mtlsMode: "strict",
		},
		{
			name: "permissive mTLS with deny all",
			spec: meshv1alpha1.MeshPolicySpec{
				MTLS:          &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive},
				Authorization: &meshv1alpha1.Authorization{},
			},
			field: "mtls.mode", words: []string{"Permissive", "plaintext"},
			anyCaller: "deny", mtlsMode: "strict",
		},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.TargetRefs = policytest.Targets("payments")
			in := testCase{spec: tt.spec, services: payments}.input("shop")
			out, err := p.Translate(in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			policytest.RequireUnsupported(t, p, in, out, tt.field, tt.words...)

			ixns := policytest.Specs(out, kindServiceIntentions.Kind)
			if len(ixns) != 1 {
				t.Fatalf("%d ServiceIntentions, want 1 (deny by default)", len(ixns))
			}
			if got := anyCallerSummary(t, ixns[0]); got != tt.anyCaller {
				t.Errorf("the intentions allow %s, want %s", got, tt.anyCaller)
			}
			var mode string
			if defaults := policytest.Specs(out, kindServiceDefaults.Kind); len(defaults) == 1 {
				mode, _ = defaults[0]["mutualTLSMode"].(string)
			}
			if mode != tt.mtlsMode {
				t.Errorf("mutualTLSMode %q, want %q", mode, tt.mtlsMode)
			}
		})
	}
}

// anyCallerSummary checks the intentions have the one source "*" and says what it allows:
// its action, or the paths of its allow permissions (ending with the catch-all deny).
func anyCallerSummary(t *testing.T, spec map[string]any) string {
	t.Helper()
	sources, _ := spec["sources"].([]any)
	if len(sources) != 1 {
		t.Fatalf("intention sources %v: want only \"*\" (a named source would match that name in every namespace)", sources)
	}
	src := sources[0].(map[string]any)
	if src["name"] != wildcard {
		t.Fatalf("intention source %v, want \"*\"", src["name"])
	}
	if action, ok := src["action"].(string); ok {
		return action
	}
	perms := src["permissions"].([]any)
	last := perms[len(perms)-1].(map[string]any)
	if last["action"] != "deny" || last["http"].(map[string]any)["pathPrefix"] != "/" {
		t.Errorf("the permissions of \"*\" do not end with a deny of every path: %v", last)
	}
	var paths []string
	for _, perm := range perms[:len(perms)-1] {
		http := perm.(map[string]any)["http"].(map[string]any)
		for _, key := range []string{"pathExact", "pathPrefix"} {
			if p, ok := http[key].(string); ok {
				paths = append(paths, p)
			}
		}
	}
	return strings.Join(paths, " ")
}
