package rollout

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// fallbackRequeue bounds how long a release that waits on the API (pods, route status) goes
// without a look, should a watch event be missed.
const fallbackRequeue = 30 * time.Second

// Next decides the next status of a Rollout and what the controller must make true.
func Next(spec *meshv1alpha1.RolloutSpec, status *meshv1alpha1.RolloutStatus, obs Observations) Decision {
	m := &machine{
		spec: spec, st: *status.DeepCopy(), obs: obs,
		slots: map[meshv1alpha1.Slot]SlotIntent{}, want: map[meshv1alpha1.Slot]string{},
	}
	m.run()
	return Decision{
		Status: m.st, Slots: m.slots, Traffic: m.traffic, ScaleTargetToZero: m.scaleTarget,
		Events: m.events, RequeueAfter: m.requeueAfter(), Ended: m.ended, StepOverdue: m.overdue,
	}
}

type machine struct {
	spec *meshv1alpha1.RolloutSpec
	st   meshv1alpha1.RolloutStatus
	obs  Observations

	slots       map[meshv1alpha1.Slot]SlotIntent
	want        map[meshv1alpha1.Slot]string // the revision each slot must serve to get traffic
	traffic     *TrafficIntent
	scaleTarget bool
	events      []Event
	timers      []time.Time

	promote              bool // a promote action skips the current wait
	promoteFull          bool // a promote-full action skips every remaining step
	waitReason, waitMsg  string
	stallReason, stallMs string
	rolledBackMsg        string
	ended                *meshv1alpha1.ReleaseRecord
	overdue              *time.Duration
}

func (m *machine) run() {
	if m.st.StableSlot == "" {
		m.st.StableSlot = meshv1alpha1.SlotA
	}
	m.st.Replicas = m.replicas()
	m.report()
	m.recordProof()
	m.consumeAction()
	switch {
	case m.st.StableRevision == "":
		m.initialize()
	case !m.obs.Target.Found:
		m.holdStable(ReasonTargetNotFound, "the target Deployment was deleted", "the target Deployment does not exist: the stable slot keeps serving")
	case m.obs.Target.Problem != "" && m.obs.Target.Revision != m.st.StableRevision:
		m.holdStable(ReasonTargetMisconfigured, m.obs.Target.Problem, m.obs.Target.Problem+": its revision is not released; the stable slot keeps serving")
	default:
		m.release()
	}
	m.idleSlot()
	m.guard()
	m.conditions()
}

// replicas is the stable slot's pod count: spec.replicas (an autoscaler's), else the
// target's replica count, remembered once the target is scaled to zero; never below one.
func (m *machine) replicas() int32 {
	switch {
	case m.spec.Replicas != nil:
		return max(*m.spec.Replicas, 1)
	case m.obs.Target.Found && m.obs.Target.Replicas > 0:
		return m.obs.Target.Replicas
	case m.st.Replicas > 0:
		return m.st.Replicas
	}
	return 1
}

// report copies what status shows as observed, and says whether an autoscaler drives the
// Rollout's pod count.
func (m *machine) report() {
	r := m.obs.Report
	m.st.CurrentReplicas, m.st.Selector, m.st.Slots, m.st.Autoscaler = r.CurrentReplicas, r.Selector, r.Slots, r.Autoscaler
	switch {
	case r.AutoscalerProblem != "":
		setCondition(&m.st.Conditions, meshv1alpha1.ConditionAutoscaling, false, ReasonAutoscalerMisdirected, r.AutoscalerProblem)
	case r.Autoscaler != "":
		setCondition(&m.st.Conditions, meshv1alpha1.ConditionAutoscaling, true, ReasonAutoscaled,
			fmt.Sprintf("HorizontalPodAutoscaler %s sets spec.replicas: the stable slot runs %d pods, a canary its weight's share", r.Autoscaler, m.st.Replicas))
	default:
		meta.RemoveStatusCondition(&m.st.Conditions, meshv1alpha1.ConditionAutoscaling)
	}
}

func (m *machine) consumeAction() {
	a := m.obs.Action
	if a == "" {
		return
	}
	m.st.LastAction = &meshv1alpha1.ActionRecord{Action: a, Time: metav1.NewTime(m.obs.Now), ID: m.obs.ActionID}
	switch a {
	case meshv1alpha1.ActionPause:
		m.st.ManualPause = true
	case meshv1alpha1.ActionResume:
		m.st.ManualPause = false
	case meshv1alpha1.ActionPromote:
		m.promote = true
	case meshv1alpha1.ActionPromoteFull:
		m.promote, m.promoteFull = true, true
	}
	m.event(false, ReasonAction, "%s requested", a)
}

