package rollout

import (
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
	case applied:
		setCondition(c, meshv1alpha1.ConditionTrafficApplied, true, ReasonTrafficApplied, "the route carries "+formatWeights(m.traffic.Weights))
	default:
		setCondition(c, meshv1alpha1.ConditionTrafficApplied, false, ReasonWaitingForTraffic, m.trafficMessage())
	}

	stalled := m.stallReason != ""
	if stalled {
		setCondition(c, meshv1alpha1.ConditionStalled, true, m.stallReason, m.stallMs)
	} else {
		meta.RemoveStatusCondition(c, meshv1alpha1.ConditionStalled)
	}

	working := !stalled && m.st.Phase != meshv1alpha1.PhaseHealthy
	if working {
		reason, msg := m.waitReason, m.waitMsg
		if reason == "" {
			reason, msg = string(m.st.Phase), "release of revision "+m.st.CanaryRevision+" in progress"
		}
		setCondition(c, meshv1alpha1.ConditionReconciling, true, reason, msg)
	} else {
		meta.RemoveStatusCondition(c, meshv1alpha1.ConditionReconciling)
	}

	switch {
	case m.st.Phase == meshv1alpha1.PhaseHealthy && applied && !stalled:
		setCondition(c, meshv1alpha1.ConditionReady, true, ReasonHealthy, fmt.Sprintf("revision %s serves all traffic from slot %s", m.st.StableRevision, m.st.StableSlot))
	case stalled:
		setCondition(c, meshv1alpha1.ConditionReady, false, m.stallReason, m.stallMs)
	case m.waitReason != "":
		setCondition(c, meshv1alpha1.ConditionReady, false, m.waitReason, m.waitMsg)
	default:
		setCondition(c, meshv1alpha1.ConditionReady, false, string(m.st.Phase), "the route does not carry the stable split yet")
	}

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
// (or holding on an unreachable Prometheus), its canary is ready, the current step's traffic
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
	if s := obs.Slots[canary]; !s.Ready || s.Revision != st.CanaryRevision {
		return false
	}
	if !obs.Traffic.Accepted || obs.Traffic.Weights[canary] != st.CanaryWeight {
		return false
	}
	if a := st.Analysis; a != nil && a.LastCheck != nil && obs.Now.Sub(a.LastCheck.Time) < spec.Analysis.GetInterval() {
		return false
	}
	return true
}
