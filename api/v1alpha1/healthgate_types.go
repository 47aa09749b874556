package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HealthGate is a set of Prometheus success criteria. Rollouts use its verdicts to advance,
// hold or roll back; with a target it is also evaluated on its own and reports in status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=hg,categories=sluice
// +kubebuilder:printcolumn:name="Verdict",type=string,JSONPath=`.status.verdict`
// +kubebuilder:printcolumn:name="Last-Evaluation",type=date,JSONPath=`.status.lastEvaluation`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type HealthGate struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec HealthGateSpec `json:"spec"`
	// Defaulted to {} so that a new object shows observedGeneration: -1 ("not yet
	// reconciled") before the controller writes status: kstatus and Flux read it as InProgress.
	// +optional
	// +kubebuilder:default={}
	Status HealthGateStatus `json:"status,omitempty"`
}

// HealthGateSpec says where the metrics are and what a healthy value is.
//
// +kubebuilder:validation:XValidation:rule="!self.metrics.exists(m, has(m.builtin)) || has(self.dataPlane)",message="spec.dataPlane is required when a metric uses a builtin (it selects the metric names: traefik, istio, linkerd, envoy or nginx)",fieldPath=".dataPlane"
// +kubebuilder:validation:XValidation:rule="!self.metrics.exists(m, has(m.compareToStable)) || !has(self.target) || has(self.target.stableService)",message="spec.target.stableService is required when a metric uses compareToStable",fieldPath=".target"
type HealthGateSpec struct {
	// Prometheus is where the queries run.
	// +required
	Prometheus PrometheusSource `json:"prometheus"`

	// DataPlane selects the metric names builtin metrics query.
	// +optional
	DataPlane DataPlane `json:"dataPlane,omitempty"`

	// Metrics are the criteria; every one must pass for the gate to pass.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Metrics []HealthMetric `json:"metrics"`

	// NoData is the verdict of a query that returns no series. Defaults to Inconclusive.
	// +optional
	NoData NoDataVerdict `json:"noData,omitempty"`

	// Window is the range the queries look back over ({{ .Window }}). Defaults to the
	// Rollout's analysis interval, or to the gate's interval when evaluated on its own.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="spec.window must be at least 1s"
	Window *metav1.Duration `json:"window,omitempty"`

	// Interval between evaluations when the gate has a target. Defaults to 30s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s')",message="spec.interval must be at least 1s"
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Target makes the gate evaluate on its own, every interval, and report in status, so it
	// can gate other things (a Flux dependency, a script watching it).
	// +optional
	Target *GateTarget `json:"target,omitempty"`
}

// CredentialsLabel marks a Secret a HealthGate may use as spec.prometheus.secretRef: an opt-in,
// so that a HealthGate can't make the manager read and send any Secret of its namespace.
const CredentialsLabel = "mesh.sluice.dev/healthgate-credentials"