func (m *machine) initialize() {
	stable := m.st.StableSlot
	m.st.Phase = meshv1alpha1.PhaseInitializing
	if !m.obs.Target.Found {
		m.stall(ReasonTargetNotFound, "the target Deployment does not exist")
		return
	}
	if p := m.obs.Target.Problem; p != "" {
		m.stall(ReasonTargetMisconfigured, p)
		return
	}
	rev := m.obs.Target.Revision
	m.want[stable] = rev
	m.slots[stable] = SlotIntent{Revision: rev, Replicas: m.st.Replicas}
	if m.st.ReleaseStartTime == nil {
		m.st.ReleaseStartTime = m.now()
	}
	if !m.sized(stable, m.st.Replicas) {
		deadline := m.st.ReleaseStartTime.Add(m.spec.GetProgressDeadline())
		if !m.obs.Now.Before(deadline) {
			m.st.Phase = meshv1alpha1.PhaseFailed
			m.stall(ReasonInitializationTimeout, fmt.Sprintf("slot %s did not get %d ready pods of revision %s within %s", stable, m.st.Replicas, rev, m.spec.GetProgressDeadline()))
			return
		}
		m.timer(deadline)
		m.waitFor(ReasonWaitingForPods, "slot %s: waiting for %d ready pods of revision %s", stable, m.st.Replicas, rev)
		return
	}
	m.setTraffic(0, false, 0)
	if !m.trafficInForce() {
		m.waitFor(ReasonWaitingForTraffic, "%s", m.trafficMessage())
		return
	}
	m.st.StableRevision = rev
	m.st.ReleaseStartTime = nil
	m.st.Phase = meshv1alpha1.PhaseHealthy
	m.scaleTarget = true
	m.event(false, ReasonHealthy, "slot %s serves revision %s", stable, rev)
}

// holdStable: the target can't be released (deleted, or misconfigured in a way only a person
// can fix). The stable slot keeps serving; a release in progress is rolled back, since its
// revision is no longer what the target asks for.
func (m *machine) holdStable(reason, rollbackMsg, stallMsg string) {
	stable := m.st.StableSlot
	m.want[stable] = m.st.StableRevision
	m.slots[stable] = SlotIntent{Revision: m.st.StableRevision, Replicas: m.st.Replicas}
	switch {
	case m.releaseActive():
		m.rollback(reason, rollbackMsg)
	case m.st.Phase == meshv1alpha1.PhaseRollingBack:
		m.rolledBack()
	default:
		m.setTraffic(0, false, 0)
	}
	m.stall(reason, stallMsg)
}

// releaseActive: a canary revision is being released (not yet promoted or rolled back).
func (m *machine) releaseActive() bool {
	if m.st.CanaryRevision == "" {
		return false
	}
	switch m.st.Phase {
	case meshv1alpha1.PhaseRollingBack, meshv1alpha1.PhaseRolledBack, meshv1alpha1.PhaseHealthy:
		return false
	}
	return true
}

func (m *machine) release() {
	stable, target := m.st.StableSlot, m.obs.Target.Revision
	m.want[stable] = m.st.StableRevision
	m.slots[stable] = SlotIntent{Revision: m.st.StableRevision, Replicas: m.st.Replicas}
	m.scaleTarget = true
	rolledBack := m.st.Phase == meshv1alpha1.PhaseRollingBack || m.st.Phase == meshv1alpha1.PhaseRolledBack

	switch {
	case target == m.st.StableRevision:
		if m.releaseActive() {
			msg := fmt.Sprintf("the target is back at the stable revision %s: release of %s abandoned", target, m.st.CanaryRevision)
			m.record(meshv1alpha1.OutcomeSuperseded, "", msg)
			m.event(false, ReasonReleaseSuperseded, "%s", msg)
		}
		// The canary slot is idle now: it scales down scaleDownDelay after the route the
		// gateway accepted stops sending it requests (idleSlot).
		m.endRelease()
		m.st.Phase = meshv1alpha1.PhaseHealthy
		m.setTraffic(0, false, 0)
		return
	case rolledBack && target == m.st.CanaryRevision && m.obs.Action != meshv1alpha1.ActionRetry:
		m.rolledBack()
		return
	case target != m.st.CanaryRevision || rolledBack:
		m.startRelease(m.releaseActive())
	}
	m.progress()
}

func (m *machine) startRelease(restart bool) {
	if restart {
		m.record(meshv1alpha1.OutcomeSuperseded, "", fmt.Sprintf("a newer revision %s arrived before the release ended", m.obs.Target.Revision))
	}
	m.endRelease()
	m.st.CanaryRevision = m.obs.Target.Revision
	m.st.CurrentStep = ptr(int32(0))
	m.st.Analysis = &meshv1alpha1.AnalysisStatus{}
	m.st.ReleaseStartTime = m.now()
	m.st.AbortReason = ""
	m.st.Phase = meshv1alpha1.PhaseProgressing
	setCondition(&m.st.Conditions, meshv1alpha1.ConditionPromoted, false, "ReleaseInProgress", "releasing revision "+m.st.CanaryRevision)
	setCondition(&m.st.Conditions, meshv1alpha1.ConditionRolledBack, false, "ReleaseInProgress", "releasing revision "+m.st.CanaryRevision)
	if restart {
		m.event(false, ReasonReleaseRestarted, "a newer revision %s arrived: the release restarts on it", m.st.CanaryRevision)
	} else {
		m.event(false, ReasonReleaseStarted, "releasing revision %s in slot %s (stable %s in slot %s)", m.st.CanaryRevision, m.st.StableSlot.Other(), m.st.StableRevision, m.st.StableSlot)
	}
}

