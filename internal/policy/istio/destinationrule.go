package istio

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// destinationRuleSpec applies the traffic policy to a Service's host. The host is the short
// name: Istio resolves it in the rule's namespace, which is the Service's, with the mesh's own
// cluster domain, so no domain is assumed here.
func destinationRuleSpec(host string, traffic map[string]any) map[string]any {
	return map[string]any{"host": host, "trafficPolicy": runtime.DeepCopyJSON(traffic)}
}

// trafficPolicy gathers every DestinationRule-bound field; nil when the spec sets none.
func trafficPolicy(spec *meshv1alpha1.MeshPolicySpec, g *gaps) map[string]any {
	tcp, http := map[string]any{}, map[string]any{}
	// Idle goes to both pools: http.idleTimeout governs HTTP ports, tcp.idleTimeout
	// plain TCP ones.
	if t := spec.Timeouts; t != nil && t.Idle != nil {
		if d, ok := g.duration("timeouts.idle", t.Idle.Duration); ok {
			tcp["idleTimeout"] = d
			http["idleTimeout"] = d
		}
	}
	var outlier map[string]any
	if cb := spec.CircuitBreaker; cb != nil {
		if cb.MaxConnections != nil {
			tcp["maxConnections"] = int64(*cb.MaxConnections)
		}
		// Both fields apply to HTTP/1.1 and HTTP/2 despite their names.
		if cb.MaxPendingRequests != nil {
			http["http1MaxPendingRequests"] = int64(*cb.MaxPendingRequests)
		}
		if cb.MaxRequests != nil {
			http["http2MaxRequests"] = int64(*cb.MaxRequests)
		}
		if cb.OutlierDetection != nil {
			outlier = outlierDetection(cb.OutlierDetection, g)
		}
	}

	tp := map[string]any{}
	pool := map[string]any{}
	if len(tcp) > 0 {
		pool["tcp"] = tcp
	}
	if len(http) > 0 {
		pool["http"] = http
	}
	if len(pool) > 0 {
		tp["connectionPool"] = pool
	}
	if outlier != nil {
		tp["outlierDetection"] = outlier
	}
	if lb := loadBalancer(spec, outlier != nil, g); len(lb) > 0 {
		tp["loadBalancer"] = lb
	}
	if len(tp) == 0 {
		return nil
	}
	return tp
}

// outlierDetection writes every value through the getters, so the API's defaults (not
// Istio's: its maxEjectionPercent defaults to 10) apply.
func outlierDetection(od *meshv1alpha1.OutlierDetection, g *gaps) map[string]any {
	out := map[string]any{
		"consecutive5xxErrors": int64(od.Consecutive5xx),
		"maxEjectionPercent":   int64(od.GetMaxEjectionPercent()),
	}
	if d, ok := g.duration("circuitBreaker.outlierDetection.interval", od.GetInterval()); ok {
		out["interval"] = d
	}
	if d, ok := g.duration("circuitBreaker.outlierDetection.baseEjectionTime", od.GetBaseEjectionTime()); ok {
		out["baseEjectionTime"] = d
	}
	return out
}

// simpleAlgorithms are Istio's names of the algorithms that need no parameters.
var simpleAlgorithms = map[meshv1alpha1.LoadBalancerAlgorithm]string{
	meshv1alpha1.LoadBalancerRoundRobin:   "ROUND_ROBIN",
	meshv1alpha1.LoadBalancerLeastRequest: "LEAST_REQUEST",
	meshv1alpha1.LoadBalancerRandom:       "RANDOM",
}

// loadBalancer is the algorithm plus the locality setting. Istio fails over by locality only
// when the rule also has outlier detection (without it Envoy never sees a local endpoint as
// unhealthy), so preferClose without it is a gap rather than a setting with no effect.
func loadBalancer(spec *meshv1alpha1.MeshPolicySpec, outlier bool, g *gaps) map[string]any {
	lb := map[string]any{}
	if l := spec.LoadBalancer; l != nil {
		switch {
		case simpleAlgorithms[l.Algorithm] != "":
			lb["simple"] = simpleAlgorithms[l.Algorithm]
		case l.Algorithm == meshv1alpha1.LoadBalancerConsistentHash && l.ConsistentHash != nil:
			lb["consistentHash"] = consistentHash(l.ConsistentHash)
		default:
			g.add("loadBalancer.algorithm", fmt.Sprintf("Istio has no load-balancing algorithm %q without its parameters", l.Algorithm))
		}
	}
	if loc := spec.Locality; loc != nil {
		switch {
		case !loc.PreferClose:
			// Explicitly off: Istio's default mesh config turns locality failover on
			// wherever outlier detection is set.
			lb["localityLbSetting"] = map[string]any{"enabled": false}
		case outlier:
			lb["localityLbSetting"] = map[string]any{"enabled": true}
		default:
			g.add("locality.preferClose", "Istio prefers close endpoints only with outlier detection to tell when they fail; set circuitBreaker.outlierDetection too")
		}
	}
	return lb
}

// consistentHash hashes on a header or a cookie. A cookie without ttl is only read: Envoy
// sets one only when a ttl is given (0s for a session cookie).
func consistentHash(ch *meshv1alpha1.ConsistentHash) map[string]any {
	if ch.Cookie == nil {
		return map[string]any{"httpHeaderName": ch.Header}
	}
	cookie := map[string]any{"name": ch.Cookie.Name}
	if ch.Cookie.TTL != nil {
		cookie["ttl"] = formatDuration(ch.Cookie.TTL.Duration)
	}
	return map[string]any{"httpCookie": cookie}
}
