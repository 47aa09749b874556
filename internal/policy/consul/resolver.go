package consul

import (
	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// lbPolicies are ServiceResolver loadBalancer.policy values. ConsistentHash uses Envoy's ring
// hash; Consul's other hashing policy, maglev, would do as well.
var lbPolicies = map[meshv1alpha1.LoadBalancerAlgorithm]string{
	meshv1alpha1.LoadBalancerRoundRobin:     "round_robin",
	meshv1alpha1.LoadBalancerLeastRequest:   "least_request",
	meshv1alpha1.LoadBalancerRandom:         "random",
	meshv1alpha1.LoadBalancerConsistentHash: "ring_hash",
}

// resolverSpec is the ServiceResolver spec (how callers pick the target's instances), nil when
// the policy sets nothing there. A resolver applies to every caller of the service it is
// named after.
func resolverSpec(spec *meshv1alpha1.MeshPolicySpec) map[string]any {
	out := map[string]any{}
	if lb := spec.LoadBalancer; lb != nil {
		if p, ok := lbPolicies[lb.Algorithm]; ok {
			m := map[string]any{"policy": p}
			if h := hashPolicy(lb.ConsistentHash); h != nil {
				m["hashPolicies"] = []any{h}
			}
			out["loadBalancer"] = m
		}
	}
	if spec.Locality != nil && spec.Locality.PreferClose {
		// failover: endpoints in the caller's locality first, the others when those fail.
		out["prioritizeByLocality"] = map[string]any{"mode": "failover"}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// hashPolicy hashes on the header or the cookie; with a TTL, Envoy sets the cookie when the
// request has none.
func hashPolicy(ch *meshv1alpha1.ConsistentHash) map[string]any {
	switch {
	case ch == nil:
		return nil
	case ch.Header != "":
		return map[string]any{"field": "header", "fieldValue": ch.Header}
	case ch.Cookie != nil:
		h := map[string]any{"field": "cookie", "fieldValue": ch.Cookie.Name}
		if ch.Cookie.TTL != nil {
			h["cookieConfig"] = map[string]any{"ttl": duration(ch.Cookie.TTL.Duration)}
		}
		return h
	}
	return nil
}
