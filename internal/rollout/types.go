// Package rollout is the Rollout state machine: pure code, no client. The controller gathers
// Observations, calls Next, and applies the Decision (slot Deployments, route, target scale,
// events, status). Everything that must hold whatever the order of events — no traffic to a
// slot that is not ready, no template change under traffic — is enforced here, so it is
// covered by table tests.
package rollout

import (
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Observations are the facts the controller gathered for one reconcile.
type Observations struct {
	Now time.Time
	// Generation of the Rollout, stamped on the conditions and status.
	Generation int64
	// Target is the Deployment the user owns.
	Target TargetState
	// Slots are the two slot Deployments, by slot (a missing one is the zero value).
	Slots map[meshv1alpha1.Slot]SlotState
	// Traffic is what the route carries now.
	Traffic TrafficState
	// Check is the result of a gate check that finished since the last reconcile and judged
	// the current step (see CheckTicket).
	Check *Check
	// Action is the manual action consumed in this reconcile ("" for none); ActionID
	// identifies the request, recorded in status.lastAction.
	Action   meshv1alpha1.RolloutAction
	ActionID string
	// ApplyError is the failure of the last attempt to apply a decision, still to be shown
	// (see ApplyErrorOf); nil once an apply succeeded.
	ApplyError *ApplyError
	// Report is what status shows as observed; no decision depends on it.
	Report Report
}

// Report is observed state that status shows as it is.
type Report struct {
	// CurrentReplicas counts the stable slot's pods; Selector selects both slots' pods (the
	// scale subresource).
	CurrentReplicas int32
	Selector        string
	// Slots says what each existing slot runs.
	Slots []meshv1alpha1.SlotStatus
	// Autoscaler names the HorizontalPodAutoscaler that targets the Rollout;
	// AutoscalerProblem says why an autoscaler scales nothing (it targets the Deployment
	// Sluice keeps at zero).
	Autoscaler        string
	AutoscalerProblem string
}

// ApplyError is why making a decision true failed, and whether only a person can fix it.
type ApplyError struct {
	Message string
	Stalled bool
}

// TargetState is what the target Deployment says.
type TargetState struct {
	Found bool
	// Revision is the hash of its pod template (and the configuration it mounts).
	Revision string
	// Replicas is its spec.replicas (0 once Sluice scaled it down).
	Replicas int32
	// Problem, when set, is a misconfiguration of the target only a person can fix (a named
	// target port its pods lack): its revision is not released.
	Problem string
}

// SlotState is what a slot Deployment says.
type SlotState struct {
	// Revision its pod template runs ("" when the Deployment does not exist).
	Revision string
	Replicas int32
	// Ready: the Deployment observed its generation and all its replicas are updated and
	// available (and there is at least one).
	Ready bool
	// Available counts the slot's pods of Revision that its Service publishes as ready, when
	// it publishes nothing else (0 while any other endpoint may still be picked): what the
	// slot can serve now, whatever a scale change under way will add.
	Available int32
}

// TrafficState is what the route carries and whether its parents accepted it.
type TrafficState struct {
	Found   bool
	Weights map[meshv1alpha1.Slot]int32
	// Matches and Mirror tell whether A/B matches and a mirror to the canary are in force.
	Matches       bool
	MirrorPercent int32
	Accepted      bool
	Message       string
	// Reaches says, per slot, whether a rule Sluice drives may still send the slot requests
	// (a weight above 0, an A/B rule, a mirror). With Found and Accepted, a slot it does not
	// reach gets nothing from the route the gateway accepted: only then may it lose its pods
	// or get a new template.
	Reaches map[meshv1alpha1.Slot]bool
	// Split is the version of the split the route carries now, as its data-plane probe rule
	// says ("" without one); ProbeSlot and ProbeRevision are the slot the rule reaches and the
	// revision its token was made for ("" when it is not the slot's current one).
	Split         string
	ProbeSlot     meshv1alpha1.Slot
	ProbeRevision string
	// Proof is the data plane's latest answer about Split (nil: none yet).
	Proof *Proof
	// ProbeOff: no probe is wanted (spec mode Disabled): route status alone says the split
	// is in force.
	ProbeOff bool
}

// Proof is what a data-plane probe found for one split.
type Proof struct {
	Split string
	// OK: proven served (or, with Probed false, route status stands in where no probe is
	// possible).
	OK     bool
	Probed bool
	// Latency is from the first probe of the split to its proof.
	Latency time.Duration
	Message string
}

// Check is the outcome of one gate check over all the Rollout's HealthGates.
type Check struct {
	Verdict meshv1alpha1.Verdict
	Gates   []meshv1alpha1.GateMetricVerdict
	// Message explains the verdict (which gate and metric failed, and why).
	Message string
	// Started is when the check began; the next one is due an interval later.
	Started time.Time
	// Premature: no gate judged yet because a query window still reaches back before the
	// release. Inconclusive, but not counted toward spec.analysis.inconclusiveLimit.
	Premature bool
}

// Decision is what the controller must make true, and the status to write.
type Decision struct {
	Status meshv1alpha1.RolloutStatus
	// Slots is the desired state of each slot Deployment.
	Slots map[meshv1alpha1.Slot]SlotIntent
	// Traffic is the desired route; nil leaves the route alone (nothing is ready to serve yet).
	Traffic *TrafficIntent
	// ScaleTargetToZero is set once the slots serve the traffic.
	ScaleTargetToZero bool
	// Events to emit, on transitions only.
	Events []Event
	// RequeueAfter is when to look again even if nothing changes (timers).
	RequeueAfter time.Duration
	// Ended is the release this decision ended (promoted, rolled back or superseded), also
	// recorded at the head of Status.History.
	Ended *meshv1alpha1.ReleaseRecord
	// StepOverdue is, when this decision ends a timed pause, how long after its end the
	// decision came: the manager's own lateness (queueing, busy workers), measured at scale.
	StepOverdue *time.Duration
}

// SlotIntent is the desired state of one slot Deployment.
type SlotIntent struct {
	// Keep leaves the slot Deployment exactly as it is (its pods may still get requests).
	// Nothing is written: a stale read of its replica count can't scale it back up.
	Keep bool
	// Revision the slot must run: "" keeps its template as it is; the target's revision
	// copies the target's pod template into it.
	Revision string
	Replicas int32
}

// TrafficIntent is the desired route content.
type TrafficIntent struct {
	Weights       map[meshv1alpha1.Slot]int32
	Matches       bool
	MirrorPercent int32
	// ProbeSlot is the slot the data-plane probe rule must reach ("" for none), running
	// ProbeRevision.
	ProbeSlot     meshv1alpha1.Slot
	ProbeRevision string
}

// Event is a Kubernetes event to emit about the Rollout.
type Event struct {
	Warning bool
	Reason  string
	Message string
}

// Reasons of conditions and events.
const (
	ReasonHealthy               = "Healthy"
	ReasonReleaseStarted        = "ReleaseStarted"
	ReasonReleaseRestarted      = "ReleaseRestarted"
	ReasonReleaseSuperseded     = "ReleaseSuperseded"
	ReasonProgressing           = "Progressing"
	ReasonWaitingForPods        = "WaitingForPods"
	ReasonWaitingForTraffic     = "WaitingForTraffic"
	ReasonWaitingForPromote     = "WaitingForPromote"
	ReasonPaused                = "Paused"
	ReasonHolding               = "PrometheusUnreachable"
	ReasonMaxHoldExceeded       = "MaxHoldExceeded"
	ReasonPromoting             = "Promoting"
	ReasonPromoted              = "Promoted"
	ReasonRollingBack           = "RollingBack"
	ReasonRolledBack            = "RolledBack"
	ReasonGateFailed            = "HealthGateFailed"
	ReasonProgressDeadline      = "ProgressDeadlineExceeded"
	ReasonAborted               = "Aborted"
	ReasonTargetNotFound        = "TargetNotFound"
	ReasonAction                = "ManualAction"
	ReasonTrafficApplied        = "Applied"
	ReasonInitializationTimeout = "InitializationTimeout"
	ReasonInconclusiveLimit     = "InconclusiveLimitExceeded"
	ReasonTargetMisconfigured   = "TargetMisconfigured"
	ReasonWaitingForDataPlane   = "WaitingForDataPlane"
	ReasonNotProbed             = "NotProbed"
	ReasonAutoscaled            = "Autoscaled"
	ReasonAutoscalerMisdirected = "AutoscalerTargetsDeployment"
)
