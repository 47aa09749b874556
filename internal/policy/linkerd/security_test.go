package linkerd

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestNoWeakerTranslation: a path Linkerd would match more widely than the rule means is
// unsupported (the policy is not Ready) and left out, and the objects written never let a
// caller through that the policy refuses: every caller and request below is judged as
// Linkerd's proxy would, from the Servers, HTTPRoutes, authorizations and authentications.
func TestNoWeakerTranslation(t *testing.T) {
	checkout := []meshv1alpha1.AuthorizationSource{sa("shop/checkout")}
	rules := func(rs ...meshv1alpha1.AuthorizationRule) *meshv1alpha1.Authorization {
		return &meshv1alpha1.Authorization{Rules: rs}
	}
	tests := []struct {
		name string
		spec meshv1alpha1.MeshPolicySpec
		// unsupported is the field reported, with words in its reason; "" when the policy
		// is expressed and Ready.
		unsupported string
		words       []string
	}{
		{
			// Linkerd's prefix /api takes in /api itself, which the rule does not allow.
			name:        "prefix would admit its own segment",
			spec:        meshv1alpha1.MeshPolicySpec{Authorization: rules(meshv1alpha1.AuthorizationRule{From: checkout, To: []meshv1alpha1.AuthorizationDestination{to(nil, "/api/*")}})},
			unsupported: "authorization.rules.to.paths", words: []string{"/api/* would also allow /api", "list /api"},
		},
		{
			name: "prefix whose segment is allowed for another method only",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: rules(meshv1alpha1.AuthorizationRule{From: checkout, To: []meshv1alpha1.AuthorizationDestination{
				to(methods("GET"), "/api/*"), to(methods("POST"), "/api"),
			}})},
			unsupported: "authorization.rules.to.paths", words: []string{"GET /api/* would also allow GET /api"},
		},
		{
			name:        "prefix for any caller",
			spec:        meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict}, Authorization: rules(meshv1alpha1.AuthorizationRule{To: []meshv1alpha1.AuthorizationDestination{to(nil, "/public/*")}})},
			unsupported: "authorization.rules.to.paths", words: []string{"/public/* would also allow /public"},
		},
		{
			// Linkerd drops the trailing slashes: /api//* would take in all of /api/.
			name:        "prefix ending in two slashes",
			spec:        meshv1alpha1.MeshPolicySpec{Authorization: rules(meshv1alpha1.AuthorizationRule{From: checkout, To: []meshv1alpha1.AuthorizationDestination{to(nil, "/api", "/api//*")}})},
			unsupported: "authorization.rules.to.paths", words: []string{"trailing slashes", "/api//*"},
		},
		{
			// Narrower, not wider: /ap* becomes /ap/*, refusing /apple.
			name:        "prefix ending inside a segment",
			spec:        meshv1alpha1.MeshPolicySpec{Authorization: rules(meshv1alpha1.AuthorizationRule{From: checkout, To: []meshv1alpha1.AuthorizationDestination{to(nil, "/ap*")}})},
			unsupported: "authorization.rules.to.paths", words: []string{"/ap*", "leaves out"},
		},
		// Expressed exactly, so Ready: why the other security fields need no gap.
		{
			name: "prefix with its segment",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: rules(meshv1alpha1.AuthorizationRule{From: checkout, To: []meshv1alpha1.AuthorizationDestination{to(methods("GET"), "/api", "/api/*")}})},
		},
		{
			// identityRefs keep the ServiceAccount's namespace: checkout of another
			// namespace is refused.
			name: "serviceAccount and namespace sources",
			spec: meshv1alpha1.MeshPolicySpec{Authorization: rules(
				meshv1alpha1.AuthorizationRule{From: checkout},
				meshv1alpha1.AuthorizationRule{From: []meshv1alpha1.AuthorizationSource{fromNS("monitoring")}, To: []meshv1alpha1.AuthorizationDestination{to(methods("GET"), "/metrics")}},
			)},
		},
		{
			// Any caller under Strict is any meshed caller, never an unmeshed one.
			name: "any caller under strict mTLS",
			spec: meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict}, Authorization: rules(meshv1alpha1.AuthorizationRule{})},
		},
		{
			// Permissive with authorization: plaintext only where a rule allows any caller.
			name: "permissive mTLS with authorization",
			spec: meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive}, Authorization: rules(
				meshv1alpha1.AuthorizationRule{From: checkout},
				meshv1alpha1.AuthorizationRule{To: []meshv1alpha1.AuthorizationDestination{to(methods("GET"), "/healthz")}},
			)},
		},
		{
			name: "deny all",
			spec: meshv1alpha1.MeshPolicySpec{MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive}, Authorization: rules()},
		},
	}
	p := New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.TargetRefs = policytest.Targets("payments")
			in := testCase{spec: tt.spec, services: func(ns string) []corev1.Service { return []corev1.Service{payments(ns)} }}.input("shop")
			out, err := p.Translate(in)
			if err != nil {
				t.Fatalf("Translate: %v", err)
			}
			policytest.RequireOutcome(t, p, in, out, tt.unsupported, tt.words...)
			inbound := readInbound(t, out)
			for _, c := range []caller{{}, {"shop", "checkout"}, {"other", "checkout"}, {"shop", "web"}, {"monitoring", "prometheus"}} {
				for _, m := range []string{"GET", "POST"} {
					for _, path := range []string{"/", "/api", "/api/", "/api/v1", "/api//x", "/apple", "/ap", "/metrics", "/healthz", "/public", "/public/x"} {
						r := request{m, path}
						if inbound.allows(c, r) && !specAllows(&tt.spec, c, r) {
							t.Errorf("Linkerd would let %s send %v, which the policy refuses", c, r)
						}
					}
				}
			}
		})
	}
}

