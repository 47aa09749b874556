package traefik

import "github.com/sluice-mesh/sluice/internal/policy"

const (
	noAuthz    = "Traefik sees client IPs, not workload identities (service accounts, namespaces), and has no middleware that allows requests by method and path."
	noTimeouts = "Traefik's Gateway API provider ignores HTTPRoute timeouts and Traefik has no timeout middleware; only its own entry-point and transport settings time requests out."
	noHash     = "Traefik's Gateway API provider sets no sticky cookie or hashing on the Services it routes to."
)

// Matrix says how well Traefik, through its Gateway API provider and Middlewares, expresses
// each policy field.
func (Provider) Matrix() policy.Matrix {
	return policy.Matrix{
		"mtls.mode": {Level: policy.Partial, Note: "Only Disabled: Traefik is a proxy, not a mesh, with no mutual TLS between workloads (BackendTLSPolicy is one-way TLS from Traefik and needs a CA and hostname the policy does not carry)."},

		"authorization.rules":                     {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.from":                {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.from.serviceAccount": {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.from.namespace":      {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.to":                  {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.to.methods":          {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.to.paths":            {Level: policy.Unsupported, Note: noAuthz},

		"timeouts.request": {Level: policy.Unsupported, Note: noTimeouts},
		"timeouts.idle":    {Level: policy.Unsupported, Note: noTimeouts},

		"retries.attempts":      {Level: policy.Full, Note: "Retry middleware attempts, set to attempts + 1 since Traefik counts the first try, with a 25 ms initial backoff."},
		"retries.perTryTimeout": {Level: policy.Unsupported, Note: "Traefik's Retry middleware has no per-try timeout (its timeout only stops further retries) and its Gateway API provider ignores HTTPRoute timeouts."},
		"retries.retryOn":       {Level: policy.Partial, Note: "connect-failure retries only connections that fail before the request is sent; 5xx, gateway-error and retriable-4xx become Retry status ranges (500-599, 502-504, 409), which Traefik retries only for idempotent methods (not POST, PATCH) and bodies up to 2 MB; reset and refused-stream are not retried."},

		"circuitBreaker.maxConnections":                      {Level: policy.Unsupported, Note: "Traefik's Gateway API provider sets no connection limit on the Services it routes to."},
		"circuitBreaker.maxPendingRequests":                  {Level: policy.Unsupported, Note: "Traefik does not queue requests waiting for a backend connection, so there is no pending-request limit."},
		"circuitBreaker.maxRequests":                         {Level: policy.Partial, Note: "InFlightReq middleware amount, counted per Traefik replica, per route and per Host header; requests over it get 429 at once."},
		"circuitBreaker.outlierDetection.consecutive5xx":     {Level: policy.Partial, Note: "A CircuitBreaker middleware that stops the whole route, not one endpoint, when over half the responses of the last 10 s are 5xx; Traefik counts no consecutive errors, so the number itself is not used."},
		"circuitBreaker.outlierDetection.interval":           {Level: policy.Full, Note: "CircuitBreaker checkPeriod (how often the breaker evaluates its condition)."},
		"circuitBreaker.outlierDetection.baseEjectionTime":   {Level: policy.Partial, Note: "CircuitBreaker fallbackDuration: the breaker stays open this long every time (not multiplied by the number of trips), then ramps traffic back over 10 s."},
		"circuitBreaker.outlierDetection.maxEjectionPercent": {Level: policy.Unsupported, Note: "Traefik's circuit breaker cuts off every endpoint of the route at once; it cannot keep a share of endpoints in service."},

		"rateLimit.requestsPerSecond": {Level: policy.Partial, Note: "RateLimit middleware average per 1s period, one bucket per Traefik replica, per route and per Host header; requests over it get 429."},
		"rateLimit.burst":             {Level: policy.Full, Note: "RateLimit middleware burst."},

		"loadBalancer.algorithm":                  {Level: policy.Partial, Note: "Only RoundRobin: Traefik's Gateway API provider always balances a Service's endpoints with weighted round robin."},
		"loadBalancer.consistentHash.header":      {Level: policy.Unsupported, Note: noHash},
		"loadBalancer.consistentHash.cookie.name": {Level: policy.Unsupported, Note: noHash},
		"loadBalancer.consistentHash.cookie.ttl":  {Level: policy.Unsupported, Note: noHash},

		"locality.preferClose": {Level: policy.Unsupported, Note: "Traefik's Gateway API provider balances over all ready endpoints of a Service whatever their zone."},
	}
}
