package consul

import (
	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// mutualTLSModes are the ServiceDefaults mutualTLSMode values; Disabled has none.
var mutualTLSModes = map[meshv1alpha1.MTLSMode]string{
	meshv1alpha1.MTLSStrict:     "strict",
	meshv1alpha1.MTLSPermissive: "permissive",
}

// mutualTLSMode is the ServiceDefaults mutualTLSMode for the policy ("" to write none), with
// why it is not the mode asked for. Disabled has no equivalent. Permissive with authorization
// would let plaintext callers bypass it, as Consul does not enforce intentions on plaintext
// connections: strict is written instead, which refuses them rather than admitting them.
func mutualTLSMode(spec *meshv1alpha1.MeshPolicySpec) (string, []meshv1alpha1.UnsupportedField) {
	if spec.MTLS == nil {
		return "", nil
	}
	switch {
	case spec.MTLS.Mode == meshv1alpha1.MTLSDisabled:
		return "", []meshv1alpha1.UnsupportedField{{
			Field:  "mtls.mode",
			Reason: "Consul service mesh traffic between proxies is always mutual TLS; no mode turns it off.",
		}}
	case spec.MTLS.Mode == meshv1alpha1.MTLSPermissive && spec.Authorization != nil:
		return mutualTLSModes[meshv1alpha1.MTLSStrict], []meshv1alpha1.UnsupportedField{{
			Field:  "mtls.mode",
			Reason: "mode Permissive can't be combined with authorization: Consul does not enforce intentions on plaintext connections, so callers outside the mesh would not be denied. Sluice writes mutualTLSMode strict instead, which refuses plaintext callers; use mode Strict, or drop authorization to accept plaintext.",
		}}
	}
	return mutualTLSModes[spec.MTLS.Mode], nil
}

// needsHTTP reports whether the policy uses what Consul applies only to services whose
// protocol is HTTP-based: routers (timeouts, retries), rate limits, hash policies on headers
// and cookies, and intentions with L7 permissions.
func needsHTTP(spec *meshv1alpha1.MeshPolicySpec, callers *source) bool {
	if spec.Timeouts != nil || spec.Retries != nil || spec.RateLimit != nil {
		return true
	}
	if spec.LoadBalancer != nil && spec.LoadBalancer.ConsistentHash != nil {
		return true
	}
	return callers != nil && callers.l7()
}

// serviceDefaultsSpec is the ServiceDefaults spec for one target, with mtlsMode from
// mutualTLSMode; nil when the policy sets nothing there. The protocol is written only when the
// policy needs HTTP, so a policy of mTLS or L4 authorization never turns a TCP service into an
// HTTP one.
func serviceDefaultsSpec(spec *meshv1alpha1.MeshPolicySpec, t target, mtlsMode string) map[string]any {
	out := map[string]any{}
	if t.protocol != "" {
		out["protocol"] = t.protocol
	}
	if mtlsMode != "" {
		out["mutualTLSMode"] = mtlsMode
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
