package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Rollout releases new revisions of a Deployment through two slot Deployments that Sluice owns
// (<rollout>-a and <rollout>-b), moving traffic between them through a Gateway API HTTPRoute
// and rolling back by itself when its HealthGates fail.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.currentReplicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=sro,categories=sluice
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.canaryWeight`,description="Percent of traffic on the canary slot"
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.currentStep`
// +kubebuilder:printcolumn:name="Verdict",type=string,JSONPath=`.status.analysis.verdict`,description="Verdict of the last gate check"
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name must be at most 63 characters: it is the value of the mesh.sluice.dev/rollout label on the slots, their pods and Services"
// +kubebuilder:validation:XValidation:rule="has(self.spec.service.name) || (self.metadata.name.size() <= 61 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$'))",message="metadata.name must be a DNS-1035 label (a-z, 0-9 and '-', starting with a letter, not ending with '-') of at most 61 characters when spec.service.name is unset: the Services are named <name>, <name>-a and <name>-b"
// +kubebuilder:validation:XValidation:rule="!has(self.spec.strategy.blueGreen) || !has(self.spec.strategy.blueGreen.previewService) || self.spec.strategy.blueGreen.previewService != (has(self.spec.service.name) ? self.spec.service.name : self.metadata.name)",message="spec.strategy.blueGreen.previewService must differ from the rollout's Service name"
type Rollout struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec RolloutSpec `json:"spec"`
	// Defaulted to {} so that a new object shows observedGeneration: -1 ("not yet
	// reconciled") before the controller writes status: kstatus and Flux read it as InProgress.
	// +optional
	// +kubebuilder:default={}
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutSpec is what a Rollout releases, how it moves traffic and how it judges health.
//
// +kubebuilder:validation:XValidation:rule="!has(self.strategy.canary) || !has(self.strategy.canary.steps) || !self.strategy.canary.steps.exists(s, has(s.analysis)) || has(self.analysis)",message="spec.analysis is required when a canary step has analysis",fieldPath=".analysis"
// +kubebuilder:validation:XValidation:rule="!has(self.strategy.blueGreen) || !has(self.strategy.blueGreen.prePromotionChecks) || self.strategy.blueGreen.prePromotionChecks == 0 || has(self.analysis)",message="spec.analysis is required when spec.strategy.blueGreen.prePromotionChecks is above 0",fieldPath=".analysis"
type RolloutSpec struct {
	// TargetRef names the Deployment the user owns in Git. Sluice reads its pod template and
	// scales it to zero; it never edits the template.
	// +required
	TargetRef TargetReference `json:"targetRef"`

	// Service is the apex Service clients call; Sluice also creates <name>-a and <name>-b.
	// +required
	Service ServiceSpec `json:"service"`

	// TrafficRouting says how traffic is split between the slots.
	// +required
	TrafficRouting TrafficRouting `json:"trafficRouting"`

	// Strategy is how a new revision is released: exactly one of canary or blueGreen.
	// +required
	Strategy RolloutStrategy `json:"strategy"`

	// Analysis names the HealthGates that judge the canary and how their verdicts count.
	// +optional
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`

	// ProgressDeadline is how long canary pods may take to become ready before the release is
	// rolled back. Defaults to 10m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="spec.progressDeadline must be at least 10s"
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`

	// Paused freezes the release where it is: no weight change, no promotion, no rollback.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// Replicas is the pod count the stable slot runs (the canary is sized from it and its
	// weight). Unset: the target Deployment's spec.replicas. An autoscaler (a
	// HorizontalPodAutoscaler or a KEDA ScaledObject whose scaleTargetRef is this Rollout)
	// writes it through the scale subresource: leave it out of Git then. Sluice sets it once,
	// to the current count, when an autoscaler targets the Rollout and it is unset (the
	// autoscaler can't read a scale without it). 0 is accepted (KEDA writes it) but every
	// active slot keeps at least one pod: Sluice never scales a served Rollout to nothing.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	Replicas *int32 `json:"replicas,omitempty"`

	// ConfigTracking releases changes of the ConfigMaps and Secrets the target's pod template
	// references like changes of the template itself.
	// +optional
	ConfigTracking *ConfigTracking `json:"configTracking,omitempty"`
}