// caller is a client: a meshed workload's ServiceAccount, or unmeshed (no identity).
type caller struct{ namespace, name string }

func (c caller) meshed() bool { return c.name != "" }

func (c caller) String() string {
	if !c.meshed() {
		return "an unmeshed client"
	}
	return c.namespace + "/" + c.name
}

// specAllows is the policy's own answer: some rule names the caller (or any caller) and
// allows the request. mTLS Strict refuses unmeshed callers.
func specAllows(spec *meshv1alpha1.MeshPolicySpec, c caller, r request) bool {
	if spec.MTLS != nil && spec.MTLS.Mode == meshv1alpha1.MTLSStrict && !c.meshed() {
		return false
	}
	for i := range spec.Authorization.Rules {
		rule := &spec.Authorization.Rules[i]
		if sourceMatches(rule.From, c) && (len(rule.To) == 0 || ruleAllows(rule, r.method, r.path)) {
			return true
		}
	}
	return false
}

func sourceMatches(from []meshv1alpha1.AuthorizationSource, c caller) bool {
	if len(from) == 0 {
		return true
	}
	for _, f := range from {
		if c.meshed() && (f.ServiceAccount == c.namespace+"/"+c.name || f.Namespace == c.namespace) {
			return true
		}
	}
	return false
}

// inboundPolicy is what the proxy of the target pods enforces on its one Server.
type inboundPolicy struct {
	access string
	routes map[string][]httpMatch
	// authorized: per target ("Server" or a route name), who the AuthorizationPolicies admit.
	authorized map[string][]func(caller) bool
}