// PrometheusSource is one or more Prometheus servers, tried in order.
type PrometheusSource struct {
	// Addresses of Prometheus HTTP APIs (http or https URLs), tried in order until one answers.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +kubebuilder:validation:items:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.all(a, isURL(a) && (url(a).getScheme() == 'http' || url(a).getScheme() == 'https') && url(a).getHostname().size() > 0)",message="spec.prometheus.addresses: every address must be an http:// or https:// URL with a host"
	Addresses []string `json:"addresses"`

	// SecretRef names a Secret with `token` (bearer), or `username` and `password` (basic
	// auth), and optionally `ca.crt`. The Secret must carry the label
	// `mesh.sluice.dev/healthgate-credentials: "true"` (Sluice reads no other Secret), must not
	// be a ServiceAccount token Secret, and credentials are sent only to https addresses.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// Timeout of one query. Defaults to 5s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('5m')",message="spec.prometheus.timeout must be between 100ms and 5m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// DataPlane names whose metric names the builtin metrics use.
// +kubebuilder:validation:Enum=traefik;istio;linkerd;envoy;nginx
type DataPlane string

// The data planes with builtin metrics.
const (
	DataPlaneTraefik DataPlane = "traefik"
	DataPlaneIstio   DataPlane = "istio"
	DataPlaneLinkerd DataPlane = "linkerd"
	DataPlaneEnvoy   DataPlane = "envoy"
	DataPlaneNginx   DataPlane = "nginx"
)

// BuiltinMetric is a query Sluice knows for every data plane.
// +kubebuilder:validation:Enum=request-success-rate;request-duration-p99
type BuiltinMetric string

// The builtin metrics.
const (
	// BuiltinRequestSuccessRate is the share of non-5xx responses, 0..1.
	BuiltinRequestSuccessRate BuiltinMetric = "request-success-rate"
	// BuiltinRequestDurationP99 is the 99th percentile of request duration, in seconds.
	BuiltinRequestDurationP99 BuiltinMetric = "request-duration-p99"
)

// NoDataVerdict is the verdict of a query that returns no series.
// +kubebuilder:validation:Enum=Inconclusive;Fail;Pass
type NoDataVerdict string

// The NoData choices.
const (
	NoDataInconclusive NoDataVerdict = "Inconclusive"
	NoDataFail         NoDataVerdict = "Fail"
	NoDataPass         NoDataVerdict = "Pass"
)

// HealthMetric is one criterion: a builtin or PromQL query and what a healthy value is.
//
// +kubebuilder:validation:XValidation:rule="has(self.builtin) != has(self.query)",message="spec.metrics[]: set exactly one of builtin or query"
// +kubebuilder:validation:XValidation:rule="has(self.thresholdRange) || has(self.compareToStable)",message="spec.metrics[]: set thresholdRange, compareToStable or both"
// +kubebuilder:validation:XValidation:rule="!has(self.compareToStable) || has(self.builtin) || has(self.compareToStable.direction)",message="spec.metrics[].compareToStable.direction is required with a custom query (is a higher value better or worse?)",fieldPath=".compareToStable"
type HealthMetric struct {
	// Name of the metric, unique in the gate.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Builtin is a query Sluice knows for spec.dataPlane.
	// +optional
	Builtin BuiltinMetric `json:"builtin,omitempty"`

	// Query is a PromQL query that returns one number. Template variables: {{ .Namespace }},
	// {{ .Service }}, {{ .CanaryService }}, {{ .StableService }}, {{ .Revision }},
	// {{ .Window }}; values are escaped for label matchers.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	Query string `json:"query,omitempty"`

	// ThresholdRange is the healthy range of the value.
	// +optional
	ThresholdRange *ThresholdRange `json:"thresholdRange,omitempty"`

	// CompareToStable runs the query for the stable slot too and fails the canary when it is
	// worse than stable by more than the allowed margin.
	// +optional
	CompareToStable *CompareToStable `json:"compareToStable,omitempty"`
}

// ThresholdRange is an inclusive healthy range; either bound may be open.
//
// +kubebuilder:validation:XValidation:rule="has(self.min) || has(self.max)",message="spec.metrics[].thresholdRange: set min, max or both"
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || self.min <= self.max",message="spec.metrics[].thresholdRange.min must not be greater than max"
type ThresholdRange struct {
	// Min is the lowest healthy value.
	// +optional
	Min *float64 `json:"min,omitempty"`

	// Max is the highest healthy value.
	// +optional
	Max *float64 `json:"max,omitempty"`
}

// Direction says whether higher values of a metric are better.
// +kubebuilder:validation:Enum=HigherIsBetter;LowerIsBetter
type Direction string

// The directions.
const (
	HigherIsBetter Direction = "HigherIsBetter"
	LowerIsBetter  Direction = "LowerIsBetter"
)

// CompareToStable is a relative check of the canary against the stable slot.
type CompareToStable struct {
	// MaxDegradation is the largest tolerated relative degradation, as a fraction of the
	// stable value (0.05: the canary may be at most 5% worse than stable).
	// +required
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	MaxDegradation float64 `json:"maxDegradation"`

	// Direction of "better". Builtins know theirs; required for a custom query.
	// +optional
	Direction Direction `json:"direction,omitempty"`
}

// GateTarget is what a standalone HealthGate evaluates.
type GateTarget struct {
	// Service is the value of {{ .Service }}.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Service string `json:"service"`

	// CanaryService is the value of {{ .CanaryService }}. Defaults to service.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	CanaryService string `json:"canaryService,omitempty"`

	// StableService is the value of {{ .StableService }}, for compareToStable.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	StableService string `json:"stableService,omitempty"`

	// Revision is the value of {{ .Revision }}.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision,omitempty"`

	// MinSamples is how many requests the window needs for a verdict to count. Defaults to 0.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000000
	MinSamples *int32 `json:"minSamples,omitempty"`
}

// Verdict is the outcome of a check.
// +kubebuilder:validation:Enum=Pass;Fail;Inconclusive;Unreachable
type Verdict string

// The verdicts. Only Fail counts toward rollback.
const (
	VerdictPass         Verdict = "Pass"
	VerdictFail         Verdict = "Fail"
	VerdictInconclusive Verdict = "Inconclusive"
	VerdictUnreachable  Verdict = "Unreachable"
)

// HealthGateStatus reports the last evaluation of a standalone gate.
type HealthGateStatus struct {
	// ObservedGeneration is the spec generation last acted on; -1 before the first reconcile.
	// +optional
	// +kubebuilder:default=-1
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Verdict of the last evaluation, over all metrics.
	// +optional
	Verdict Verdict `json:"verdict,omitempty"`

	// LastEvaluation is when the gate was last evaluated.
	// +optional
	LastEvaluation *metav1.Time `json:"lastEvaluation,omitempty"`

	// Address is the Prometheus address that answered last.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Address string `json:"address,omitempty"`

	// Metrics holds the last verdict of every metric.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Metrics []MetricVerdict `json:"metrics,omitempty"`

	// Conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// MetricVerdict is the last verdict of one metric.
type MetricVerdict struct {
	// Name of the metric.
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// Verdict of the metric.
	// +required
	Verdict Verdict `json:"verdict"`

	// Value the query returned, as text (NaN and ±Inf included).
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Value string `json:"value,omitempty"`

	// Message explains the verdict.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// HealthGateList is a list of HealthGates.
//
// +kubebuilder:object:root=true
type HealthGateList struct {
	metav1.TypeMeta `json:",inline"`
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []HealthGate `json:"items"`
}
