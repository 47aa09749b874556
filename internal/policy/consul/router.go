package consul

import (
	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// routerSpec is the ServiceRouter spec carrying timeouts and retries, nil when the policy sets
// neither. It has one route without a match, which catches every request to the service and
// sends it to the service itself (an empty destination.service means the router's own), so
// the router changes how requests are sent, not where. Callers' proxies apply it.
func routerSpec(spec *meshv1alpha1.MeshPolicySpec) map[string]any {
	dest := map[string]any{}
	if t := spec.Timeouts; t != nil {
		if t.Request != nil {
			// The whole request, retries included, as the API means it.
			dest["requestTimeout"] = duration(t.Request.Duration)
		}
		if t.Idle != nil {
			dest["idleTimeout"] = duration(t.Idle.Duration)
		}
	}
	if r := spec.Retries; r != nil {
		dest["numRetries"] = int64(r.Attempts)
		// Consul passes these to Envoy's retry_on; every RetryOn value is one of its conditions.
		on := r.GetRetryOn()
		conds := make([]any, 0, len(on))
		for _, c := range on {
			conds = append(conds, string(c))
		}
		dest["retryOn"] = conds
	}
	if len(dest) == 0 {
		return nil
	}
	return map[string]any{"routes": []any{map[string]any{"destination": dest}}}
}