// endRelease clears the bookkeeping of a release.
func (m *machine) endRelease() {
	m.st.CanaryRevision = ""
	m.st.CurrentStep = nil
	m.st.CanaryWeight = 0
	m.st.ReleaseStartTime = nil
	m.st.StepStartTime = nil
	m.st.HoldStartTime = nil
}

func (m *machine) progress() {
	canary := m.st.StableSlot.Other()
	m.want[canary] = m.st.CanaryRevision
	m.slots[canary] = SlotIntent{Revision: m.st.CanaryRevision, Replicas: m.st.Replicas}
	m.st.ScaleDownTime = nil
	defer m.sizeCanary()

	if m.obs.Action == meshv1alpha1.ActionAbort {
		m.rollback(ReasonAborted, "aborted by a manual action")
		return
	}
	if m.obs.Check != nil && m.applyCheck() {
		return
	}
	if !m.servable(canary) {
		m.st.CanaryWeight = 0
		m.setTraffic(0, false, 0)
		deadline := m.st.ReleaseStartTime.Add(m.spec.GetProgressDeadline())
		if !m.obs.Now.Before(deadline) {
			m.rollback(ReasonProgressDeadline, fmt.Sprintf("slot %s did not get %d ready pods of revision %s within %s", canary, m.st.Replicas, m.st.CanaryRevision, m.spec.GetProgressDeadline()))
			return
		}
		m.st.Phase = meshv1alpha1.PhaseProgressing
		m.timer(deadline)
		m.waitFor(ReasonWaitingForPods, "slot %s: waiting for %d ready pods of revision %s", canary, m.st.Replicas, m.st.CanaryRevision)
		return
	}
	if m.spec.Paused || m.st.ManualPause {
		m.st.Phase = meshv1alpha1.PhasePaused
		m.holdTraffic()
		m.waitFor(ReasonPaused, "paused (%s): weights frozen at %d%% on the canary", m.pausedBy(), m.st.CanaryWeight)
		return
	}
	if m.st.HoldStartTime != nil {
		m.hold()
		return
	}
	if m.inconclusiveExceeded() {
		m.inconclusiveHold()
		return
	}
	if m.spec.Strategy.BlueGreen != nil {
		m.blueGreen()
		return
	}
	m.canarySteps()
}

func (m *machine) pausedBy() string {
	if m.spec.Paused {
		return "spec.paused"
	}
	return "pause action"
}

// applyCheck records a gate check; it returns true when the release was rolled back.
func (m *machine) applyCheck() bool {
	c := m.obs.Check
	a := m.st.Analysis
	if a == nil {
		a = &meshv1alpha1.AnalysisStatus{}
		m.st.Analysis = a
	}
	a.LastCheck = m.now()
	if !c.Started.IsZero() {
		// The next check is due an interval after this one began, however long it took.
		a.LastCheck = &metav1.Time{Time: c.Started}
	}
	a.Verdict = c.Verdict
	a.Gates = c.Gates
	fail := false
	switch c.Verdict {
	case meshv1alpha1.VerdictPass:
		a.Passed++
		a.ConsecutiveInconclusive = 0
		if m.inAnalysisWindow() {
			a.StepPassed++
		}
		m.endHold()
	case meshv1alpha1.VerdictInconclusive:
		a.Inconclusive++
		if !c.Premature {
			a.ConsecutiveInconclusive++
		}
		m.endHold()
	case meshv1alpha1.VerdictUnreachable:
		a.Unreachable++
		if m.spec.Analysis.GetOnUnreachable() == meshv1alpha1.OnUnreachableRollback {
			fail = true
		} else if m.st.HoldStartTime == nil {
			m.st.HoldStartTime = m.now()
			m.event(true, ReasonHolding, "Prometheus unreachable: holding weights at %d%% (%s)", m.st.CanaryWeight, c.Message)
		}
	case meshv1alpha1.VerdictFail:
		a.ConsecutiveInconclusive = 0
		fail = true
	}
	if !fail {
		return false
	}
	a.Failed++
	if a.Failed > m.spec.Analysis.GetFailureLimit() {
		m.rollback(ReasonGateFailed, fmt.Sprintf("%d failed checks (limit %d): %s", a.Failed, m.spec.Analysis.GetFailureLimit(), c.Message))
		return true
	}
	return false
}

func (m *machine) endHold() {
	if m.st.HoldStartTime != nil {
		m.event(false, ReasonProgressing, "Prometheus reachable again after %s: the release resumes", m.obs.Now.Sub(m.st.HoldStartTime.Time).Round(time.Second))
	}
	m.st.HoldStartTime = nil
}

// inAnalysisWindow: the current step counts passing checks (an analysis step whose traffic is
// in force, or blue-green pre-promotion checks).
func (m *machine) inAnalysisWindow() bool {
	if m.st.StepStartTime == nil {
		return false
	}
	if m.spec.Strategy.BlueGreen != nil {
		return true
	}
	steps := Steps(m.spec)
	i := int(deref(m.st.CurrentStep))
	return i < len(steps) && steps[i].Analysis != nil
}

