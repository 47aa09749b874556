package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MeshPolicy is one mesh-neutral traffic and security policy for a Service, translated into
// the resources of the data plane in the cluster. A field the provider can't express is never
// dropped silently: it is listed in status.unsupported and the policy is not Ready.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mp,categories=sluice
// +kubebuilder:printcolumn:name="Provider",type=string,JSONPath=`.status.provider`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Conflicted",type=string,JSONPath=`.status.conditions[?(@.type=="Conflicted")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name must be at most 63 characters: it is the value of the mesh.sluice.dev/meshpolicy label on every object generated for the policy"
type MeshPolicy struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec MeshPolicySpec `json:"spec"`
	// Defaulted to {} so that a new object shows observedGeneration: -1 ("not yet
	// reconciled") before the controller writes status: kstatus and Flux read it as InProgress.
	// +optional
	// +kubebuilder:default={}
	Status MeshPolicyStatus `json:"status,omitempty"`
}

// MeshPolicySpec is the policy for the target Services.
//
// +kubebuilder:validation:XValidation:rule="has(self.mtls) || has(self.authorization) || has(self.timeouts) || has(self.retries) || has(self.circuitBreaker) || has(self.rateLimit) || has(self.loadBalancer) || has(self.locality)",message="spec must set at least one of mtls, authorization, timeouts, retries, circuitBreaker, rateLimit, loadBalancer or locality"
// +kubebuilder:validation:XValidation:rule="!has(self.retries) || !has(self.retries.perTryTimeout) || !has(self.timeouts) || !has(self.timeouts.request) || duration(self.retries.perTryTimeout) <= duration(self.timeouts.request)",message="spec.retries.perTryTimeout must not exceed spec.timeouts.request",fieldPath=".retries.perTryTimeout"
type MeshPolicySpec struct {
	// TargetRefs are the Services the policy governs, in the policy's namespace.
	// +required
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	TargetRefs []PolicyTargetReference `json:"targetRefs"`

	// Provider is the data plane to translate for; auto picks it from the CRDs installed.
	// Defaults to auto.
	// +optional
	Provider Provider `json:"provider,omitempty"`

	// MTLS is the mutual TLS mode for traffic to the targets.
	// +optional
	MTLS *MTLS `json:"mtls,omitempty"`

	// Authorization, when present, denies by default and allows what its rules allow.
	// +optional
	Authorization *Authorization `json:"authorization,omitempty"`

	// Timeouts of requests to the targets.
	// +optional
	Timeouts *Timeouts `json:"timeouts,omitempty"`

	// Retries of failed requests to the targets.
	// +optional
	Retries *Retries `json:"retries,omitempty"`

	// CircuitBreaker limits connections and ejects failing endpoints.
	// +optional
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`

	// RateLimit caps requests to the targets.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// LoadBalancer is how requests are spread over endpoints.
	// +optional
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`

	// Locality prefers endpoints close to the caller.
	// +optional
	Locality *Locality `json:"locality,omitempty"`
}

// PolicyTargetReference names a Service in the policy's namespace.
type PolicyTargetReference struct {
	// Kind of the target; only Service. Defaults to Service.
	// +optional
	// +kubebuilder:default=Service
	// +kubebuilder:validation:Enum=Service
	Kind string `json:"kind,omitempty"`

	// Name of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
}

// Provider is the data plane a MeshPolicy is translated for.
// +kubebuilder:validation:Enum=auto;gatewayAPI;istio;linkerd;consul;traefik
type Provider string

// The providers.
const (
	ProviderAuto       Provider = "auto"
	ProviderGatewayAPI Provider = "gatewayAPI"
	ProviderIstio      Provider = "istio"
	ProviderLinkerd    Provider = "linkerd"
	ProviderConsul     Provider = "consul"
	ProviderTraefik    Provider = "traefik"
)

// MTLSMode is the mutual TLS mode.
// +kubebuilder:validation:Enum=Strict;Permissive;Disabled
type MTLSMode string

// The mTLS modes.
const (
	MTLSStrict     MTLSMode = "Strict"
	MTLSPermissive MTLSMode = "Permissive"
	MTLSDisabled   MTLSMode = "Disabled"
)

// MTLS sets the mutual TLS mode.
type MTLS struct {
	// Mode of mutual TLS.
	// +required
	Mode MTLSMode `json:"mode"`
}

// Authorization allows what its rules allow and denies everything else.
type Authorization struct {
	// Rules that allow requests; none means deny all.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Rules []AuthorizationRule `json:"rules,omitempty"`
}

