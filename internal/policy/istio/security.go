package istio

import (
	"fmt"
	"strings"

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

// peerAuthenticationSpec sets mode on the Service's pods, nil when there is nothing to set.
// STRICT covers the whole pods: their other ports only get stricter. PERMISSIVE and DISABLE
// would loosen those other ports too, so they are set on the Service's ports alone, which
// Istio takes by number only.
func peerAuthenticationSpec(selector map[string]any, mode string, ports podPorts) map[string]any {
	if mode == mtlsModes[meshv1alpha1.MTLSStrict] {
		return map[string]any{"selector": selector, "mtls": map[string]any{"mode": mode}}
	}
	if len(ports.numbers) == 0 {
		return nil
	}
	byPort := map[string]any{}
	for _, p := range ports.numbers {
		byPort[p] = map[string]any{"mode": mode}
	}
	return map[string]any{"selector": selector, "portLevelMtls": byPort}
}

// authorizationPolicySpec is an ALLOW policy on the Service's pods. Once a workload has an
// ALLOW policy, Istio denies what none of them matches; a policy without rules matches
// nothing, which is the API's "no rules = deny all".
func authorizationPolicySpec(selector map[string]any, rules []any) map[string]any {
	spec := map[string]any{"selector": selector, "action": "ALLOW"}
	if len(rules) > 0 {
		spec["rules"] = rules
	}
	return spec
}

// authorizationRules translates the rules one to one for a Service whose pods listen on ports;
// nil when there are none. Each rule is limited to those ports: the policy's pod selector
// picks whole pods, and an unlimited rule would also allow its callers on ports of other
// Services of the same pods. Without a numbered port no rule can be limited, so none is
// written and the policy denies everything.
func authorizationRules(spec *meshv1alpha1.MeshPolicySpec, ports []string) []any {
	a := spec.Authorization
	if a == nil || len(a.Rules) == 0 || len(ports) == 0 {
		return nil
	}
	rules := make([]any, 0, len(a.Rules))
	for _, r := range a.Rules {
		rules = append(rules, authorizationRule(r, ports))
	}
	return rules
}

// identityGaps: Istio learns a caller's service account and namespace from its mTLS
// certificate, so with mTLS disabled no source can match and those rules deny everything.
func identityGaps(spec *meshv1alpha1.MeshPolicySpec, g *gaps) {
	if spec.Authorization == nil || spec.MTLS == nil || spec.MTLS.Mode != meshv1alpha1.MTLSDisabled {
		return
	}
	var sa, ns bool
	for _, r := range spec.Authorization.Rules {
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
// destination match, on one of ports. Every source is a principal, so one Istio source lists
// them all (Istio ANDs the fields of one source, ORs the values of one field). An empty from
// matches any caller.
func authorizationRule(r meshv1alpha1.AuthorizationRule, ports []string) map[string]any {
	var principals []string
	for _, f := range r.From {
		switch {
		case f.ServiceAccount != "":
			principals = append(principals, principal(f.ServiceAccount))
		case f.Namespace != "":
			principals = append(principals, namespacePrincipals(f.Namespace))
		}
	}
	rule := map[string]any{"to": destinations(r.To, ports)}
	if len(principals) > 0 {
		rule["from"] = []any{map[string]any{"source": map[string]any{"principals": list(principals)}}}
	}
	return rule
}

// destinations are the rule's operations, each limited to ports (Istio ANDs the fields of one
// operation); an empty to is one operation of the ports alone.
func destinations(to []meshv1alpha1.AuthorizationDestination, ports []string) []any {
	if len(to) == 0 {
		return []any{map[string]any{"operation": map[string]any{"ports": list(ports)}}}
	}
	out := make([]any, 0, len(to))
	for _, d := range to {
		op := map[string]any{"ports": list(ports)}
		if len(d.Methods) > 0 {
			op["methods"] = list(d.Methods)
		}
		// Same syntax on both sides: exact, or a prefix ending in "*".
		if len(d.Paths) > 0 {
			op["paths"] = list(d.Paths)
		}
		out = append(out, map[string]any{"operation": op})
	}
	return out
}

// localTrustDomain is the trust domain Istio reads, in a principal, as the mesh's own and its
// aliases, whatever the mesh's trust domain is. A principal in any trust domain ("*/ns/...")
// would also admit workloads of another mesh whose certificates this one trusts.
const localTrustDomain = "cluster.local"

// principal matches a service account's SPIFFE identity in the mesh's trust domain
// (<trust domain>/ns/<ns>/sa/<name>). Not the newer source.serviceAccounts field: Istio before
// 1.25 lacks it and would see an empty source, which matches every caller.
func principal(serviceAccount string) string {
	ns, name, _ := strings.Cut(serviceAccount, "/")
	return localTrustDomain + "/ns/" + ns + "/sa/" + name
}

// namespacePrincipals matches every service account of a namespace in the mesh's trust domain.
// Not source.namespaces, which Istio matches in any trust domain.
func namespacePrincipals(namespace string) string {
	return localTrustDomain + "/ns/" + namespace + "/sa/*"
}