// hold freezes the weights while Prometheus is unreachable; past maxHold the Rollout is
// Stalled, still frozen: never promoted, never rolled back, until Prometheus answers.
func (m *machine) hold() {
	m.st.Phase = meshv1alpha1.PhaseHolding
	m.holdTraffic()
	end := m.st.HoldStartTime.Add(m.spec.Analysis.GetMaxHold())
	if !m.obs.Now.Before(end) {
		m.stall(ReasonMaxHoldExceeded, fmt.Sprintf("Prometheus unreachable for %s (maxHold %s): weights stay at %d%% until it answers or someone acts", m.obs.Now.Sub(m.st.HoldStartTime.Time).Round(time.Second), m.spec.Analysis.GetMaxHold(), m.st.CanaryWeight))
		return
	}
	m.timer(end)
	m.waitFor(ReasonHolding, "Prometheus unreachable since %s: weights held at %d%%", m.st.HoldStartTime.UTC().Format(time.RFC3339), m.st.CanaryWeight)
}

// inconclusiveExceeded: more inconclusive checks in a row than spec.analysis.inconclusiveLimit.
// A promote action clears the count (the person judged the release instead).
func (m *machine) inconclusiveExceeded() bool {
	a := m.st.Analysis
	if a == nil || m.spec.Analysis == nil {
		return false
	}
	if m.promote {
		a.ConsecutiveInconclusive = 0
		return false
	}
	return a.ConsecutiveInconclusive > m.spec.Analysis.GetInconclusiveLimit()
}

// inconclusiveHold freezes the weights while the gates produce no verdict: never promoted,
// never rolled back (no Fail was seen), Stalled until a check passes or someone acts.
func (m *machine) inconclusiveHold() {
	m.st.Phase = meshv1alpha1.PhaseHolding
	m.holdTraffic()
	a := m.st.Analysis
	why := ""
	for _, g := range a.Gates {
		if g.Verdict != meshv1alpha1.VerdictPass && g.Message != "" {
			why = fmt.Sprintf(" (last: %s/%s: %s)", g.Gate, g.Name, g.Message)
			break
		}
	}
	m.stall(ReasonInconclusiveLimit, fmt.Sprintf("%d inconclusive checks in a row (limit %d)%s: weights stay at %d%% until a check passes or someone promotes or aborts",
		a.ConsecutiveInconclusive, m.spec.Analysis.GetInconclusiveLimit(), why, m.st.CanaryWeight))
}

func (m *machine) canarySteps() {
	if m.st.Phase == meshv1alpha1.PhasePromoting {
		m.promoting()
		return
	}
	steps := Steps(m.spec)
	for {
		i := int(deref(m.st.CurrentStep))
		if m.promoteFull && i < len(steps) {
			// Recorded as the step count, so the decision outlives this reconcile.
			m.promoteFull = false
			m.st.CurrentStep = ptr(int32(len(steps)))
			m.st.StepStartTime = nil
			m.event(false, ReasonAction, "promote-full: steps %d to %d skipped", i, len(steps)-1)
			continue
		}
		if i >= len(steps) {
			m.promoting()
			return
		}
		m.st.Phase = meshv1alpha1.PhaseProgressing
		weight := WeightAt(steps, i)
		if (weight > 0 || m.matchesWanted() || m.mirrorPercent() > 0) && !m.canaryProven() {
			m.st.CanaryWeight = 0
			m.st.StepStartTime = nil
			m.setTraffic(0, false, 0)
			m.waitFor(ReasonWaitingForDataPlane, "step %d/%d: proving that slot %s answers through the data plane before it gets traffic: %s",
				i+1, len(steps), m.st.StableSlot.Other(), m.dataPlaneMessage())
			return
		}
		if need := m.canaryReplicas(); weight > m.obs.Traffic.Weights[m.st.StableSlot.Other()] && !m.sized(m.st.StableSlot.Other(), need) {
			// More weight only to a canary with its share of pods ready: the weight the
			// route gives it stays (a scale-up under way never takes traffic away).
			m.st.StepStartTime = nil
			m.holdRoute()
			m.waitFor(ReasonWaitingForPods, "step %d/%d: slot %s needs %d ready pods for %d%% (%d ready)",
				i+1, len(steps), m.st.StableSlot.Other(), need, weight, m.obs.Slots[m.st.StableSlot.Other()].Available)
			return
		}
		m.st.CanaryWeight = weight
		m.setTraffic(m.st.CanaryWeight, true, m.mirrorPercent())
		if !m.trafficInForce() {
			m.st.StepStartTime = nil
			m.waitFor(ReasonWaitingForTraffic, "step %d/%d: %s", i+1, len(steps), m.trafficMessage())
			return
		}
		if m.st.StepStartTime == nil {
			m.st.StepStartTime = m.now()
		}
		if !m.stepDone(steps[i], i, len(steps)) {
			return
		}
		m.st.CurrentStep = ptr(int32(i + 1))
		m.st.StepStartTime = nil
		if m.st.Analysis != nil {
			m.st.Analysis.StepPassed = 0
		}
	}
}

