package v1alpha1

import (
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// Defaults live here, in getters, so the controllers, the defaulting webhook and the docs agree.
const (
	DefaultAnalysisInterval  = 30 * time.Second
	DefaultFailureLimit      = int32(2)
	DefaultMaxHold           = 10 * time.Minute
	DefaultInconclusiveLimit = int32(10)
	DefaultProgressDeadline  = 10 * time.Minute
	DefaultScaleDownDelay    = 30 * time.Second
	DefaultMaxWeight         = int32(100)
	DefaultPrometheusTimeout = 5 * time.Second
	DefaultGateInterval      = 30 * time.Second
	DefaultOutlierInterval   = 10 * time.Second
	DefaultBaseEjectionTime  = 30 * time.Second
	DefaultMaxEjectionPct    = int32(50)
	GatewayAPIGroup          = "gateway.networking.k8s.io"
)

// GetServiceName is the apex Service's name: spec.service.name, else the Rollout's name.
func (r *Rollout) GetServiceName() string {
	if r.Spec.Service.Name != "" {
		return r.Spec.Service.Name
	}
	return r.Name
}

// GetSlotServiceName is the Service of one slot: <service>-a or <service>-b.
func (r *Rollout) GetSlotServiceName(s Slot) string { return r.GetServiceName() + "-" + string(s) }

// GetSlotDeploymentName is the Deployment of one slot: <rollout>-a or <rollout>-b.
func (r *Rollout) GetSlotDeploymentName(s Slot) string { return r.Name + "-" + string(s) }

// Other is the slot that is not s.
func (s Slot) Other() Slot {
	if s == SlotA {
		return SlotB
	}
	return SlotA
}

// GetTargetPort is spec.service.targetPort, else the service port.
func (s *ServiceSpec) GetTargetPort() intstr.IntOrString {
	if s.TargetPort != nil {
		return *s.TargetPort
	}
	return intstr.FromInt32(s.Port)
}

// GetProgressDeadline is spec.progressDeadline, else 10m.
func (s *RolloutSpec) GetProgressDeadline() time.Duration {
	if s.ProgressDeadline != nil {
		return s.ProgressDeadline.Duration
	}
	return DefaultProgressDeadline
}

// GetScaleDownDelay is the strategy's scaleDownDelay, else 30s.
func (s *RolloutStrategy) GetScaleDownDelay() time.Duration {
	switch {
	case s.Canary != nil && s.Canary.ScaleDownDelay != nil:
		return s.Canary.ScaleDownDelay.Duration
	case s.BlueGreen != nil && s.BlueGreen.ScaleDownDelay != nil:
		return s.BlueGreen.ScaleDownDelay.Duration
	}
	return DefaultScaleDownDelay
}

// GetMaxWeight is maxWeight, else 100.
func (c *CanaryStrategy) GetMaxWeight() int32 {
	if c.MaxWeight != nil {
		return *c.MaxWeight
	}
	return DefaultMaxWeight
}

// GetPrePromotionChecks is prePromotionChecks, else 0.
func (b *BlueGreenStrategy) GetPrePromotionChecks() int32 {
	if b.PrePromotionChecks != nil {
		return *b.PrePromotionChecks
	}
	return 0
}

// GetInterval is the analysis interval, else 30s. A nil analysis has the default too.
func (a *RolloutAnalysis) GetInterval() time.Duration {
	if a != nil && a.Interval != nil {
		return a.Interval.Duration
	}
	return DefaultAnalysisInterval
}

// GetFailureLimit is failureLimit, else 2.
func (a *RolloutAnalysis) GetFailureLimit() int32 {
	if a != nil && a.FailureLimit != nil {
		return *a.FailureLimit
	}
	return DefaultFailureLimit
}

// GetMinSamples is minSamples, else 0.
func (a *RolloutAnalysis) GetMinSamples() int32 {
	if a != nil && a.MinSamples != nil {
		return *a.MinSamples
	}
	return 0
}

// GetOnUnreachable is onUnreachable, else Hold.
func (a *RolloutAnalysis) GetOnUnreachable() OnUnreachable {
	if a != nil && a.OnUnreachable != "" {
		return a.OnUnreachable
	}
	return OnUnreachableHold
}

// GetMaxHold is maxHold, else 10m.
func (a *RolloutAnalysis) GetMaxHold() time.Duration {
	if a != nil && a.MaxHold != nil {
		return a.MaxHold.Duration
	}
	return DefaultMaxHold
}

// GetInconclusiveLimit is inconclusiveLimit, else 10.
func (a *RolloutAnalysis) GetInconclusiveLimit() int32 {
	if a != nil && a.InconclusiveLimit != nil {
		return *a.InconclusiveLimit
	}
	return DefaultInconclusiveLimit
}

// GetProbeMode is the data-plane probe's mode, else BestEffort.
func (g *GatewayAPIRouting) GetProbeMode() ProbeMode {
	if g.Probe != nil && g.Probe.Mode != "" {
		return g.Probe.Mode
	}
	return ProbeBestEffort
}

// GetKind is the parent's kind, else Gateway.
func (p *ParentReference) GetKind() string {
	if p.Kind != "" {
		return p.Kind
	}
	return "Gateway"
}

// GetGroup is the parent's group, else the group its kind implies.
func (p *ParentReference) GetGroup() string {
	if p.Group != nil {
		return *p.Group
	}
	if p.GetKind() == "Service" {
		return ""
	}
	return GatewayAPIGroup
}

// GetType is the match type, else Exact.
func (m *ValueMatch) GetType() MatchType {
	if m.Type != "" {
		return m.Type
	}
	return MatchExact
}

// GetTimeout is the per-query timeout, else 5s.
func (p *PrometheusSource) GetTimeout() time.Duration {
	if p.Timeout != nil {
		return p.Timeout.Duration
	}
	return DefaultPrometheusTimeout
}

// GetNoData is noData, else Inconclusive.
func (s *HealthGateSpec) GetNoData() NoDataVerdict {
	if s.NoData != "" {
		return s.NoData
	}
	return NoDataInconclusive
}

// GetInterval is the standalone evaluation interval, else 30s.
func (s *HealthGateSpec) GetInterval() time.Duration {
	if s.Interval != nil {
		return s.Interval.Duration
	}
	return DefaultGateInterval
}

// GetWindow is the query window: spec.window, else the given fallback (the Rollout's analysis
// interval, or the gate's own interval when evaluated on its own).
func (s *HealthGateSpec) GetWindow(fallback time.Duration) time.Duration {
	if s.Window != nil {
		return s.Window.Duration
	}
	return fallback
}

// GetDirection is the direction of "better": the explicit one, else the builtin's.
func (m *HealthMetric) GetDirection() Direction {
	if m.CompareToStable != nil && m.CompareToStable.Direction != "" {
		return m.CompareToStable.Direction
	}
	if m.Builtin == BuiltinRequestDurationP99 {
		return LowerIsBetter
	}
	return HigherIsBetter
}

// GetProvider is the requested provider, else auto.
func (s *MeshPolicySpec) GetProvider() Provider {
	if s.Provider != "" {
		return s.Provider
	}
	return ProviderAuto
}

// GetBurst is burst, else requestsPerSecond.
func (r *RateLimit) GetBurst() int32 {
	if r.Burst != nil {
		return *r.Burst
	}
	return r.RequestsPerSecond
}

// GetInterval is the ejection sweep interval, else 10s.
func (o *OutlierDetection) GetInterval() time.Duration {
	if o.Interval != nil {
		return o.Interval.Duration
	}
	return DefaultOutlierInterval
}

// GetBaseEjectionTime is baseEjectionTime, else 30s.
func (o *OutlierDetection) GetBaseEjectionTime() time.Duration {
	if o.BaseEjectionTime != nil {
		return o.BaseEjectionTime.Duration
	}
	return DefaultBaseEjectionTime
}

// GetMaxEjectionPercent is maxEjectionPercent, else 50.
func (o *OutlierDetection) GetMaxEjectionPercent() int32 {
	if o.MaxEjectionPercent != nil {
		return *o.MaxEjectionPercent
	}
	return DefaultMaxEjectionPct
}

// GetRetryOn is the retry conditions, else connect-failure only (the one every data plane retries
// safely, even for non-idempotent requests).
func (r *Retries) GetRetryOn() []RetryOn {
	if len(r.RetryOn) > 0 {
		return r.RetryOn
	}
	return []RetryOn{"connect-failure"}
}
