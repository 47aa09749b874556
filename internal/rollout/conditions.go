package rollout

import (
	"time"

	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// conditions derives Ready, Reconciling, Stalled and TrafficApplied from the decision, so they
// can never disagree with the phase. Promoted and RolledBack are set where they happen.
func (m *machine) conditions() {
	c := &m.st.Conditions
	applied := m.traffic != nil && m.trafficInForce()
	switch {
	case m.traffic == nil:
		setCondition(c, meshv1alpha1.ConditionTrafficApplied, false, "NoRoute", "the route is created once the stable slot is ready")
	case applied && m.st.DataPlane != nil && !m.st.DataPlane.Probed && !m.obs.Traffic.ProbeOff:
		setCondition(c, meshv1alpha1.ConditionTrafficApplied, true, ReasonNotProbed, "the route carries "+formatWeights(m.traffic.Weights)+
			"; the gateway accepted it, no data-plane probe was possible: "+m.st.DataPlane.Message)
	case applied && m.st.DataPlane != nil && !m.obs.Traffic.ProbeOff:
		setCondition(c, meshv1alpha1.ConditionTrafficApplied, true, ReasonTrafficApplied, "the route carries "+formatWeights(m.traffic.Weights)+
			", proven served through the data plane "+m.st.DataPlane.Latency.Duration.Round(time.Millisecond).String()+" after the first probe")
	case applied:
		setCondition(c, meshv1alpha1.ConditionTrafficApplied, true, ReasonTrafficApplied, "the route carries "+formatWeights(m.traffic.Weights))
	default:
		setCondition(c, meshv1alpha1.ConditionTrafficApplied, false, ReasonWaitingForTraffic, m.trafficMessage())
	}

	// Ready, Reconciling and Stalled are decided first and written once each: a condition
	// removed and set again would get a new transition time, a status change every reconcile.
	stalled := m.stallReason != ""
	st := kstatusConds{stalled: condWant{stalled, true, m.stallReason, m.stallMs}}
	if working := !stalled && m.st.Phase != meshv1alpha1.PhaseHealthy; working {
		reason, msg := m.waitReason, m.waitMsg
		if reason == "" {
			reason, msg = string(m.st.Phase), "release of revision "+m.st.CanaryRevision+" in progress"
		}
		st.reconciling = condWant{true, true, reason, msg}
	}
	switch {
	case m.st.Phase == meshv1alpha1.PhaseHealthy && applied && !stalled:
		st.ready = condWant{true, true, ReasonHealthy, fmt.Sprintf("revision %s serves all traffic from slot %s", m.st.StableRevision, m.st.StableSlot)}
	case stalled:
		st.ready = condWant{true, false, m.stallReason, m.stallMs}
	case m.waitReason != "":
		st.ready = condWant{true, false, m.waitReason, m.waitMsg}
	default:
		st.ready = condWant{true, false, string(m.st.Phase), "the route does not carry the stable split yet"}
	}
	if e := m.obs.ApplyError; e != nil {
		// Kept until an apply succeeds: the conditions must not flip between the decision
		// and the failure to apply it.
		st = st.applyFailed(e.Message, e.Stalled)
	}
	st.write(c)

	for i := range *c {
		(*c)[i].ObservedGeneration = m.obs.Generation
	}
	m.st.ObservedGeneration = m.obs.Generation
}

func setCondition(c *[]metav1.Condition, typ string, status bool, reason, msg string) {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	meta.SetStatusCondition(c, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg})
}

// CheckDue says whether the controller must run a gate check now: a release is progressing
// (or holding on an unreachable Prometheus), its canary serves, the current step's traffic
// is in force, and an analysis interval passed since the last check.
func CheckDue(spec *meshv1alpha1.RolloutSpec, st *meshv1alpha1.RolloutStatus, obs Observations) bool {
	if spec.Analysis == nil || st.CanaryRevision == "" || spec.Paused || st.ManualPause {
		return false
	}
	if st.Phase != meshv1alpha1.PhaseProgressing && st.Phase != meshv1alpha1.PhaseHolding {
		return false
	}
	// A check judges the traffic of the current step: none before that traffic is in force
	// (a canary that just became ready has no requests yet).
	if st.StepStartTime == nil {
		return false
	}
	canary := st.StableSlot.Other()
	// Serving, not necessarily at full size: an autoscaler's scale-up under way does not
	// stop the analysis of what the canary serves.
	if s := obs.Slots[canary]; s.Available == 0 || s.Revision != st.CanaryRevision {
		return false
	}
	if !obs.Traffic.Accepted || obs.Traffic.Weights[canary] != st.CanaryWeight || !served(st, obs.Traffic) {
		return false
	}
	if a := st.Analysis; a != nil && a.LastCheck != nil && obs.Now.Sub(a.LastCheck.Time) < spec.Analysis.GetInterval() {
		return false
	}
	return true
}