// stepDone says whether step i of n is complete; if not, it records what it waits for.
// Messages count steps from 1, as kubectl sluice shows them (status keeps the 0-based index).
func (m *machine) stepDone(step meshv1alpha1.CanaryStep, i, n int) bool {
	if m.promote && (step.Pause != nil || step.Analysis != nil) {
		m.promote = false
		return true
	}
	switch {
	case step.Pause != nil && step.Pause.Duration != nil:
		end := m.st.StepStartTime.Add(step.Pause.Duration.Duration)
		if !m.obs.Now.Before(end) {
			late := m.obs.Now.Sub(end)
			m.overdue = &late
			return true
		}
		m.timer(end)
		m.waitFor(ReasonProgressing, "step %d/%d: pause until %s at %d%%", i+1, n, end.UTC().Format(time.RFC3339), m.st.CanaryWeight)
		return false
	case step.Pause != nil:
		m.st.Phase = meshv1alpha1.PhasePaused
		m.waitFor(ReasonWaitingForPromote, "step %d/%d: waiting for a promote action at %d%%", i+1, n, m.st.CanaryWeight)
		return false
	case step.Analysis != nil:
		passed := int32(0)
		if m.st.Analysis != nil {
			passed = m.st.Analysis.StepPassed
		}
		if passed >= step.Analysis.Checks {
			return true
		}
		m.waitFor(ReasonProgressing, "step %d/%d: %d of %d passing checks at %d%%", i+1, n, passed, step.Analysis.Checks, m.st.CanaryWeight)
		return false
	}
	return true // setWeight: done once its traffic is in force
}

func (m *machine) blueGreen() {
	if m.st.Phase == meshv1alpha1.PhasePromoting {
		m.promoting()
		return
	}
	bg := m.spec.Strategy.BlueGreen
	m.st.Phase = meshv1alpha1.PhaseProgressing
	m.st.CanaryWeight = 0
	m.setTraffic(0, false, 0)
	if m.st.StepStartTime == nil {
		m.st.StepStartTime = m.now()
	}
	passed := int32(0)
	if m.st.Analysis != nil {
		passed = m.st.Analysis.StepPassed
	}
	if need := bg.GetPrePromotionChecks(); passed < need && !m.promote {
		m.waitFor(ReasonProgressing, "preview: %d of %d passing pre-promotion checks", passed, need)
		return
	}
	if !m.canaryProven() {
		m.waitFor(ReasonWaitingForDataPlane, "proving that slot %s answers through the data plane before the switch: %s", m.st.StableSlot.Other(), m.dataPlaneMessage())
		return
	}
	if !bg.AutoPromote && !m.promote {
		m.st.Phase = meshv1alpha1.PhasePaused
		m.waitFor(ReasonWaitingForPromote, "preview ready in slot %s: waiting for a promote action", m.st.StableSlot.Other())
		return
	}
	m.promoting()
}

// promoting moves the last weight to the canary, then makes its slot the stable one. The
// analyzed pods keep running: nothing of the slot's template changes.
func (m *machine) promoting() {
	canary := m.st.StableSlot.Other()
	if !m.canaryProven() {
		// Never more weight to a canary the data plane has not shown to answer: a promote-full
		// can come before the first step's weight, and while promoting a late proof of a split
		// the route carried before (the stable slot's probe) can replace the canary's. The
		// phase stays what it was.
		m.st.CanaryWeight = 0
		m.setTraffic(0, false, 0)
		m.waitFor(ReasonWaitingForDataPlane, "promotion: proving that slot %s answers through the data plane before it gets traffic: %s",
			canary, m.dataPlaneMessage())
		return
	}
	if !m.sized(canary, m.st.Replicas) {
		// The canary takes all traffic only with as many ready pods as the stable slot runs:
		// promotion never dips capacity. The weight the route gives it stays meanwhile.
		m.holdRoute()
		m.waitFor(ReasonWaitingForPods, "promotion: slot %s scales to %d ready pods before it takes all traffic (%d ready)", canary, m.st.Replicas, m.obs.Slots[canary].Available)
		return
	}
	if m.st.Phase != meshv1alpha1.PhasePromoting {
		m.event(false, ReasonPromoting, "moving all traffic to revision %s in slot %s", m.st.CanaryRevision, canary)
	}
	m.st.Phase = meshv1alpha1.PhasePromoting
	m.st.CanaryWeight = 100
	m.setTraffic(100, false, 0)
	if !m.trafficInForce() {
		m.waitFor(ReasonWaitingForTraffic, "promotion: %s", m.trafficMessage())
		return
	}
	old, rev := m.st.StableSlot, m.st.CanaryRevision
	m.record(meshv1alpha1.OutcomePromoted, "", "revision "+rev+" promoted in slot "+string(canary))
	m.st.StableSlot, m.st.StableRevision = canary, rev
	m.endRelease()
	m.st.Phase = meshv1alpha1.PhaseHealthy
	m.want = map[meshv1alpha1.Slot]string{canary: rev}
	m.slots = map[meshv1alpha1.Slot]SlotIntent{canary: {Revision: rev, Replicas: m.st.Replicas}}
	m.setTraffic(0, false, 0)
	setCondition(&m.st.Conditions, meshv1alpha1.ConditionPromoted, true, ReasonPromoted, "revision "+rev+" promoted in slot "+string(canary))
	m.event(false, ReasonPromoted, "revision %s promoted: slot %s is stable, slot %s scales down in %s", rev, canary, old, m.spec.Strategy.GetScaleDownDelay())
}

