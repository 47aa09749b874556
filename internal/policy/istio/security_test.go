package istio

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestNoWeakerTranslation: what Istio could only express for whole pods (their every port)
// or for any trust domain is unsupported (the policy is not Ready) or written narrower, and
// what is written never allows more than the policy: rules carry the Service's numbered
// target ports, sources are principals of the mesh's own trust domain, and a mode weaker
// than STRICT is set on those ports only.
func TestNoWeakerTranslation(t *testing.T) {
	// web: a port named "http" in the pods, and one numbered 9091.
	web := policytest.Service("shop", "web", 80, 9090)
	web.Spec.Ports[0].TargetPort = intstr.FromString("http")
	web.Spec.Ports[1].TargetPort = intstr.FromInt32(9091)
	named := policytest.Service("shop", "web", 80)
	named.Spec.Ports[0].TargetPort = intstr.FromString("http")
	numbered := policytest.Service("shop", "web", 8080)

	checkout := []meshv1alpha1.AuthorizationSource{{ServiceAccount: "shop/checkout"}}
	anyone := &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{}}}
	tests := []struct {
		name string
		spec meshv1alpha1.MeshPolicySpec
		svc  corev1.Service
		// unsupported is the field reported, with words in its reason; "" when the policy
		// is expressed and Ready.
		unsupported string
		words       []string
		// ports the rules and a non-STRICT mode may cover; rules whether any is written.
		ports []string
		rules bool
	}{
		{
			// Without a port number the rule would allow checkout on every port of the pods.
			name: "rule on a named targetPort",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{From: checkout}}}},
			svc:  named, unsupported: "authorization.rules", words: []string{`port http ("http")`, "by number", "denied"},
		},
		{
			name: "rule for any caller on a named targetPort",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: anyone},
			svc:  named, unsupported: "authorization.rules", words: []string{"other ports"},
		},
		{
			name: "rules on a named and a numbered targetPort",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{From: checkout, To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/api/*"}}}},
				{},
			}}},
			svc: web, unsupported: "authorization.rules", words: []string{"Service web port http"},
			ports: []string{"9091"}, rules: true,
		},
		{
			// PERMISSIVE for the whole pods would let plaintext reach their other ports.
			name: "permissive on a named targetPort",
			spec: meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive}},
			svc:  named, unsupported: "mtls.mode", words: []string{"PERMISSIVE or DISABLE", "portLevelMtls"},
		},
		{
			name: "disabled on a named and a numbered targetPort",
			spec: meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSDisabled}},
			svc:  web, unsupported: "mtls.mode", words: []string{"Service web port http"},
			ports: []string{"9091"},
		},
		// Expressed exactly, so Ready.
		{
			name:  "serviceAccount and namespace in the mesh's trust domain only",
			spec:  meshv1alpha1.MeshPolicySpec{Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{From: append(checkout, meshv1alpha1.AuthorizationSource{Namespace: "ops"})}}}},
			svc:   numbered,
			ports: []string{"8080"}, rules: true,
		},
		{
			name:  "rule for any caller on a numbered targetPort",
			spec:  meshv1alpha1.MeshPolicySpec{Authorization: anyone},
			svc:   numbered,
			ports: []string{"8080"}, rules: true,
		},
		{
			name:  "permissive on a numbered targetPort",
			spec:  meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive}},
			svc:   numbered,
			ports: []string{"8080"},
		},
		{
			// Stricter on the pods' other ports: allowed, and said in the matrix note.
			name: "strict on a named targetPort covers the whole pods",
			spec: meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict}},
			svc:  named,
		},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.TargetRefs = policytest.Targets(tt.svc.Name)
			in := policy.Input{Policy: policytest.Policy("shop", "web", tt.spec), Services: []corev1.Service{tt.svc}}
			out, err := p.Translate(in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			policytest.RequireOutcome(t, p, in, out, tt.unsupported, tt.words...)
			checkPeerAuthentications(t, out, tt.ports)
			checkAuthorizationPolicies(t, out, tt.spec.Authorization != nil, tt.ports, tt.rules)
		})
	}
}

// checkPeerAuthentications: a mode for the whole pods only when STRICT, others only on ports.
func checkPeerAuthentications(t *testing.T, out policy.Output, ports []string) {
	t.Helper()
	for _, pa := range policytest.Specs(out, "PeerAuthentication") {
		if m, ok := pa["mtls"].(map[string]any); ok && m["mode"] != "STRICT" {
			t.Errorf("PeerAuthentication sets %v for the whole pods, their other ports included", m["mode"])
		}
		for port := range asMap(pa["portLevelMtls"]) {
			if !contains(ports, port) {
				t.Errorf("PeerAuthentication sets port %s, want only %v", port, ports)
			}
		}
	}
}

// checkAuthorizationPolicies: an ALLOW policy when the spec has authorization (else the
// Service would stay open), whose every rule is limited to ports and names callers only as
// principals of the mesh's trust domain.
func checkAuthorizationPolicies(t *testing.T, out policy.Output, want bool, ports []string, rules bool) {
	t.Helper()
	aps := policytest.Specs(out, "AuthorizationPolicy")
	if want != (len(aps) == 1) {
		t.Fatalf("%d AuthorizationPolicies, want one when the policy has authorization (%v)", len(aps), want)
	}
	for _, ap := range aps {
		if ap["action"] != "ALLOW" {
			t.Errorf("action %v, want ALLOW (deny by default)", ap["action"])
		}
		list, _ := ap["rules"].([]any)
		switch {
		case rules && len(list) == 0:
			t.Error("no rules: want the policy's rules")
		case !rules && len(list) > 0:
			t.Errorf("rules %v: want none, so the pods deny everything", list)
		}
		for _, r := range list {
			checkRule(t, asMap(r), ports)
		}
	}
}

func checkRule(t *testing.T, rule map[string]any, ports []string) {
	t.Helper()
	to, _ := rule["to"].([]any)
	if len(to) == 0 {
		t.Errorf("rule %v has no operation, so it allows every port of the pods", rule)
	}
	for _, op := range to {
		got := asList(asMap(asMap(op)["operation"])["ports"])
		if len(got) == 0 {
			t.Errorf("operation %v is not limited to ports %v", op, ports)
		}
		for _, p := range got {
			if !contains(ports, p) {
				t.Errorf("operation allows port %s, want only %v", p, ports)
			}
		}
	}
	from, _ := rule["from"].([]any)
	for _, f := range from {
		src := asMap(asMap(f)["source"])
		for key := range src {
			if key != "principals" {
				t.Errorf("source field %s: want principals only (namespaces match any trust domain)", key)
			}
		}
		for _, p := range asList(src["principals"]) {
			if !strings.HasPrefix(p, localTrustDomain+"/ns/") {
				t.Errorf("principal %s is not in the mesh's trust domain", p)
			}
		}
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