// ConfigTracking: each revision runs copies of the ConfigMaps and Secrets its pod template
// references (env, envFrom, volumes, projected volumes), made under content-hashed names,
// immutable, in the Rollout's namespace. A change of a source object is a new revision:
// canary, gates, rollback (the stable slot keeps its copies). Copies no slot uses are deleted.
type ConfigTracking struct {
	// Enabled turns config tracking on.
	// +required
	Enabled bool `json:"enabled"`
}

// The names of referenced objects are DNS-1123 subdomains, as the objects' own names are: a
// name with a "/" would turn the webhooks' and controllers' GET into a request for a subresource.

// TargetReference names the Deployment a Rollout releases.
type TargetReference struct {
	// APIVersion of the target; only apps/v1 is supported.
	// +optional
	// +kubebuilder:validation:Enum=apps/v1
	APIVersion string `json:"apiVersion,omitempty"`

	// Kind of the target; only Deployment is supported.
	// +optional
	// +kubebuilder:validation:Enum=Deployment
	Kind string `json:"kind,omitempty"`

	// Name of the Deployment, in the Rollout's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// ServiceSpec describes the Services Sluice manages for a Rollout.
type ServiceSpec struct {
	// Name of the apex Service. Defaults to the Rollout's name.
	// +optional
	// +kubebuilder:validation:MaxLength=61
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name,omitempty"`

	// Port the Services expose.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// TargetPort is the container port (number or name) traffic goes to. Defaults to port.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? (self >= 1 && self <= 65535) : self.size() <= 15 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && self.matches('[a-z]') && !self.contains('--')",message="spec.service.targetPort must be a port number 1-65535 or an IANA port name: at most 15 characters of a-z, 0-9 and '-', with at least one letter, no '-' at either end and no '--'"
	TargetPort *intstr.IntOrString `json:"targetPort,omitempty"`
}

// TrafficRouting says which data plane API carries the traffic split.
type TrafficRouting struct {
	// GatewayAPI splits traffic with a Gateway API HTTPRoute.
	// +required
	GatewayAPI GatewayAPIRouting `json:"gatewayAPI"`
}

// GatewayAPIRouting is either a route Sluice generates (parentRefs) or an existing route whose
// Sluice-owned backendRefs it drives (httpRouteRef).
//
// +kubebuilder:validation:XValidation:rule="has(self.parentRefs) != has(self.httpRouteRef)",message="spec.trafficRouting.gatewayAPI: set exactly one of parentRefs (generate a route) or httpRouteRef (drive an existing route)"
// +kubebuilder:validation:XValidation:rule="!has(self.hostnames) || has(self.parentRefs)",message="spec.trafficRouting.gatewayAPI.hostnames is only allowed with parentRefs: an existing route keeps its own hostnames",fieldPath=".hostnames"
type GatewayAPIRouting struct {
	// ParentRefs are the Gateways (north-south) or Services (GAMMA, east-west) the generated
	// HTTPRoute attaches to. Refs to the same parent must all set sectionName or all leave it
	// unset (likewise port), each with a different sectionName, as the Gateway API requires of
	// the route's parentRefs.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(p1, self.all(p2, !((has(p1.kind) ? p1.kind : 'Gateway') == (has(p2.kind) ? p2.kind : 'Gateway') && p1.name == p2.name && (has(p1.__namespace__) ? p1.__namespace__ : '') == (has(p2.__namespace__) ? p2.__namespace__ : '')) || (has(p1.sectionName) == has(p2.sectionName) && has(p1.port) == has(p2.port))))",message="spec.trafficRouting.gatewayAPI.parentRefs: entries for the same parent (kind, name and namespace) must all set sectionName or all leave it unset, and likewise port"
	// +kubebuilder:validation:XValidation:rule="self.all(p1, self.exists_one(p2, ((has(p1.kind) ? p1.kind : 'Gateway') == (has(p2.kind) ? p2.kind : 'Gateway') && p1.name == p2.name && (has(p1.__namespace__) ? p1.__namespace__ : '') == (has(p2.__namespace__) ? p2.__namespace__ : '')) && (has(p1.sectionName) ? has(p2.sectionName) && p1.sectionName == p2.sectionName : !has(p2.sectionName))))",message="spec.trafficRouting.gatewayAPI.parentRefs: the same parent (kind, name and namespace) may be listed more than once only with a different sectionName each time"
	ParentRefs []ParentReference `json:"parentRefs,omitempty"`

	// Hostnames of the generated HTTPRoute.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	Hostnames []Hostname `json:"hostnames,omitempty"`

	// HTTPRouteRef names an existing HTTPRoute in the Rollout's namespace. Sluice only changes
	// the backendRefs that point at the rollout's Services; everything else stays as it is.
	// +optional
	HTTPRouteRef *LocalObjectReference `json:"httpRouteRef,omitempty"`

	// Probe proves through the data plane, before any weight moves to a slot and before a
	// pause or an analysis window starts counting, that the slot answers and that the gateway
	// serves the split Sluice wrote (route status says only that the gateway accepted it).
	// +optional
	Probe *DataPlaneProbe `json:"probe,omitempty"`
}

// ProbeMode says how the data-plane probe gates a release.
// +kubebuilder:validation:Enum=Required;BestEffort;Disabled
type ProbeMode string

// The probe modes.
const (
	// ProbeRequired: no weight moves and no time counts without a proof. A Gateway the manager
	// can't reach holds the release (say so in status) until it can.
	ProbeRequired ProbeMode = "Required"
	// ProbeBestEffort: like Required, except where no probe is possible (an east-west route,
	// a Gateway without an address, an address the manager gets no answer from): there route
	// status stands in, and TrafficApplied says so (reason NotProbed). Any answer from the
	// Gateway stays authoritative.
	ProbeBestEffort ProbeMode = "BestEffort"
	// ProbeDisabled: route status alone says the split is in force.
	ProbeDisabled ProbeMode = "Disabled"
)

// DataPlaneProbe configures the data-plane probe: a rule in the route that only a request
// with Sluice's probe header and token matches, routed to one slot, answered with the version
// of the split written with it.
type DataPlaneProbe struct {
	// Mode is Required, BestEffort or Disabled. Defaults to BestEffort.
	// +optional
	Mode ProbeMode `json:"mode,omitempty"`

	// Address overrides where probes are sent (scheme://host[:port]), for a Gateway whose
	// status address is not reachable from the manager or does not serve the listener's port
	// (a Service in front of it that maps ports, say). The route's hostname is sent as Host.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^https?://[^/\s]+$`
	Address string `json:"address,omitempty"`

	// Path of the probe request. Defaults to the path of the pods' readiness probe on the
	// Service's target port, else "/". It becomes an Exact path match of the route, so it
	// must be a path the Gateway API accepts there.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/([-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*$`
	// +kubebuilder:validation:XValidation:rule="!self.contains('//') && !self.contains('/./') && !self.contains('/../') && !self.endsWith('/.') && !self.endsWith('/..') && !self.contains('%2f') && !self.contains('%2F')",message="spec.trafficRouting.gatewayAPI.probe.path must be a normalized path: no '//', no '.' or '..' segment and no encoded '/' (%2F)"
	Path string `json:"path,omitempty"`
}

// Hostname is a DNS name, optionally with a leading wildcard label.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
type Hostname string

// ParentReference is a Gateway or, for GAMMA east-west routing, a Service.
//
// +kubebuilder:validation:XValidation:rule="!has(self.group) || ((has(self.kind) && self.kind == 'Service') ? self.group.size() == 0 : self.group == 'gateway.networking.k8s.io')",message="parentRefs[].group must be \"\" for kind Service and gateway.networking.k8s.io for kind Gateway"
type ParentReference struct {
	// Group of the parent: gateway.networking.k8s.io for a Gateway, "" for a Service.
	// Derived from kind when unset.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Group *string `json:"group,omitempty"`

	// Kind of the parent. Defaults to Gateway.
	// +optional
	// +kubebuilder:validation:Enum=Gateway;Service
	Kind string `json:"kind,omitempty"`

	// Namespace of the parent. Defaults to the Rollout's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// Name of the parent.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// SectionName selects one listener of a Gateway (or port name of a Service).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SectionName string `json:"sectionName,omitempty"`

	// Port selects one port of the parent.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// RolloutStrategy is exactly one of canary or blueGreen.
//
// +kubebuilder:validation:XValidation:rule="has(self.canary) != has(self.blueGreen)",message="spec.strategy: set exactly one of canary or blueGreen"
type RolloutStrategy struct {
	// Canary moves traffic to the new revision in steps.
	// +optional
	Canary *CanaryStrategy `json:"canary,omitempty"`

	// BlueGreen runs the new revision beside the stable one and switches all traffic at once.
	// +optional
	BlueGreen *BlueGreenStrategy `json:"blueGreen,omitempty"`
}

// CanaryStrategy moves traffic by explicit steps, or by the stepWeight/maxWeight shorthand
// (one step every analysis interval).
//
// +kubebuilder:validation:XValidation:rule="has(self.steps) != has(self.stepWeight)",message="spec.strategy.canary: set exactly one of steps or stepWeight"
// +kubebuilder:validation:XValidation:rule="!has(self.maxWeight) || has(self.stepWeight)",message="spec.strategy.canary.maxWeight is only allowed with stepWeight",fieldPath=".maxWeight"
// +kubebuilder:validation:XValidation:rule="!has(self.maxWeight) || !has(self.stepWeight) || self.maxWeight >= self.stepWeight",message="spec.strategy.canary.maxWeight must be at least stepWeight",fieldPath=".maxWeight"
type CanaryStrategy struct {
	// Steps run in order; promotion follows the last one.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:XValidation:rule="self.filter(s, has(s.setWeight)).map(s, s.setWeight).isSorted()",message="spec.strategy.canary.steps: setWeight values must not decrease from one step to the next"
	Steps []CanaryStep `json:"steps,omitempty"`

	// StepWeight is the weight added at every analysis interval (shorthand for steps).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	StepWeight *int32 `json:"stepWeight,omitempty"`

	// MaxWeight is the highest canary weight before promotion, with stepWeight. Defaults to 100.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	MaxWeight *int32 `json:"maxWeight,omitempty"`

	// Match sends matching requests to the canary only (A/B testing), whatever the weights.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	Match []RouteMatch `json:"match,omitempty"`

	// Mirror shadows a share of the stable traffic to the canary; responses are discarded.
	// +optional
	Mirror *Mirror `json:"mirror,omitempty"`

	// The duration fields without another bound are capped at 2562047h, about the longest a
	// time.Duration holds: a longer one (2562048h) matches the pattern but does not decode, and
	// CEL's duration() fails on it, so the API server rejects it naming the field.

	// ScaleDownDelay keeps the old slot running this long after promotion or rollback, so a
	// quick return to it finds warm pods. Defaults to 30s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.strategy.canary.scaleDownDelay must be at most 2562047h"
	ScaleDownDelay *metav1.Duration `json:"scaleDownDelay,omitempty"`
}

// CanaryStep is exactly one of setWeight, pause or analysis.
//
// +kubebuilder:validation:XValidation:rule="[has(self.setWeight), has(self.pause), has(self.analysis)].filter(x, x).size() == 1",message="each of spec.strategy.canary.steps must set exactly one of setWeight, pause or analysis"
type CanaryStep struct {
	// SetWeight moves this percent of traffic to the canary.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SetWeight *int32 `json:"setWeight,omitempty"`

	// Pause waits: for duration, or until a promote action when duration is unset.
	// +optional
	Pause *PauseStep `json:"pause,omitempty"`

	// Analysis waits for a number of passing gate checks.
	// +optional
	Analysis *AnalysisStep `json:"analysis,omitempty"`
}

// PauseStep waits for a duration, or for a manual promote when no duration is set.
type PauseStep struct {
	// Duration of the pause; unset waits for a promote action.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.strategy.canary.steps[].pause.duration must be at most 2562047h"
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// AnalysisStep requires a number of passing gate checks before the next step.
type AnalysisStep struct {
	// Checks is how many consecutive passing checks are required.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Checks int32 `json:"checks"`
}

// RouteMatch selects requests by headers, query parameters or cookies; all conditions of one
// match must hold, any of the matches may.
//
// +kubebuilder:validation:XValidation:rule="has(self.headers) || has(self.queryParams) || has(self.cookies)",message="spec.strategy.canary.match[]: set at least one of headers, queryParams or cookies"
// +kubebuilder:validation:XValidation:rule="!has(self.headers) || self.headers.all(h1, self.headers.exists_one(h2, h1.name.lowerAscii() == h2.name.lowerAscii()))",message="spec.strategy.canary.match[].headers: each header name may appear once (names are case-insensitive)",fieldPath=".headers"
// +kubebuilder:validation:XValidation:rule="!has(self.queryParams) || self.queryParams.all(q1, self.queryParams.exists_one(q2, q1.name == q2.name))",message="spec.strategy.canary.match[].queryParams: each query parameter name may appear once",fieldPath=".queryParams"
// +kubebuilder:validation:XValidation:rule="!has(self.queryParams) || self.queryParams.all(q, q.value.size() <= 1024)",message="spec.strategy.canary.match[].queryParams: a query parameter value may have at most 1024 characters (the Gateway API's limit; header values may have 4096)",fieldPath=".queryParams"
// +kubebuilder:validation:XValidation:rule="!has(self.cookies) || self.cookies.all(c1, self.cookies.exists_one(c2, c1.name == c2.name))",message="spec.strategy.canary.match[].cookies: each cookie name may appear once",fieldPath=".cookies"
// +kubebuilder:validation:XValidation:rule="!has(self.cookies) || !has(self.headers) || !self.headers.exists(h, h.name.lowerAscii() == 'cookie')",message="spec.strategy.canary.match[]: a Cookie header condition and cookies can't be combined (cookies are matched on the Cookie header); use one or the other",fieldPath=".headers"
type RouteMatch struct {
	// Headers that must match.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Headers []ValueMatch `json:"headers,omitempty"`

	// QueryParams that must match.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	QueryParams []ValueMatch `json:"queryParams,omitempty"`

	// Cookie limits: internal/traffic/gatewayapi/match.go writes one regular expression for a
	// match's cookies, with one alternative per order (n! of them), and refuses one over 4096
	// bytes. The worst case of 2 cookies is 56 + 2 orders * 2 cookies * (512 bytes of name,
	// every character escaped, + "=" + 496 bytes of value, 124 four-byte runes) = 4092 bytes
	// (TestCookieRegexFitsTheSchemaLimits). Three cookies (6 orders) would leave about 200
	// bytes per cookie: too little for names of the allowed length.

	// Cookies that must be present with this exact value. At most 2: they are matched with one
	// regular expression on the Cookie header, with one alternative per order, and the Gateway
	// API caps its length.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=2
	Cookies []CookieMatch `json:"cookies,omitempty"`
}

// MatchType is how a value is compared.
// +kubebuilder:validation:Enum=Exact;RegularExpression
type MatchType string

// The match types.
const (
	MatchExact             MatchType = "Exact"
	MatchRegularExpression MatchType = "RegularExpression"
)

// Match values exclude control characters: besides meaning nothing in a header or query, DEL,
// U+0080-U+009F, U+FFFE and U+FFFF make the API server refuse the server-side apply of the
// route ("yaml: control characters are not allowed": it reads an apply patch as YAML).

// ValueMatch compares one named header or query parameter.
type ValueMatch struct {
	// Type of comparison. Defaults to Exact.
	// +optional
	Type MatchType `json:"type,omitempty"`

	// Name of the header or query parameter.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Name string `json:"name"`

	// Value to compare with; no control characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:Pattern=`^[^\x00-\x08\x0A-\x1F\x7F-\x9F\x{FFFE}\x{FFFF}]+$`
	Value string `json:"value"`
}

// CookieMatch requires a cookie with an exact value.
type CookieMatch struct {
	// Name of the cookie.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	Name string `json:"name"`

	// Value the cookie must have (at most 124 characters: see cookies).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=124
	// +kubebuilder:validation:Pattern=`^[^;,\s"\x00-\x1F\x7F-\x9F\x{FFFE}\x{FFFF}]+$`
	Value string `json:"value"`
}

// Mirror shadows requests to the canary.
type Mirror struct {
	// Percent of requests mirrored to the canary.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	Percent int32 `json:"percent"`
}

// BlueGreenStrategy runs the new revision in the idle slot, reachable through a preview
// Service, and switches all traffic to it at once.
type BlueGreenStrategy struct {
	// PreviewService is a Service that reaches the new slot before the switch.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	PreviewService string `json:"previewService,omitempty"`

	// PrePromotionChecks is how many passing gate checks on the preview are required before the
	// switch. 0 switches as soon as the new slot is ready.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	PrePromotionChecks *int32 `json:"prePromotionChecks,omitempty"`

	// AutoPromote switches once the checks pass; otherwise the release waits for promote.
	// +optional
	AutoPromote bool `json:"autoPromote,omitempty"`

	// ScaleDownDelay keeps the old slot running this long after the switch. Defaults to 30s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.strategy.blueGreen.scaleDownDelay must be at most 2562047h"
	ScaleDownDelay *metav1.Duration `json:"scaleDownDelay,omitempty"`
}

// OnUnreachable is what a release does while Prometheus can't be reached.
// +kubebuilder:validation:Enum=Hold;Rollback
type OnUnreachable string

// The OnUnreachable choices.
const (
	// OnUnreachableHold freezes the weights until Prometheus answers again (or maxHold ends).
	OnUnreachableHold OnUnreachable = "Hold"
	// OnUnreachableRollback treats an unreachable Prometheus as a failed check.
	OnUnreachableRollback OnUnreachable = "Rollback"
)

// RolloutAnalysis names the HealthGates that judge a release and how their verdicts count.
//
// +kubebuilder:validation:XValidation:rule="!has(self.maxHold) || !has(self.interval) || duration(self.maxHold) >= duration(self.interval)",message="spec.analysis.maxHold must be at least spec.analysis.interval",fieldPath=".maxHold"
type RolloutAnalysis struct {
	// Interval between gate checks. Defaults to 30s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="spec.analysis.interval must be at least 1s"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// HealthGates in the Rollout's namespace; every one must pass for a check to pass.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	HealthGates []LocalObjectReference `json:"healthGates"`

	// FailureLimit is how many failed checks a release tolerates; one more rolls it back.
	// Defaults to 2.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	FailureLimit *int32 `json:"failureLimit,omitempty"`

	// MinSamples is how many requests a gate's window needs before its verdict counts;
	// fewer makes the check Inconclusive. Defaults to 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000000
	MinSamples *int32 `json:"minSamples,omitempty"`

	// OnUnreachable is what happens while Prometheus can't be reached. Defaults to Hold.
	// +optional
	OnUnreachable OnUnreachable `json:"onUnreachable,omitempty"`

	// MaxHold is how long a release holds on an unreachable Prometheus before it is Stalled.
	// It is never promoted automatically while holding. Defaults to 10m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('2562047h')",message="spec.analysis.maxHold must be at most 2562047h"
	MaxHold *metav1.Duration `json:"maxHold,omitempty"`

	// InconclusiveLimit is how many inconclusive checks in a row (no data, too few samples,
	// NaN, a query Prometheus rejects) a release tolerates. One more holds the weights where
	// they are and marks the Rollout Stalled until a check passes or someone acts: a gate
	// that never produces data (a typo in a metric name) must not keep canary traffic in
	// place under an analysis that can never end. Checks made before the query window lies
	// inside the release do not count. Defaults to 10.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	InconclusiveLimit *int32 `json:"inconclusiveLimit,omitempty"`
}

// RolloutPhase is where a Rollout is in its life.
// +kubebuilder:validation:Enum=Initializing;Healthy;Progressing;Paused;Holding;Promoting;RollingBack;RolledBack;Failed
type RolloutPhase string

// The Rollout phases.
const (
	PhaseInitializing RolloutPhase = "Initializing"
	PhaseHealthy      RolloutPhase = "Healthy"
	PhaseProgressing  RolloutPhase = "Progressing"
	PhasePaused       RolloutPhase = "Paused"
	PhaseHolding      RolloutPhase = "Holding"
	PhasePromoting    RolloutPhase = "Promoting"
	PhaseRollingBack  RolloutPhase = "RollingBack"
	PhaseRolledBack   RolloutPhase = "RolledBack"
	PhaseFailed       RolloutPhase = "Failed"
)

// Slot is one of the two slot Deployments.
// +kubebuilder:validation:Enum=a;b
type Slot string

// The two slots.
const (
	SlotA Slot = "a"
	SlotB Slot = "b"
)

// RolloutStatus is what Sluice observed and did.
type RolloutStatus struct {
	// ObservedGeneration is the spec generation last acted on; -1 before the first reconcile.
	// +optional
	// +kubebuilder:default=-1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Phase of the Rollout.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`

	// StableSlot is the slot serving the stable revision.
	// +optional
	StableSlot Slot `json:"stableSlot,omitempty"`

	// StableRevision is the pod-template hash served by the stable slot.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	StableRevision string `json:"stableRevision,omitempty"`

	// CanaryRevision is the pod-template hash being released, if any.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	CanaryRevision string `json:"canaryRevision,omitempty"`

	// CurrentStep is the index of the canary step under way.
	// +optional
	CurrentStep *int32 `json:"currentStep,omitempty"`

	// CanaryWeight is the percent of traffic on the canary slot.
	// +optional
	CanaryWeight int32 `json:"canaryWeight,omitempty"`

	// Replicas is the pod count of the stable slot (and of a blue-green preview, or a canary
	// being promoted): spec.replicas, else the target's spec.replicas, remembered after Sluice
	// scaled the target to zero. A canary gets its weight's share of it, at least one pod.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// CurrentReplicas is the number of pods the stable slot runs now: the scale subresource's
	// status.replicas. A canary's pods are on top of it (an HPA that finds its metric within
	// tolerance keeps this count: the canary's pods counted in would inflate spec.replicas).
	// +optional
	CurrentReplicas int32 `json:"currentReplicas,omitempty"`

	// Selector selects the pods of both slots, as a label selector string: the scale
	// subresource's selector, over which an autoscaler averages pod metrics.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Selector string `json:"selector,omitempty"`

	// Slots says what each slot runs: revision, pods and, with config tracking, the copies of
	// ConfigMaps and Secrets its pods use.
	// +optional
	// +listType=map
	// +listMapKey=slot
	// +kubebuilder:validation:MaxItems=2
	Slots []SlotStatus `json:"slots,omitempty"`

	// Autoscaler names the HorizontalPodAutoscaler whose scaleTargetRef is this Rollout
	// ("" when none).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Autoscaler string `json:"autoscaler,omitempty"`

	// ReleaseStartTime is when the current release began (progressDeadline counts from it).
	// +optional
	ReleaseStartTime *metav1.Time `json:"releaseStartTime,omitempty"`

	// StepStartTime is when the current step's traffic was in force (pauses count from it).
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`

	// HoldStartTime is when gate checks started to find Prometheus unreachable.
	// +optional
	HoldStartTime *metav1.Time `json:"holdStartTime,omitempty"`

	// ScaleDownTime is when the idle slot is scaled to zero.
	// +optional
	ScaleDownTime *metav1.Time `json:"scaleDownTime,omitempty"`

	// ManualPause is set by the pause action and cleared by resume.
	// +optional
	ManualPause bool `json:"manualPause,omitempty"`

	// Analysis sums up the gate checks of the current release.
	// +optional
	Analysis *AnalysisStatus `json:"analysis,omitempty"`

	// AbortReason says why the last release was rolled back.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	AbortReason string `json:"abortReason,omitempty"`

	// LastAction is the last manual action the controller consumed.
	// +optional
	LastAction *ActionRecord `json:"lastAction,omitempty"`

	// DataPlane is what the data plane was last proven to serve.
	// +optional
	DataPlane *DataPlaneStatus `json:"dataPlane,omitempty"`

	// History lists the latest releases and how each ended, newest first (at most 10): a
	// rollback stays on record even when a newer revision follows at once.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	History []ReleaseRecord `json:"history,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, Promoted, RolledBack, TrafficApplied.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// SlotStatus is what one slot Deployment runs.
type SlotStatus struct {
	// Slot is a or b.
	// +required
	Slot Slot `json:"slot"`

	// Revision its pod template runs.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision,omitempty"`

	// Replicas is the slot's desired pod count; ReadyReplicas its pods of the revision that
	// its Service publishes as ready.
	// +optional
	Replicas int32 `json:"replicas"`
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`

	// Config lists the copies of ConfigMaps and Secrets the slot's pods use (config tracking):
	// names only, never content.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Config []ConfigCopy `json:"config,omitempty"`
}

// ConfigCopy is one copy of a ConfigMap or Secret a revision runs.
type ConfigCopy struct {
	// Kind is ConfigMap or Secret.
	// +required
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	Kind string `json:"kind"`

	// Name of the source object the pod template references.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Copy is the name of the copy the pods use.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Copy string `json:"copy"`
}

// ActionRecord is a consumed manual action.
type ActionRecord struct {
	// Action that was requested.
	// +required
	Action RolloutAction `json:"action"`

	// Time the controller consumed it.
	// +required
	Time metav1.Time `json:"time"`

	// ID identifies the request: the controller accepts an action by moving it from the
	// action annotation to the accepted-action annotation with a fresh ID, and records the ID
	// here in the same status write as the decision the action causes, so that after a crash
	// an accepted action is applied exactly once.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	ID string `json:"id,omitempty"`
}

// DataPlaneStatus is the last proof that the data plane serves the route's split.
type DataPlaneStatus struct {
	// Split is the version of the route's split that was proven served.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Split string `json:"split,omitempty"`

	// Slot the probe rule reached, and its Revision.
	// +optional
	Slot Slot `json:"slot,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision,omitempty"`

	// Probed is true when a probe proved it; false when no probe was possible and route
	// status stood in (Message says why).
	// +optional
	Probed bool `json:"probed,omitempty"`

	// Latency is from the first probe of this split to its proof: how long the data plane
	// took to serve what the gateway had accepted.
	// +optional
	Latency *metav1.Duration `json:"latency,omitempty"`

	// Time of the proof.
	// +optional
	Time *metav1.Time `json:"time,omitempty"`

	// Message says what was proven, or why route status stood in.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// ReleaseOutcome is how a release ended.
// +kubebuilder:validation:Enum=Promoted;RolledBack;Superseded
type ReleaseOutcome string

// The release outcomes.
const (
	OutcomePromoted   ReleaseOutcome = "Promoted"
	OutcomeRolledBack ReleaseOutcome = "RolledBack"
	// OutcomeSuperseded: the target changed to another revision before the release ended.
	OutcomeSuperseded ReleaseOutcome = "Superseded"
)

// ReleaseRecord is one past release.
type ReleaseRecord struct {
	// Revision that was released.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision"`

	// Outcome of the release.
	// +required
	Outcome ReleaseOutcome `json:"outcome"`

	// AbortReason says why a rolled-back release was rolled back.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	AbortReason string `json:"abortReason,omitempty"`

	// Message explains the outcome.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`

	// StartTime is when the release began.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// EndTime is when the outcome was decided.
	// +required
	EndTime metav1.Time `json:"endTime"`
}

// AnalysisStatus counts the gate checks of the current release.
type AnalysisStatus struct {
	// Passed checks.
	// +optional
	Passed int32 `json:"passed,omitempty"`
	// Failed checks.
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// Inconclusive checks (no data, too few samples, NaN).
	// +optional
	Inconclusive int32 `json:"inconclusive,omitempty"`
	// Unreachable checks (Prometheus did not answer).
	// +optional
	Unreachable int32 `json:"unreachable,omitempty"`
	// StepPassed counts the passing checks of the current analysis step (or of blue-green
	// pre-promotion checks).
	// +optional
	StepPassed int32 `json:"stepPassed,omitempty"`
	// ConsecutiveInconclusive counts the inconclusive checks since the last conclusive one
	// (see spec.analysis.inconclusiveLimit).
	// +optional
	ConsecutiveInconclusive int32 `json:"consecutiveInconclusive,omitempty"`

	// Verdict of the last check, over all gates.
	// +optional
	Verdict Verdict `json:"verdict,omitempty"`

	// LastCheck is when the last check ran.
	// +optional
	LastCheck *metav1.Time `json:"lastCheck,omitempty"`

	// Gates holds the last verdict of every metric of every gate.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Gates []GateMetricVerdict `json:"gates,omitempty"`
}

// GateMetricVerdict is the last verdict of one metric of one HealthGate.
type GateMetricVerdict struct {
	// Gate is the HealthGate's name.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Gate string `json:"gate"`

	// MetricVerdict is the metric's verdict.
	MetricVerdict `json:",inline"`
}

// RolloutList is a list of Rollouts.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}