// rollback puts all traffic back on the stable slot at once.
func (m *machine) rollback(reason, msg string) {
	if m.st.Phase != meshv1alpha1.PhaseRollingBack {
		m.event(true, ReasonRollingBack, "%s: %s", reason, msg)
		// Recorded when decided, not when the route carries it: a newer revision may arrive
		// before that, and the rollback must stay on record (and in the metrics).
		m.record(meshv1alpha1.OutcomeRolledBack, reason, msg)
	}
	m.st.Phase = meshv1alpha1.PhaseRollingBack
	m.st.AbortReason = reason
	m.rolledBackMsg = msg
	setCondition(&m.st.Conditions, meshv1alpha1.ConditionRolledBack, true, reason, msg)
	m.st.CurrentStep = nil
	m.st.StepStartTime = nil
	m.st.HoldStartTime = nil
	m.rolledBack()
}

// rolledBack keeps all traffic on the stable slot; once the route carries it, the release is
// RolledBack and the canary slot scales down after scaleDownDelay.
func (m *machine) rolledBack() {
	canary := m.st.StableSlot.Other()
	m.st.CanaryWeight = 0
	m.setTraffic(0, false, 0)
	if m.st.Phase == meshv1alpha1.PhaseRollingBack {
		if !m.trafficInForce() {
			// The canary pods stay up until the route no longer sends them anything.
			m.slots[canary] = SlotIntent{Keep: true}
			m.waitFor(ReasonWaitingForTraffic, "rollback: %s", m.trafficMessage())
			return
		}
		m.st.Phase = meshv1alpha1.PhaseRolledBack
		m.event(true, ReasonRolledBack, "revision %s rolled back (%s): all traffic on revision %s in slot %s", m.st.CanaryRevision, m.st.AbortReason, m.st.StableRevision, m.st.StableSlot)
	}
	m.stall(ReasonRolledBack, fmt.Sprintf("revision %s was rolled back (%s); change the target or use the retry action", m.st.CanaryRevision, m.st.AbortReason))
}

// idleSlot scales the slot that serves no release down, scaleDownDelay after the route the
// gateway accepted stopped sending it requests: warm pods for a quick return, and never a pod
// going away while the data plane may still pick it.
func (m *machine) idleSlot() {
	idle := m.st.StableSlot.Other()
	if _, set := m.slots[idle]; set {
		return
	}
	if m.obs.Slots[idle].Replicas == 0 {
		m.st.ScaleDownTime = nil
		m.slots[idle] = SlotIntent{}
		return
	}
	if !m.drained(idle) {
		m.slots[idle] = SlotIntent{Keep: true} // the delay starts once the route lets go
		return
	}
	if m.st.ScaleDownTime == nil {
		m.st.ScaleDownTime = m.after(m.spec.Strategy.GetScaleDownDelay())
	}
	if t := m.st.ScaleDownTime.Time; m.obs.Now.Before(t) {
		m.timer(t)
		m.slots[idle] = SlotIntent{Keep: true}
		return
	}
	// ScaleDownTime stays set until the slot is seen at zero: a reconcile that still sees
	// the old replica count must not start the delay again.
	m.slots[idle] = SlotIntent{}
}

// guard enforces, whatever the path above: no weight, match or mirror to a canary slot that
// is not ready with the revision it must serve; no slot loses its pods, and the canary slot
// gets no new template, while the route the gateway accepted may still send it requests.
func (m *machine) guard() {
	canary := m.st.StableSlot.Other()
	if m.traffic != nil && !m.servable(canary) {
		m.traffic.Weights[m.st.StableSlot] += m.traffic.Weights[canary]
		m.traffic.Weights[canary] = 0
		m.traffic.Matches = false
		m.traffic.MirrorPercent = 0
	}
	for s, intent := range m.slots {
		if !intent.Keep && intent.Replicas == 0 && m.obs.Slots[s].Replicas > 0 && !m.drained(s) {
			m.slots[s] = SlotIntent{Keep: true}
		}
	}
	// Only the canary slot's template: the stable slot's changes only while initializing,
	// where nothing else can serve and the Deployment's rolling update keeps it available.
	intent, obs := m.slots[canary], m.obs.Slots[canary]
	if intent.Keep || intent.Revision == "" || intent.Revision == obs.Revision || obs.Revision == "" || obs.Replicas == 0 {
		return
	}
	if !m.drained(canary) {
		intent.Revision = "" // the route may still reach the old pods: change them next time
		m.slots[canary] = intent
	}
}

// drained: the route exists, the gateway accepted its current generation, and no rule Sluice
// drives can send the slot a request.
func (m *machine) drained(s meshv1alpha1.Slot) bool {
	t := m.obs.Traffic
	return t.Found && t.Accepted && m.served() && !t.Reaches[s]
}

// record puts the release that ends now at the head of status.history.
func (m *machine) record(outcome meshv1alpha1.ReleaseOutcome, reason, msg string) {
	if len(msg) > 1024 {
		msg = msg[:1021] + "..."
	}
	rec := meshv1alpha1.ReleaseRecord{Revision: m.st.CanaryRevision, Outcome: outcome, AbortReason: reason, Message: msg,
		StartTime: m.st.ReleaseStartTime, EndTime: metav1.NewTime(m.obs.Now)}
	m.st.History = append([]meshv1alpha1.ReleaseRecord{rec}, m.st.History...)
	if len(m.st.History) > maxHistory {
		m.st.History = m.st.History[:maxHistory]
	}
	m.ended = &rec
}

