package consul

import (
	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// mutualTLSModes are the ServiceDefaults mutualTLSMode values; Disabled has none.
var mutualTLSModes = map[meshv1alpha1.MTLSMode]string{
	meshv1alpha1.MTLSStrict:     "strict",
	meshv1alpha1.MTLSPermissive: "permissive",
}

// mtlsGaps explains what the mTLS mode keeps Consul from doing: mode Disabled has no
// equivalent, and in permissive mode Consul does not enforce intentions on plaintext
// connections, so authorization would no longer deny by default.
func mtlsGaps(spec *meshv1alpha1.MeshPolicySpec) []meshv1alpha1.UnsupportedField {
	if spec.MTLS == nil {
		return nil
	}
	switch {
	case spec.MTLS.Mode == meshv1alpha1.MTLSDisabled:
		return []meshv1alpha1.UnsupportedField{{
			Field:  "mtls.mode",
			Reason: "Consul service mesh traffic between proxies is always mutual TLS; no mode turns it off.",
		}}
	case spec.MTLS.Mode == meshv1alpha1.MTLSPermissive && spec.Authorization != nil:
		return []meshv1alpha1.UnsupportedField{{
			Field:  "authorization.rules",
			Reason: "With mtls.mode Permissive, Consul does not enforce intentions on plaintext connections, so callers outside the mesh are not denied.",
		}}
	}
	return nil
}

// needsHTTP reports whether the policy uses what Consul applies only to services whose
// protocol is HTTP-based: routers (timeouts, retries), rate limits, hash policies on headers
// and cookies, and intentions with L7 permissions.
func needsHTTP(spec *meshv1alpha1.MeshPolicySpec, sources []source) bool {
	if spec.Timeouts != nil || spec.Retries != nil || spec.RateLimit != nil {
		return true
	}
	if spec.LoadBalancer != nil && spec.LoadBalancer.ConsistentHash != nil {
		return true
	}
	for i := range sources {
		if sources[i].l7() {
			return true
		}
	}
	return false
}

// serviceDefaultsSpec is the ServiceDefaults spec for one target, nil when the policy sets
// nothing there. The protocol is written only when the policy needs HTTP, so a policy of mTLS
// or L4 authorization never turns a TCP service into an HTTP one.
func serviceDefaultsSpec(spec *meshv1alpha1.MeshPolicySpec, t target) map[string]any {
	out := map[string]any{}
	if t.protocol != "" {
		out["protocol"] = t.protocol
	}
	if spec.MTLS != nil {
		if mode, ok := mutualTLSModes[spec.MTLS.Mode]; ok {
			out["mutualTLSMode"] = mode
		}
	}
	if cb := spec.CircuitBreaker; cb != nil && cb.MaxConnections != nil {
		// Enforced by the target's own sidecar, per instance, over all callers together.
		out["maxInboundConnections"] = int64(*cb.MaxConnections)
	}
	if rl := spec.RateLimit; rl != nil {
		out["rateLimits"] = map[string]any{"instanceLevel": map[string]any{
			"requestsPerSecond": int64(rl.RequestsPerSecond),
			"requestsMaxBurst":  int64(rl.GetBurst()),
		}}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
