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
	// Check is the result of a gate check run in this reconcile because CheckDue said so.
	Check *Check
	// Action is the manual action consumed in this reconcile ("" for none).
	Action meshv1alpha1.RolloutAction
}

// TargetState is what the target Deployment says.
type TargetState struct {
	Found bool
	// Revision is the hash of its pod template (and the configuration it mounts).
	Revision string
	// Replicas is its spec.replicas (0 once Sluice scaled it down).
	Replicas int32
}

// SlotState is what a slot Deployment says.
type SlotState struct {
	// Revision its pod template runs ("" when the Deployment does not exist).
	Revision string
	Replicas int32
	// Ready: the Deployment observed its generation and all its replicas are updated and
	// available (and there is at least one).
	Ready bool
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
}

// Check is the outcome of one gate check over all the Rollout's HealthGates.
type Check struct {
	Verdict meshv1alpha1.Verdict
	Gates   []meshv1alpha1.GateMetricVerdict
	// Message explains the verdict (which gate and metric failed, and why).
	Message string
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
}

// SlotIntent is the desired state of one slot Deployment.
type SlotIntent struct {
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
)