// AuthorizationRule allows requests from any of its sources to any of its destinations.
// An empty from means any source; an empty to means any method and path.
type AuthorizationRule struct {
	// From are the allowed sources.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	From []AuthorizationSource `json:"from,omitempty"`

	// To are the allowed methods and paths.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	To []AuthorizationDestination `json:"to,omitempty"`
}

// AuthorizationSource is one service account or one namespace.
//
// +kubebuilder:validation:XValidation:rule="has(self.serviceAccount) != has(self.namespace)",message="spec.authorization.rules[].from[]: set exactly one of serviceAccount or namespace"
type AuthorizationSource struct {
	// ServiceAccount as <namespace>/<name>.
	// +optional
	// +kubebuilder:validation:MaxLength=317
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	ServiceAccount string `json:"serviceAccount,omitempty"`

	// Namespace whose workloads are allowed.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
}

// HTTPMethod is an HTTP request method.
// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;DELETE;CONNECT;OPTIONS;TRACE;PATCH
type HTTPMethod string

// Strings Sluice copies into generated objects exclude control characters: DEL,
// U+0080-U+009F, U+FFFE and U+FFFF make the API server refuse their server-side apply (it reads
// an apply patch as YAML).

// AuthorizationDestination is a set of methods and paths.
//
// +kubebuilder:validation:XValidation:rule="has(self.methods) || has(self.paths)",message="spec.authorization.rules[].to[]: set methods, paths or both"
type AuthorizationDestination struct {
	// Methods allowed; empty means any.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=9
	Methods []HTTPMethod `json:"methods,omitempty"`

	// Paths allowed: exact ("/healthz") or prefix with a trailing "*" ("/api/*"), without
	// control characters.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:items:Pattern=`^/[^*\x00-\x1F\x7F-\x9F\x{FFFE}\x{FFFF}]*\*?$`
	Paths []string `json:"paths,omitempty"`
}

// Timeouts of requests.
//
// +kubebuilder:validation:XValidation:rule="has(self.request) || has(self.idle)",message="spec.timeouts: set request, idle or both"
type Timeouts struct {
	// The duration fields without another bound are capped at 2562047h, about the longest a
	// time.Duration holds: see CanaryStrategy.ScaleDownDelay.

	// Request is the time a whole request may take, retries included.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.timeouts.request must be at most 2562047h"
	Request *metav1.Duration `json:"request,omitempty"`

	// Idle is the time a connection may stay without traffic.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.timeouts.idle must be at most 2562047h"
	Idle *metav1.Duration `json:"idle,omitempty"`
}

// RetryOn is a condition that makes a request retried.
// +kubebuilder:validation:Enum="5xx";gateway-error;reset;connect-failure;retriable-4xx;refused-stream
type RetryOn string

