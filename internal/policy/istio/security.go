package istio

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// mtlsModes are PeerAuthentication's names of the API's modes.
var mtlsModes = map[meshv1alpha1.MTLSMode]string{
	meshv1alpha1.MTLSStrict:     "STRICT",
	meshv1alpha1.MTLSPermissive: "PERMISSIVE",
	meshv1alpha1.MTLSDisabled:   "DISABLE",
}

// mtlsMode is the PeerAuthentication mode, "" when the spec sets none or Istio has no such mode.
func mtlsMode(spec *meshv1alpha1.MeshPolicySpec, g *gaps) string {
	if spec.MTLS == nil {
		return ""
	}
	mode, ok := mtlsModes[spec.MTLS.Mode]
	if !ok {
		g.add("mtls.mode", fmt.Sprintf("Istio has no mTLS mode %q", spec.MTLS.Mode))
	}
	return mode
}

func peerAuthenticationSpec(selector map[string]any, mode string) map[string]any {
	return map[string]any{"selector": selector, "mtls": map[string]any{"mode": mode}}
}

// authorizationPolicySpec is an ALLOW policy on the Service's pods. Once a workload has an
// ALLOW policy, Istio denies what none of them matches; a policy without rules matches
// nothing, which is the API's "no rules = deny all".
func authorizationPolicySpec(selector map[string]any, rules []any) map[string]any {
	spec := map[string]any{"selector": selector, "action": "ALLOW"}
	if len(rules) > 0 {
		spec["rules"] = runtime.DeepCopyJSONValue(rules)
	}
	return spec
}

// authorizationRules translates the rules one to one; nil when there are none.
func authorizationRules(spec *meshv1alpha1.MeshPolicySpec, g *gaps) []any {
	a := spec.Authorization
	if a == nil || len(a.Rules) == 0 {
		return nil
	}
	if spec.MTLS != nil && spec.MTLS.Mode == meshv1alpha1.MTLSDisabled {
		identityGaps(a.Rules, g)
	}
	rules := make([]any, 0, len(a.Rules))
	for _, r := range a.Rules {
		rules = append(rules, authorizationRule(r))
	}
	return rules
}

// identityGaps: Istio learns a caller's service account and namespace from its mTLS
// certificate, so with mTLS disabled no source can match and those rules deny everything.
func identityGaps(rules []meshv1alpha1.AuthorizationRule, g *gaps) {
	var sa, ns bool
	for _, r := range rules {
		for _, f := range r.From {
			sa = sa || f.ServiceAccount != ""
			ns = ns || f.Namespace != ""
		}
	}
	const reason = "Istio reads the caller's %s from its mTLS certificate, which mtls.mode Disabled turns off, so the rule would match no request"
	if sa {
		g.add("authorization.rules.from.serviceAccount", fmt.Sprintf(reason, "service account"))
	}
	if ns {
		g.add("authorization.rules.from.namespace", fmt.Sprintf(reason, "namespace"))
	}
}

// authorizationRule keeps the API's shape: the rule matches when one source and one
// destination match. Service accounts and namespaces go to separate sources, since Istio
// ANDs the fields of one source. An empty rule is Istio's match-everything rule.
func authorizationRule(r meshv1alpha1.AuthorizationRule) map[string]any {
	var principals, namespaces []string
	for _, f := range r.From {
		switch {
		case f.ServiceAccount != "":
			principals = append(principals, principal(f.ServiceAccount))
		case f.Namespace != "":
			namespaces = append(namespaces, f.Namespace)
		}
	}
	var from []any
	if len(principals) > 0 {
		from = append(from, map[string]any{"source": map[string]any{"principals": list(principals)}})
	}
	if len(namespaces) > 0 {
		from = append(from, map[string]any{"source": map[string]any{"namespaces": list(namespaces)}})
	}
	var to []any
	for _, d := range r.To {
		op := map[string]any{}
		if len(d.Methods) > 0 {
			op["methods"] = list(d.Methods)
		}
		// Same syntax on both sides: exact, or a prefix ending in "*".
		if len(d.Paths) > 0 {
			op["paths"] = list(d.Paths)
		}
		to = append(to, map[string]any{"operation": op})
	}
	rule := map[string]any{}
	if len(from) > 0 {
		rule["from"] = from
	}
	if len(to) > 0 {
		rule["to"] = to
	}
	return rule
}

// principal matches a service account's SPIFFE identity in any trust domain
// (<trust domain>/ns/<ns>/sa/<name>): the API names no trust domain, and a leading "*" is
// Istio's suffix match. Not the newer source.serviceAccounts field: Istio before 1.25 lacks
// it and would see an empty source, which matches every caller.
func principal(serviceAccount string) string {
	ns, name, _ := strings.Cut(serviceAccount, "/")
	return "*/ns/" + ns + "/sa/" + name
}
