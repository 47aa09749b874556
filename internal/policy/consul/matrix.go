package consul

import (
	"github.com/sluice-mesh/sluice/internal/policy"
)

// Notes shared by several rows.
const (
	noteCallerSideLimit = "Consul sets connection-pool limits only on the calling side (upstreamConfig.limits in each caller's own ServiceDefaults), never on the called service."
	noteOutlier         = "Consul configures outlier detection (upstreamConfig.passiveHealthCheck) only on the calling side, in each caller's own ServiceDefaults, never on the called service."
	noteRateLimit       = "ServiceDefaults rateLimits.instanceLevel, enforced per instance (the service accepts this rate times its instances) and only by Consul Enterprise 1.17+: Consul CE refuses the whole ServiceDefaults, mTLS mode and protocol included, so Sluice writes it only when the manager runs with --consul-enterprise (else it is reported unsupported)."
)

// Matrix says how Consul expresses each policy field. The notes assume Consul CE unless they
// name Enterprise.
func (Provider) Matrix() policy.Matrix {
	return policy.Matrix{
		"mtls.mode": {Level: policy.Partial, Note: "ServiceDefaults mutualTLSMode strict or permissive, which Consul enforces only for proxies in transparent mode (the consul-k8s default). Permissive needs allowEnablingPermissiveMutualTLS: true in the cluster's Mesh entry, and with authorization it is reported unsupported and strict is written instead, since Consul does not enforce intentions on plaintext connections; Disabled is reported unsupported because mesh traffic is always mutual TLS."},

		"authorization.rules":                     {Level: policy.Full, Note: "ServiceIntentions named after each Service, with the one source \"*\": it allows what the rules with an empty from allow and denies everything else."},
		"authorization.rules.from":                {Level: policy.Full, Note: "An empty from is the intention source \"*\"; a rule that names sources allows nobody, since Consul can't match them (see serviceAccount and namespace)."},
		"authorization.rules.from.serviceAccount": {Level: policy.Unsupported, Note: "Consul CE matches an intention source by Consul service name only, and consul-k8s puts all Kubernetes namespaces in one Consul namespace, so the ServiceAccount's namespace can't be matched: a source named after the account would also admit the services of that name in every other namespace. The source is left out, so its rule allows nobody."},
		"authorization.rules.from.namespace":      {Level: policy.Unsupported, Note: "Consul CE has a single namespace for all of Kubernetes, and consul-k8s refuses intention sources that name a namespace, so callers can't be selected by Kubernetes namespace. The source is left out, so its rule allows nobody."},
		"authorization.rules.to":                  {Level: policy.Full, Note: "L7 intention permissions of the source \"*\", ending with a deny for every path; they need Consul protocol http, which Sluice sets in the ServiceDefaults."},
		"authorization.rules.to.methods":          {Level: policy.Full, Note: "Intention permissions http.methods."},
		"authorization.rules.to.paths":            {Level: policy.Full, Note: "Intention permissions http.pathExact, or http.pathPrefix for a trailing \"*\"."},

		"timeouts.request": {Level: policy.Full, Note: "ServiceRouter route destination.requestTimeout (the whole request, retries included)."},
		"timeouts.idle":    {Level: policy.Partial, Note: "ServiceRouter route destination.idleTimeout, which limits how long one request stream may be idle, not a connection."},

		"retries.attempts":      {Level: policy.Full, Note: "ServiceRouter route destination.numRetries."},
		"retries.perTryTimeout": {Level: policy.Unsupported, Note: "Consul's ServiceRouter has no per-try timeout: every try may run until the route's requestTimeout."},
		"retries.retryOn":       {Level: policy.Full, Note: "ServiceRouter route destination.retryOn, Envoy's retry conditions of the same names."},

		"circuitBreaker.maxConnections":                      {Level: policy.Partial, Note: "ServiceDefaults maxInboundConnections, enforced by each instance's own proxy over all callers together, not per caller."},
		"circuitBreaker.maxPendingRequests":                  {Level: policy.Unsupported, Note: noteCallerSideLimit},
		"circuitBreaker.maxRequests":                         {Level: policy.Unsupported, Note: noteCallerSideLimit},
		"circuitBreaker.outlierDetection.consecutive5xx":     {Level: policy.Unsupported, Note: noteOutlier},
		"circuitBreaker.outlierDetection.interval":           {Level: policy.Unsupported, Note: noteOutlier},
		"circuitBreaker.outlierDetection.baseEjectionTime":   {Level: policy.Unsupported, Note: noteOutlier},
		"circuitBreaker.outlierDetection.maxEjectionPercent": {Level: policy.Unsupported, Note: noteOutlier},

		"rateLimit.requestsPerSecond": {Level: policy.Partial, Note: noteRateLimit},
		"rateLimit.burst":             {Level: policy.Partial, Note: "ServiceDefaults rateLimits.instanceLevel.requestsMaxBurst, with the same limits as requestsPerSecond: per instance, Consul Enterprise only (--consul-enterprise)."},

		"loadBalancer.algorithm":                  {Level: policy.Full, Note: "ServiceResolver loadBalancer.policy round_robin, least_request, random, or ring_hash for ConsistentHash."},
		"loadBalancer.consistentHash.header":      {Level: policy.Full, Note: "ServiceResolver loadBalancer.hashPolicies field header."},
		"loadBalancer.consistentHash.cookie.name": {Level: policy.Full, Note: "ServiceResolver loadBalancer.hashPolicies field cookie."},
		"loadBalancer.consistentHash.cookie.ttl":  {Level: policy.Full, Note: "ServiceResolver loadBalancer.hashPolicies cookieConfig.ttl."},

		"locality.preferClose": {Level: policy.Partial, Note: "ServiceResolver prioritizeByLocality mode failover, only in Consul Enterprise and with zones known from the nodes' topology labels: Consul CE refuses the whole ServiceResolver, load balancing included, so Sluice writes it only when the manager runs with --consul-enterprise (else it is reported unsupported)."},
	}
}