// CheckTicket names what a check started now judges: the release (revision and start), its
// step and canary weight, and the slot layout. A finished check is handed to Next only while
// the ticket is unchanged: a check that outlived its step says nothing about the next one.
// ok is false while no check may count at all (no release under analysis, or paused: a
// paused release is neither promoted nor rolled back).
func CheckTicket(spec *meshv1alpha1.RolloutSpec, st *meshv1alpha1.RolloutStatus) (ticket string, ok bool) {
	if spec.Analysis == nil || st.CanaryRevision == "" || spec.Paused || st.ManualPause {
		return "", false
	}
	if st.Phase != meshv1alpha1.PhaseProgressing && st.Phase != meshv1alpha1.PhaseHolding {
		return "", false
	}
	start := int64(0)
	if st.ReleaseStartTime != nil {
		start = st.ReleaseStartTime.Unix() // seconds: what survives a round trip through the API
	}
	return fmt.Sprintf("%s/%s/%d/step%d/%d%%", st.StableSlot, st.CanaryRevision, start, deref(st.CurrentStep), st.CanaryWeight), true
}

// ReasonApplyFailed: writing the decision to the cluster failed.
const ReasonApplyFailed = "ApplyFailed"

// ApplyErrorOf is the apply failure a status still shows (nil for none).
func ApplyErrorOf(st *meshv1alpha1.RolloutStatus) *ApplyError {
	ready := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionReady)
	if ready == nil || ready.Reason != ReasonApplyFailed {
		return nil
	}
	stalled := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionStalled)
	return &ApplyError{Message: ready.Message, Stalled: stalled != nil && stalled.Status == metav1.ConditionTrue && stalled.Reason == ReasonApplyFailed}
}

// ApplyFailed records that making the decision true failed: Ready=False with the error; then
// Stalled=True when only a person can fix it (an object someone else owns, a route Sluice can't
// drive), else Reconciling=True (it is retried). Conditions keep one writer: this package.
//
// A stalled generation counts as observed: the controller has judged it and only a person can
// make it apply, so waiters (kstatus, Flux, kubectl sluice status) read Failed at once instead
// of waiting for a generation that will not come without them. A failure that is retried
// leaves observedGeneration at the last generation applied.
func ApplyFailed(st *meshv1alpha1.RolloutStatus, msg string, stalled bool, generation int64) {
	current(st.Conditions).applyFailed(msg, stalled).write(&st.Conditions)
	for i := range st.Conditions {
		st.Conditions[i].ObservedGeneration = generation
	}
	if stalled {
		st.ObservedGeneration = generation
	}
}

// condWant is a condition to set (set) or remove.
type condWant struct {
	set    bool
	status bool
	reason string
	msg    string
}

// kstatusConds are the Ready, Reconciling and Stalled conditions to write.
type kstatusConds struct{ ready, reconciling, stalled condWant }

// current reads the three conditions as they are.
func current(c []metav1.Condition) kstatusConds {
	read := func(typ string) condWant {
		x := meta.FindStatusCondition(c, typ)
		if x == nil {
			return condWant{}
		}
		return condWant{true, x.Status == metav1.ConditionTrue, x.Reason, x.Message}
	}
	return kstatusConds{ready: read(meshv1alpha1.ConditionReady), reconciling: read(meshv1alpha1.ConditionReconciling), stalled: read(meshv1alpha1.ConditionStalled)}
}

func (k kstatusConds) applyFailed(msg string, stalled bool) kstatusConds {
	k.ready = condWant{true, false, ReasonApplyFailed, msg}
	if stalled {
		k.stalled = condWant{true, true, ReasonApplyFailed, msg}
		k.reconciling = condWant{}
	} else {
		k.reconciling = condWant{true, true, ReasonApplyFailed, "retrying: " + msg}
	}
	return k
}

func (k kstatusConds) write(c *[]metav1.Condition) {
	for _, x := range []struct {
		typ string
		w   condWant
	}{{meshv1alpha1.ConditionStalled, k.stalled}, {meshv1alpha1.ConditionReconciling, k.reconciling}, {meshv1alpha1.ConditionReady, k.ready}} {
		if x.w.set {
			setCondition(c, x.typ, x.w.status, x.w.reason, x.w.msg)
		} else {
			meta.RemoveStatusCondition(c, x.typ)
		}
	}
}

// HandingBack reports a deleted Rollout's progress in handing traffic back (Ready=False, and
// Reconciling or, when only a person can unblock it, Stalled).
func HandingBack(st *meshv1alpha1.RolloutStatus, reason, msg string, stalled bool) {
	c := &st.Conditions
	setCondition(c, meshv1alpha1.ConditionReady, false, reason, msg)
	if stalled {
		setCondition(c, meshv1alpha1.ConditionStalled, true, reason, msg)
		meta.RemoveStatusCondition(c, meshv1alpha1.ConditionReconciling)
	} else {
		setCondition(c, meshv1alpha1.ConditionReconciling, true, reason, msg)
		meta.RemoveStatusCondition(c, meshv1alpha1.ConditionStalled)
	}
}

// HandedBack records that the route of a deleted Rollout sends everything to the apex Service
// and every parent accepted it, at time now (TrafficApplied's transition time).
func HandedBack(st *meshv1alpha1.RolloutStatus, reason, msg string, now time.Time) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: meshv1alpha1.ConditionTrafficApplied, Status: metav1.ConditionFalse,
		Reason: reason, Message: msg, LastTransitionTime: metav1.NewTime(now)})
	// A transition time is kept when only the reason changes: set it explicitly.
	if c := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionTrafficApplied); c != nil {
		c.LastTransitionTime = metav1.NewTime(now)
	}
	HandingBack(st, reason, msg, false)
}