// Retries of failed requests.
type Retries struct {
	// Attempts is the number of retries after the first try.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	Attempts int32 `json:"attempts"`

	// PerTryTimeout is the time one try may take.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.retries.perTryTimeout must be at most 2562047h"
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`

	// RetryOn are the conditions that are retried. Defaults to connect-failure only.
	// (Not "on": YAML 1.1 parsers, kubectl's among them, read an unquoted on: key as true.)
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=6
	RetryOn []RetryOn `json:"retryOn,omitempty"`
}

// CircuitBreaker limits load on the targets and ejects failing endpoints.
//
// +kubebuilder:validation:XValidation:rule="has(self.maxConnections) || has(self.maxPendingRequests) || has(self.maxRequests) || has(self.outlierDetection)",message="spec.circuitBreaker: set at least one of maxConnections, maxPendingRequests, maxRequests or outlierDetection"
type CircuitBreaker struct {
	// MaxConnections to the target at once.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// MaxPendingRequests waiting for a connection.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxPendingRequests *int32 `json:"maxPendingRequests,omitempty"`

	// MaxRequests in flight at once.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxRequests *int32 `json:"maxRequests,omitempty"`

	// OutlierDetection ejects endpoints that keep failing.
	// +optional
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
}

// OutlierDetection ejects endpoints after consecutive server errors.
type OutlierDetection struct {
	// Consecutive5xx errors that eject an endpoint.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Consecutive5xx int32 `json:"consecutive5xx"`

	// Interval between ejection sweeps. Defaults to 10s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.circuitBreaker.outlierDetection.interval must be at most 2562047h"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// BaseEjectionTime an endpoint stays ejected (multiplied by its ejection count). Defaults to 30s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.circuitBreaker.outlierDetection.baseEjectionTime must be at most 2562047h"
	BaseEjectionTime *metav1.Duration `json:"baseEjectionTime,omitempty"`

	// MaxEjectionPercent of endpoints that may be ejected at once. Defaults to 50.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxEjectionPercent *int32 `json:"maxEjectionPercent,omitempty"`
}

// RateLimit caps the request rate with a token bucket.
//
// +kubebuilder:validation:XValidation:rule="!has(self.burst) || self.burst >= self.requestsPerSecond",message="spec.rateLimit.burst must be at least requestsPerSecond",fieldPath=".burst"
type RateLimit struct {
	// RequestsPerSecond allowed on average.
	// +required
	// +kubebuilder:validation:Minimum=1
	RequestsPerSecond int32 `json:"requestsPerSecond"`

	// Burst is the bucket size. Defaults to requestsPerSecond.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Burst *int32 `json:"burst,omitempty"`
}

// LoadBalancerAlgorithm is how requests are spread.
// +kubebuilder:validation:Enum=RoundRobin;LeastRequest;Random;ConsistentHash
type LoadBalancerAlgorithm string

// The load-balancing algorithms.
const (
	LoadBalancerRoundRobin     LoadBalancerAlgorithm = "RoundRobin"
	LoadBalancerLeastRequest   LoadBalancerAlgorithm = "LeastRequest"
	LoadBalancerRandom         LoadBalancerAlgorithm = "Random"
	LoadBalancerConsistentHash LoadBalancerAlgorithm = "ConsistentHash"
)

// LoadBalancer selects the algorithm.
//
// +kubebuilder:validation:XValidation:rule="(self.algorithm == 'ConsistentHash') == has(self.consistentHash)",message="spec.loadBalancer.consistentHash is required with algorithm ConsistentHash and not allowed otherwise"
type LoadBalancer struct {
	// Algorithm of load balancing.
	// +required
	Algorithm LoadBalancerAlgorithm `json:"algorithm"`

	// ConsistentHash is the key of the hash, for algorithm ConsistentHash.
	// +optional
	ConsistentHash *ConsistentHash `json:"consistentHash,omitempty"`
}

// ConsistentHash hashes on a header or a cookie.
//
// +kubebuilder:validation:XValidation:rule="has(self.header) != has(self.cookie)",message="spec.loadBalancer.consistentHash: set exactly one of header or cookie"
type ConsistentHash struct {
	// Header whose value is hashed.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Header string `json:"header,omitempty"`

	// Cookie whose value is hashed.
	// +optional
	Cookie *HashCookie `json:"cookie,omitempty"`
}

// HashCookie is the cookie a consistent hash uses.
type HashCookie struct {
	// Name of the cookie (an HTTP token).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Name string `json:"name"`

	// TTL of the cookie the data plane sets when the request has none.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.loadBalancer.consistentHash.cookie.ttl must be at most 2562047h"
	TTL *metav1.Duration `json:"ttl,omitempty"`
}

// Locality prefers close endpoints.
type Locality struct {
	// PreferClose sends traffic to endpoints in the caller's zone while they are healthy.
	// +required
	PreferClose bool `json:"preferClose"`
}

// MeshPolicyStatus reports what Sluice generated and what it could not express.
type MeshPolicyStatus struct {
	// ObservedGeneration is the spec generation last acted on; -1 before the first reconcile.
	// +optional
	// +kubebuilder:default=-1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Provider chosen (auto resolved).
	// +optional
	Provider Provider `json:"provider,omitempty"`

	// Resources Sluice generated and owns for this policy, and the target Services it
	// annotates (Linkerd). A policy with many targets, ports and rules can generate a lot
	// (Linkerd: a Server, authorizations and routes per port).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Resources []ResourceReference `json:"resources,omitempty"`

	// Unsupported lists the fields the provider can't express, and why.
	// +optional
	// +listType=map
	// +listMapKey=field
	// +kubebuilder:validation:MaxItems=32
	Unsupported []UnsupportedField `json:"unsupported,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, Accepted, Conflicted.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ResourceReference names a generated object.
type ResourceReference struct {
	// APIVersion of the object.
	// +required
	// +kubebuilder:validation:MaxLength=317
	APIVersion string `json:"apiVersion"`
	// Kind of the object.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// Namespace of the object, when not the policy's.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// Name of the object.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// UnsupportedField is a policy field the provider can't express.
type UnsupportedField struct {
	// Field path, e.g. rateLimit or circuitBreaker.outlierDetection.
	// +required
	// +kubebuilder:validation:MaxLength=256
	Field string `json:"field"`
	// Reason the provider can't express it.
	// +required
	// +kubebuilder:validation:MaxLength=1024
	Reason string `json:"reason"`
}

// MeshPolicyList is a list of MeshPolicys.
//
// +kubebuilder:object:root=true
type MeshPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MeshPolicy `json:"items"`
}
