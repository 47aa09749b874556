package linkerd

import "github.com/sluice-mesh/sluice/internal/policy"

// Caveats shared by several rows.
const (
	// Outbound settings live on the Service and are applied by the callers' proxies.
	byCallers = ", applied by meshed callers' proxies (ignored while a ServiceProfile exists for the Service)"
	// Inbound settings live on a Server per target port.
	perServer = " on a Server per target port (the Service's targetPort on the pods its selector picks)"
	needsMesh = " (the caller must be meshed, as its identity comes from Linkerd's mTLS)"
)

func matrix() policy.Matrix {
	full := func(note string) policy.Support { return policy.Support{Level: policy.Full, Note: note} }
	partial := func(note string) policy.Support { return policy.Support{Level: policy.Partial, Note: note} }
	unsupported := func(note string) policy.Support { return policy.Support{Level: policy.Unsupported, Note: note} }
	return policy.Matrix{
		"mtls.mode": full("Server accessPolicy" + perServer + ": Strict is all-authenticated (deny with authorization), Permissive all-unauthenticated; Disabled is reported unsupported, as Linkerd always uses mTLS between meshed pods"),

		"authorization.rules":                     full("Server accessPolicy deny" + perServer + " plus an AuthorizationPolicy per allowed set of callers; without rules everything is refused except kubelet probes, which Linkerd itself allows while no HTTPRoute is attached"),
		"authorization.rules.from":                full("MeshTLSAuthentication of the rule's callers; an empty from allows any meshed caller under mtls Strict and any caller otherwise (NetworkAuthentication 0.0.0.0/0 and ::/0)"),
		"authorization.rules.from.serviceAccount": full("MeshTLSAuthentication identityRefs kind ServiceAccount" + needsMesh),
		"authorization.rules.from.namespace":      full("MeshTLSAuthentication identityRefs kind Namespace" + needsMesh),
		"authorization.rules.to":                  partial("policy.linkerd.io HTTPRoutes attached to the Servers, after which Linkerd no longer allows kubelet probes on those ports by itself: allow the probe paths with a rule with an empty from (under mtls Strict probes are refused, as kubelet is not meshed)"),
		"authorization.rules.to.methods":          full("HTTPRoute matches[].method"),
		"authorization.rules.to.paths":            full("HTTPRoute Exact or PathPrefix matches. Linkerd matches prefixes by whole segments, so /api/* would also admit /api: unless the rule allows /api as well, the prefix is left out (its requests refused) and reported unsupported, as is a prefix ending inside a segment (/ap*, which Linkerd can only apply as /ap/*, refusing /apple)"),

		"timeouts.request": full("Service annotation timeout.linkerd.io/request" + byCallers),
		"timeouts.idle":    partial("Service annotation timeout.linkerd.io/idle, which limits how long one request may stay idle rather than a connection" + byCallers),

		"retries.attempts":      partial("Service annotation retry.linkerd.io/limit" + byCallers + "; a request whose body exceeds 64 KiB is never retried"),
		"retries.perTryTimeout": full("Service annotation retry.linkerd.io/timeout" + byCallers),
		"retries.retryOn":       partial("Service annotation retry.linkerd.io/http (5xx, gateway-error, and 409 for retriable-4xx); connect-failure and refused-stream need no setting and can't be turned off, as Linkerd only sends requests to connected endpoints and retries refused streams whenever retries are on, and reset is reported unsupported"),

		"circuitBreaker.maxConnections":     unsupported("Linkerd has no per-Service connection limit: the proxy's connection pools and queues are fixed proxy settings"),
		"circuitBreaker.maxPendingRequests": unsupported("Linkerd has no per-Service limit on queued requests: the proxy's queue capacity and fail-fast timeout are fixed proxy settings"),
		"circuitBreaker.maxRequests":        unsupported("The Linkerd policy CRDs Sluice targets have no limit on requests in flight"),

		"circuitBreaker.outlierDetection.consecutive5xx":     partial("Service annotations balancer.linkerd.io/failure-accrual: consecutive and failure-accrual-consecutive-max-failures" + byCallers + "; an endpoint is taken out at the failing response itself, and nothing caps how many endpoints are out at once"),
		"circuitBreaker.outlierDetection.interval":           partial("Linkerd counts failures as responses arrive, so there is no sweep interval: an endpoint is taken out as soon as it reaches consecutive5xx"),
		"circuitBreaker.outlierDetection.baseEjectionTime":   partial("Service annotation balancer.linkerd.io/failure-accrual-consecutive-min-penalty; after it Linkerd sends one probe request and, while probes fail, backs off exponentially with jitter up to failure-accrual-consecutive-max-penalty (this value, at least 5m) instead of multiplying by the ejection count"),
		"circuitBreaker.outlierDetection.maxEjectionPercent": partial("Linkerd has no cap on the endpoints it takes out, so only 100 matches; a lower value is reported unsupported"),

		"rateLimit.requestsPerSecond": partial("HTTPLocalRateLimitPolicy total.requestsPerSecond" + perServer + ", enforced by each pod's proxy on its own (the Service accepts this rate times its replicas); the Server gets accessPolicy all-unauthenticated when neither mtls nor authorization is set"),
		"rateLimit.burst":             partial("Linkerd's rate limit always lets bursts of requestsPerSecond through, so a larger burst is reported unsupported"),

		"loadBalancer.algorithm":                  partial("Linkerd always balances with power of two choices weighted by latency and requests in flight, which is LeastRequest (nothing to write); RoundRobin, Random and ConsistentHash are reported unsupported"),
		"loadBalancer.consistentHash.header":      unsupported("Linkerd has no hash-based load balancing or session affinity"),
		"loadBalancer.consistentHash.cookie.name": unsupported("Linkerd has no hash-based load balancing or session affinity"),
		"loadBalancer.consistentHash.cookie.ttl":  unsupported("Linkerd has no hash-based load balancing or session affinity"),

		"locality.preferClose": partial("Service annotation service.kubernetes.io/topology-mode: Auto, whose EndpointSlice zone hints Linkerd follows; Kubernetes sets hints only while every zone has enough endpoints, and traffic leaves the zone when the hints are removed, not when local endpoints fail"),
	}
}
