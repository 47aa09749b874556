package istio

import "github.com/sluice-mesh/sluice/internal/policy"

// Caveats shared by several rows.
const (
	// A VirtualService for a host replaces Istio's default route for it, and sidecars use one
	// per host: two (a user's, or one Istio makes from a GAMMA HTTPRoute) are not merged.
	routeCaveat = "; sidecars use one VirtualService per host, so it would conflict with another VirtualService for the Service, and it does not apply to traffic from ingress gateways. For a Service a GAMMA HTTPRoute routes (a Rollout's east-west route), the route's rules get timeouts.request and retry instead (retry needs the Gateway API experimental channel)"
	// Envoy's circuit breakers count per proxy, not per destination.
	perCaller = ", counted by each calling sidecar on its own, so the Service can see that limit from every caller at once"
	// Peer identities come from the caller's mTLS certificate.
	needsMTLS   = "; the caller needs an Istio mTLS identity, so plaintext callers are denied"
	noRateLimit = "Istio has no rate-limit resource: its local rate limit takes an EnvoyFilter, which has no compatibility guarantee across Istio versions"
)

func matrix() policy.Matrix {
	full := func(note string) policy.Support { return policy.Support{Level: policy.Full, Note: note} }
	partial := func(note string) policy.Support { return policy.Support{Level: policy.Partial, Note: note} }
	unsupported := func(note string) policy.Support { return policy.Support{Level: policy.Unsupported, Note: note} }
	return policy.Matrix{
		"mtls.mode": partial("PeerAuthentication selecting the Service's pods by its selector: STRICT for the whole pods, so their ports serving other Services get stricter too; PERMISSIVE and DISABLE only on the Service's target ports (portLevelMtls), as they would loosen the other ports, and a target port given by name takes the numbers the Service's EndpointSlices resolve it to (reported unsupported while it has no endpoint), since Istio takes ports by number"),

		"authorization.rules":                     partial("ALLOW AuthorizationPolicy selecting the Service's pods by its selector, each rule limited to the Service's target ports (without rules it matches nothing: deny all); Istio then also denies the pods' other ports, those of other Services included, unless another ALLOW policy allows them, and a target port given by name takes the numbers the Service's EndpointSlices resolve it to (reported unsupported, and denied, while it has no endpoint: the policy is applied again when endpoints appear), since Istio matches ports by number"),
		"authorization.rules.from":                full("AuthorizationPolicy rules[].from[].source.principals; an empty list allows any caller"),
		"authorization.rules.from.serviceAccount": full(`source.principals "cluster.local/ns/<namespace>/sa/<name>", which Istio reads in the mesh's trust domain and its aliases` + needsMTLS),
		"authorization.rules.from.namespace":      full(`source.principals "cluster.local/ns/<namespace>/sa/*": the namespace's service accounts in the mesh's trust domain and its aliases (source.namespaces would match any trust domain)` + needsMTLS),
		"authorization.rules.to":                  full("AuthorizationPolicy rules[].to[].operation, with the Service's target ports; an empty list allows any request to those ports"),
		"authorization.rules.to.methods":          full("operation.methods; HTTP only: on a plain TCP port a rule naming methods matches nothing"),
		"authorization.rules.to.paths":            full(`operation.paths, exact or prefix ("/api/*"), matched after Istio's path normalization; HTTP only`),

		"timeouts.request": partial("VirtualService http[].timeout on a route to the Service" + routeCaveat),
		"timeouts.idle":    full("DestinationRule connectionPool.http.idleTimeout (HTTP ports) and connectionPool.tcp.idleTimeout (TCP ports)"),

		"retries.attempts":      partial("VirtualService http[].retries.attempts" + routeCaveat),
		"retries.perTryTimeout": partial("VirtualService http[].retries.perTryTimeout" + routeCaveat),
		"retries.retryOn":       partial("VirtualService http[].retries.retryOn, comma-separated Envoy retry conditions" + routeCaveat),

		"circuitBreaker.maxConnections":     partial("DestinationRule connectionPool.tcp.maxConnections" + perCaller),
		"circuitBreaker.maxPendingRequests": partial("DestinationRule connectionPool.http.http1MaxPendingRequests (HTTP/1.1 and HTTP/2)" + perCaller),
		"circuitBreaker.maxRequests":        partial("DestinationRule connectionPool.http.http2MaxRequests, concurrent requests over HTTP/1.1 and HTTP/2" + perCaller),

		"circuitBreaker.outlierDetection.consecutive5xx":     full("DestinationRule outlierDetection.consecutive5xxErrors; with Istio's default mesh config it also turns on locality failover unless locality.preferClose is false"),
		"circuitBreaker.outlierDetection.interval":           full("DestinationRule outlierDetection.interval"),
		"circuitBreaker.outlierDetection.baseEjectionTime":   full("DestinationRule outlierDetection.baseEjectionTime, multiplied by the ejection count"),
		"circuitBreaker.outlierDetection.maxEjectionPercent": full("DestinationRule outlierDetection.maxEjectionPercent (the API's default 50 is written; Istio's own is 10)"),

		"rateLimit.requestsPerSecond": unsupported(noRateLimit),
		"rateLimit.burst":             unsupported(noRateLimit),

		"loadBalancer.algorithm":                  full("DestinationRule loadBalancer.simple ROUND_ROBIN, LEAST_REQUEST or RANDOM, or loadBalancer.consistentHash (ring hash)"),
		"loadBalancer.consistentHash.header":      full("DestinationRule loadBalancer.consistentHash.httpHeaderName"),
		"loadBalancer.consistentHash.cookie.name": full("DestinationRule loadBalancer.consistentHash.httpCookie.name; without a ttl Envoy reads the cookie but never sets it"),
		"loadBalancer.consistentHash.cookie.ttl":  full("DestinationRule loadBalancer.consistentHash.httpCookie.ttl: Envoy sets the cookie with this lifetime when a request has none (0s: a session cookie)"),

		"locality.preferClose": partial("DestinationRule loadBalancer.localityLbSetting.enabled; Istio keeps traffic in the caller's zone only together with circuitBreaker.outlierDetection (required when true), and moves traffic out of the zone gradually as its endpoints are ejected rather than only once all have failed"),
	}
}