// readInbound reads the policy of the one Server out of the objects.
func readInbound(t *testing.T, out policy.Output) inboundPolicy {
	t.Helper()
	in := inboundPolicy{routes: map[string][]httpMatch{}, authorized: map[string][]func(caller) bool{}}
	authns := map[string]func(caller) bool{}
	var policies []*unstructured.Unstructured
	for _, o := range out.Objects {
		spec, _ := o.Object["spec"].(map[string]any)
		switch o.GetKind() {
		case serverGVK.Kind:
			in.access, _ = spec["accessPolicy"].(string)
		case meshTLSAuthnGVK.Kind:
			authns[o.GetName()] = meshTLSAdmits(spec)
		case networkAuthnGVK.Kind:
			authns[o.GetName()] = func(caller) bool { return true }
		case httpRouteGVK.Kind:
			in.routes[o.GetName()] = routeMatches(t, spec)
		case authzPolicyGVK.Kind:
			policies = append(policies, o)
		}
	}
	for _, o := range policies {
		spec := o.Object["spec"].(map[string]any)
		target := spec["targetRef"].(map[string]any)
		key := target["kind"].(string)
		if key == httpRouteGVK.Kind {
			key = target["name"].(string)
		}
		for _, ref := range spec["requiredAuthenticationRefs"].([]any) {
			admits, ok := authns[ref.(map[string]any)["name"].(string)]
			if !ok {
				t.Fatalf("AuthorizationPolicy %s refers to an authentication that is not written", o.GetName())
			}
			in.authorized[key] = append(in.authorized[key], admits)
		}
	}
	return in
}

func meshTLSAdmits(spec map[string]any) func(caller) bool {
	if ids, ok := spec["identities"].([]any); ok && len(ids) == 1 && ids[0] == "*" {
		return caller.meshed
	}
	refs, _ := spec["identityRefs"].([]any)
	return func(c caller) bool {
		for _, r := range refs {
			ref := r.(map[string]any)
			switch ref["kind"] {
			case "ServiceAccount":
				if c.meshed() && ref["namespace"] == c.namespace && ref["name"] == c.name {
					return true
				}
			case "Namespace":
				if c.meshed() && ref["name"] == c.namespace {
					return true
				}
			}
		}
		return false
	}
}

func routeMatches(t *testing.T, spec map[string]any) []httpMatch {
	t.Helper()
	var out []httpMatch
	for _, rule := range spec["rules"].([]any) {
		for _, m := range rule.(map[string]any)["matches"].([]any) {
			match := m.(map[string]any)
			path := match["path"].(map[string]any)
			method, _ := match["method"].(string)
			out = append(out, httpMatch{method: method, path: pathMatch{exact: path["type"] == "Exact", value: path["value"].(string)}})
		}
	}
	return out
}

// allows is Linkerd's answer: without routes, the Server's authorizations (or its access
// policy); with routes, those of the most specific route matching the request, any of them
// when several tie (Linkerd picks one by age), plus the Server's.
func (in inboundPolicy) allows(c caller, r request) bool {
	if in.admitted("Server", c) {
		return true
	}
	if len(in.routes) == 0 {
		return in.access == accessUnauthenticated || in.access == accessAuthenticated && c.meshed()
	}
	best, bestMethod := -1, false
	var tied []string
	for name, matches := range in.routes {
		for _, m := range matches {
			if !m.matchesRequest(r) {
				continue
			}
			l, hasMethod := m.score()
			switch {
			case l > best || l == best && hasMethod && !bestMethod:
				best, bestMethod, tied = l, hasMethod, []string{name}
			case l == best && hasMethod == bestMethod:
				tied = append(tied, name)
			}
		}
	}
	for _, name := range tied {
		if in.admitted(name, c) {
			return true
		}
	}
	return false
}

func (in inboundPolicy) admitted(target string, c caller) bool {
	for _, admits := range in.authorized[target] {
		if admits(c) {
			return true
		}
	}
	return false
}

// TestPathAllows pins the API's meaning of a path that widerMatch and the simulation rely on.
func TestPathAllows(t *testing.T) {
	for _, c := range []struct {
		pattern, path string
		want          bool
	}{
		{"/api/*", "/api/x", true},
		{"/api/*", "/api/", true},
		{"/api/*", "/api", false},
		{"/ap*", "/apple", true},
		{"/api", "/api", true},
		{"/api", "/api/", false},
		{"/*", "/", true},
	} {
		if got := pathAllows(c.pattern, c.path); got != c.want {
			t.Errorf("pathAllows(%q, %q) = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
	if !strings.HasPrefix(withMethod("GET", "/api/*"), "GET ") || withMethod("", "/x") != "/x" {
		t.Error("withMethod writes a request as method and path")
	}
}