// maxHistory is status.history's bound (MaxItems in the API).
const maxHistory = 10

// servable: the slot runs the revision it must serve, and only that, with a ready pod.
func (m *machine) servable(s meshv1alpha1.Slot) bool {
	obs := m.obs.Slots[s]
	return obs.Available > 0 && obs.Revision != "" && obs.Revision == m.want[s]
}

// sized: the slot is servable with at least n ready pods.
func (m *machine) sized(s meshv1alpha1.Slot, n int32) bool {
	return m.servable(s) && m.obs.Slots[s].Available >= n
}

// share is the canary's pod count for weight percent of traffic when n pods carry all of it:
// its share rounded up, at least one pod (a success rate over no pod means nothing), at most n.
func share(n, weight int32) int32 {
	c := (int64(n)*int64(weight) + 99) / 100
	return int32(min(max(c, 1), int64(n)))
}

// canaryReplicas is the canary slot's pod count: its share of the current step's weight (or
// mirror) during canary steps; the stable slot's count for a blue-green preview (it takes all
// traffic at the switch), with A/B matches (the matching requests' share is unknown: they may
// be most of the traffic) and from promotion on.
func (m *machine) canaryReplicas() int32 {
	n := m.st.Replicas
	steps := Steps(m.spec)
	i := int(deref(m.st.CurrentStep))
	if m.spec.Strategy.BlueGreen != nil || m.matchesWanted() || m.st.Phase == meshv1alpha1.PhasePromoting || i >= len(steps) {
		return n
	}
	return share(n, max(WeightAt(steps, i), m.st.CanaryWeight, m.mirrorPercent()))
}

// sizeCanary sets the canary slot's pod count once the release's step is decided.
func (m *machine) sizeCanary() {
	canary := m.st.StableSlot.Other()
	in, ok := m.slots[canary]
	if !ok || in.Keep || in.Revision == "" || in.Revision != m.st.CanaryRevision {
		return
	}
	if m.releaseActive() {
		in.Replicas = m.canaryReplicas()
	} else if cur := m.obs.Slots[canary].Replicas; cur > 0 {
		in.Replicas = min(in.Replicas, cur) // rolled back: never scaled up on the way out
	}
	m.slots[canary] = in
}

func (m *machine) setTraffic(canaryWeight int32, matches bool, mirror int32) {
	stable := m.st.StableSlot
	m.traffic = &TrafficIntent{
		Weights:       map[meshv1alpha1.Slot]int32{stable: 100 - canaryWeight, stable.Other(): canaryWeight},
		Matches:       matches && m.matchesWanted(),
		MirrorPercent: mirror,
	}
	m.probeTraffic()
}

func (m *machine) matchesWanted() bool {
	return m.spec.Strategy.Canary != nil && len(m.spec.Strategy.Canary.Match) > 0
}

// probeTraffic points the data-plane probe rule at the canary while a release runs and its
// slot is ready (its first weight, or a blue-green switch, waits for that proof), and at the
// stable slot otherwise (every later split is proven served through it).
func (m *machine) probeTraffic() {
	if m.traffic == nil || m.obs.Traffic.ProbeOff {
		return
	}
	slot := m.st.StableSlot
	if canary := slot.Other(); m.releaseActive() && m.servable(canary) {
		slot = canary
	}
	m.traffic.ProbeSlot, m.traffic.ProbeRevision = slot, m.obs.Slots[slot].Revision
}

// recordProof keeps the data plane's proof for the split the route carries now.
func (m *machine) recordProof() {
	t := m.obs.Traffic
	p := t.Proof
	if p == nil || !p.OK || t.Split == "" || p.Split != t.Split {
		return
	}
	if d := m.st.DataPlane; d != nil && d.Split == t.Split {
		return // already on record
	}
	dp := &meshv1alpha1.DataPlaneStatus{Split: t.Split, Slot: t.ProbeSlot, Revision: t.ProbeRevision, Probed: p.Probed,
		Latency: &metav1.Duration{Duration: p.Latency}, Time: m.now(), Message: p.Message}
	if len(dp.Message) > 1024 {
		dp.Message = dp.Message[:1021] + "..."
	}
	m.st.DataPlane = dp
}

// served: the data plane was proven to serve the split the route carries (or no probe is
// wanted).
func (m *machine) served() bool {
	return served(&m.st, m.obs.Traffic)
}

func served(st *meshv1alpha1.RolloutStatus, t TrafficState) bool {
	return t.ProbeOff || (t.Split != "" && st.DataPlane != nil && st.DataPlane.Split == t.Split)
}

// canaryProven: the canary slot was proven to answer through the data plane, running the
// revision under release.
func (m *machine) canaryProven() bool {
	if m.obs.Traffic.ProbeOff {
		return true
	}
	d := m.st.DataPlane
	return d != nil && d.Slot == m.st.StableSlot.Other() && d.Revision == m.st.CanaryRevision
}

