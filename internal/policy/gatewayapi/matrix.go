package gatewayapi

import "github.com/sluice-mesh/sluice/internal/policy"

const (
	noAuthz        = "Gateway API has no authorization policy: a gateway does not know the caller's service account or namespace, and the experimental ExternalAuth filter only delegates to an external authorization service."
	noCircuit      = "Gateway API has no connection limits or circuit breaking, in the standard or the experimental channel."
	noOutlier      = "Gateway API has no outlier detection (passive health checking), in the standard or the experimental channel."
	noRateLimit    = "Gateway API has no rate limiting, in the standard or the experimental channel."
	noHash         = "Gateway API has no hash-based load balancing; the experimental sessionPersistence is a different mechanism (the gateway issues its own cookie or header)."
	experimentalRt = "; retries need Gateway API's experimental channel (the standard HTTPRoute has no retry field)."
	// extended: timeouts and retry are Extended features, which a conformant gateway may lack.
	extended = ", an Extended feature a gateway may not implement (Traefik 3.7 ignores it)"
)

// Matrix says how well Gateway API's HTTPRoute expresses each policy field.
func (Provider) Matrix() policy.Matrix {
	return policy.Matrix{
		"mtls.mode": {Level: policy.Partial, Note: "Only Disabled, Gateway API's default: it has no mutual TLS between workloads (BackendTLSPolicy is one-way TLS from the gateway and needs a CA and hostname the policy does not carry)."},

		"authorization.rules":                     {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.from":                {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.from.serviceAccount": {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.from.namespace":      {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.to":                  {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.to.methods":          {Level: policy.Unsupported, Note: noAuthz},
		"authorization.rules.to.paths":            {Level: policy.Unsupported, Note: noAuthz},

		"timeouts.request": {Level: policy.Partial, Note: "HTTPRoute rules[].timeouts.request (the whole request, retries included)" + extended + "."},
		"timeouts.idle":    {Level: policy.Unsupported, Note: "HTTPRoute timeouts have no idle timeout; connection idle timeouts are left to each implementation."},

		"retries.attempts":      {Level: policy.Partial, Note: "HTTPRoute rules[].retry.attempts" + extended + experimentalRt},
		"retries.perTryTimeout": {Level: policy.Partial, Note: "HTTPRoute rules[].timeouts.backendRequest (each try)" + extended + experimentalRt},
		"retries.retryOn":       {Level: policy.Partial, Note: "HTTPRoute rules[].retry.codes: 5xx becomes only 500, 502, 503 and 504 (the codes every implementation must support), gateway-error 502-504, retriable-4xx 409, and connection errors (connect-failure, reset, refused-stream) are retried whenever retries are set if the gateway follows the spec's SHOULD" + experimentalRt},

		"circuitBreaker.maxConnections":                      {Level: policy.Unsupported, Note: noCircuit},
		"circuitBreaker.maxPendingRequests":                  {Level: policy.Unsupported, Note: noCircuit},
		"circuitBreaker.maxRequests":                         {Level: policy.Unsupported, Note: noCircuit},
		"circuitBreaker.outlierDetection.consecutive5xx":     {Level: policy.Unsupported, Note: noOutlier},
		"circuitBreaker.outlierDetection.interval":           {Level: policy.Unsupported, Note: noOutlier},
		"circuitBreaker.outlierDetection.baseEjectionTime":   {Level: policy.Unsupported, Note: noOutlier},
		"circuitBreaker.outlierDetection.maxEjectionPercent": {Level: policy.Unsupported, Note: noOutlier},

		"rateLimit.requestsPerSecond": {Level: policy.Unsupported, Note: noRateLimit},
		"rateLimit.burst":             {Level: policy.Unsupported, Note: noRateLimit},

		"loadBalancer.algorithm":                  {Level: policy.Unsupported, Note: "Gateway API has no load-balancing algorithm setting; each implementation uses its own default."},
		"loadBalancer.consistentHash.header":      {Level: policy.Unsupported, Note: noHash},
		"loadBalancer.consistentHash.cookie.name": {Level: policy.Unsupported, Note: noHash},
		"loadBalancer.consistentHash.cookie.ttl":  {Level: policy.Unsupported, Note: noHash},

		"locality.preferClose": {Level: policy.Unsupported, Note: "Gateway API has no locality setting; whether a gateway prefers endpoints in its own zone depends on the implementation."},
	}
}