func (m *machine) dataPlaneMessage() string {
	if p := m.obs.Traffic.Proof; p != nil && p.Message != "" {
		return p.Message
	}
	return "waiting for the probe"
}

// holdTraffic keeps the weights, matches and mirror of the current step, unless the proof on
// record is no longer the canary's (a late proof of an earlier split replaced it): then the
// canary gets nothing until the data plane shows again that it answers.
func (m *machine) holdTraffic() {
	if !m.canaryProven() {
		m.st.CanaryWeight = 0
		m.setTraffic(0, false, 0)
		return
	}
	m.setTraffic(m.st.CanaryWeight, true, m.mirrorPercent())
}

// holdRoute keeps what the route gives the canary now, never more than the step decided.
func (m *machine) holdRoute() {
	obs := m.obs.Traffic
	m.st.CanaryWeight = min(m.st.CanaryWeight, obs.Weights[m.st.StableSlot.Other()])
	m.setTraffic(m.st.CanaryWeight, obs.Matches, min(obs.MirrorPercent, m.mirrorPercent()))
}

func (m *machine) mirrorPercent() int32 {
	if c := m.spec.Strategy.Canary; c != nil && c.Mirror != nil {
		return c.Mirror.Percent
	}
	return 0
}

// trafficInForce: the route carries the intended split, its parents accepted it, and the data
// plane was proven to serve it.
func (m *machine) trafficInForce() bool {
	t, obs := m.traffic, m.obs.Traffic
	if t == nil || !obs.Found || !obs.Accepted || obs.Matches != t.Matches || obs.MirrorPercent != t.MirrorPercent {
		return false
	}
	if !obs.ProbeOff && (obs.ProbeSlot != t.ProbeSlot || obs.ProbeRevision != t.ProbeRevision || !m.served()) {
		return false
	}
	for s, w := range t.Weights {
		if obs.Weights[s] != w {
			return false
		}
	}
	return true
}

func (m *machine) trafficMessage() string {
	obs := m.obs.Traffic
	switch {
	case !obs.Found:
		return "the route does not exist yet"
	case !obs.Accepted:
		if obs.Message != "" {
			return "the route is not accepted yet: " + obs.Message
		}
		return "the route is not accepted yet"
	case m.sameSplit() && !m.served():
		return "the gateway accepted the route; waiting for the data plane to serve it: " + m.dataPlaneMessage()
	}
	return fmt.Sprintf("waiting for the route to carry %s (it carries %s)", formatWeights(m.traffic.Weights), formatWeights(obs.Weights))
}

// sameSplit: the route's weights, matches, mirror and probe rule are the intended ones.
func (m *machine) sameSplit() bool {
	t, obs := m.traffic, m.obs.Traffic
	if t == nil || obs.Matches != t.Matches || obs.MirrorPercent != t.MirrorPercent || (!obs.ProbeOff && (obs.ProbeSlot != t.ProbeSlot || obs.ProbeRevision != t.ProbeRevision)) {
		return false
	}
	for s, w := range t.Weights {
		if obs.Weights[s] != w {
			return false
		}
	}
	return true
}

func formatWeights(w map[meshv1alpha1.Slot]int32) string {
	return fmt.Sprintf("a=%d%% b=%d%%", w[meshv1alpha1.SlotA], w[meshv1alpha1.SlotB])
}

func (m *machine) waitFor(reason, format string, args ...any) {
	m.waitReason, m.waitMsg = reason, fmt.Sprintf(format, args...)
}

func (m *machine) stall(reason, msg string) {
	m.stallReason, m.stallMs = reason, msg
}

func (m *machine) event(warning bool, reason, format string, args ...any) {
	m.events = append(m.events, Event{Warning: warning, Reason: reason, Message: fmt.Sprintf(format, args...)})
}

func (m *machine) timer(t time.Time) { m.timers = append(m.timers, t) }

func (m *machine) requeueAfter() time.Duration {
	var d time.Duration
	for _, t := range m.timers {
		if w := t.Sub(m.obs.Now); d == 0 || w < d {
			d = w
		}
	}
	if d <= 0 && len(m.timers) > 0 {
		d = 100 * time.Millisecond
	}
	if m.st.CanaryRevision != "" && m.spec.Analysis != nil && m.checkPhase() {
		next := m.spec.Analysis.GetInterval()
		if a := m.st.Analysis; a != nil && a.LastCheck != nil {
			next = a.LastCheck.Add(next).Sub(m.obs.Now)
		}
		if next > 0 && (d == 0 || next < d) {
			d = next
		}
	}
	if d == 0 && m.waitReason != "" {
		d = fallbackRequeue
	}
	return d
}

func (m *machine) checkPhase() bool {
	return m.st.Phase == meshv1alpha1.PhaseProgressing || m.st.Phase == meshv1alpha1.PhaseHolding
}

func (m *machine) now() *metav1.Time {
	t := metav1.NewTime(m.obs.Now)
	return &t
}

func (m *machine) after(d time.Duration) *metav1.Time {
	t := metav1.NewTime(m.obs.Now.Add(d))
	return &t
}

func ptr[T any](v T) *T { return &v }

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
