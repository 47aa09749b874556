package rollout

import (
	"fmt"
	"time"

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
		Events: m.events, RequeueAfter: m.requeueAfter(),
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
	waitReason, waitMsg  string
	stallReason, stallMs string
	rolledBackMsg        string
}

func (m *machine) run() {
	if m.st.StableSlot == "" {
		m.st.StableSlot = meshv1alpha1.SlotA
	}
	m.st.Replicas = m.replicas()
	m.consumeAction()
	switch {
	case m.st.StableRevision == "":
		m.initialize()
	case !m.obs.Target.Found:
		m.targetMissing()
	default:
		m.release()
	}
	m.idleSlot()
	m.guard()
	m.conditions()
}

// replicas is the target's replica count, remembered once the target is scaled to zero.
func (m *machine) replicas() int32 {
	switch {
	case m.obs.Target.Found && m.obs.Target.Replicas > 0:
		return m.obs.Target.Replicas
	case m.st.Replicas > 0:
		return m.st.Replicas
	}
	return 1
}

func (m *machine) consumeAction() {
	a := m.obs.Action
	if a == "" {
		return
	}
	m.st.LastAction = &meshv1alpha1.ActionRecord{Action: a, Time: metav1.NewTime(m.obs.Now)}
	switch a {
	case meshv1alpha1.ActionPause:
		m.st.ManualPause = true
	case meshv1alpha1.ActionResume:
		m.st.ManualPause = false
	case meshv1alpha1.ActionPromote:
		m.promote = true
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
	rev := m.obs.Target.Revision
	m.want[stable] = rev
	m.slots[stable] = SlotIntent{Revision: rev, Replicas: m.st.Replicas}
	if m.st.ReleaseStartTime == nil {
		m.st.ReleaseStartTime = m.now()
	}
	if !m.servable(stable) {
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

// targetMissing: the user deleted the target. The stable slot keeps serving; a release in
// progress is rolled back, since its revision is no longer wanted.
func (m *machine) targetMissing() {
	stable := m.st.StableSlot
	m.want[stable] = m.st.StableRevision
	m.slots[stable] = SlotIntent{Revision: m.st.StableRevision, Replicas: m.st.Replicas}
	if m.releaseActive() {
		m.rollback(ReasonTargetNotFound, "the target Deployment was deleted")
	} else {
		m.setTraffic(0, false, 0)
	}
	m.stall(ReasonTargetNotFound, "the target Deployment does not exist: the stable slot keeps serving")
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
			m.event(false, ReasonReleaseSuperseded, "the target is back at the stable revision %s: release of %s abandoned", target, m.st.CanaryRevision)
		}
		if m.st.CanaryRevision != "" && m.st.ScaleDownTime == nil {
			m.st.ScaleDownTime = m.after(m.spec.Strategy.GetScaleDownDelay())
		}
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
	a.Verdict = c.Verdict
	a.Gates = c.Gates
	fail := false
	switch c.Verdict {
	case meshv1alpha1.VerdictPass:
		a.Passed++
		if m.inAnalysisWindow() {
			a.StepPassed++
		}
		m.endHold()
	case meshv1alpha1.VerdictInconclusive:
		a.Inconclusive++
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

func (m *machine) canarySteps() {
	if m.st.Phase == meshv1alpha1.PhasePromoting {
		m.promoting()
		return
	}
	steps := Steps(m.spec)
	for {
		i := int(deref(m.st.CurrentStep))
		if i >= len(steps) {
			m.promoting()
			return
		}
		m.st.Phase = meshv1alpha1.PhaseProgressing
		m.st.CanaryWeight = WeightAt(steps, i)
		m.setTraffic(m.st.CanaryWeight, true, m.mirrorPercent())
		if !m.trafficInForce() {
			m.st.StepStartTime = nil
			m.waitFor(ReasonWaitingForTraffic, "step %d: %s", i, m.trafficMessage())
			return
		}
		if m.st.StepStartTime == nil {
			m.st.StepStartTime = m.now()
		}
		if !m.stepDone(steps[i], i) {
			return
		}
		m.st.CurrentStep = ptr(int32(i + 1))
		m.st.StepStartTime = nil
		if m.st.Analysis != nil {
			m.st.Analysis.StepPassed = 0
		}
	}
}

// stepDone says whether step i is complete; if not, it records what it waits for.
func (m *machine) stepDone(step meshv1alpha1.CanaryStep, i int) bool {
	if m.promote && (step.Pause != nil || step.Analysis != nil) {
		m.promote = false
		return true
	}
	switch {
	case step.Pause != nil && step.Pause.Duration != nil:
		end := m.st.StepStartTime.Add(step.Pause.Duration.Duration)
		if !m.obs.Now.Before(end) {
			return true
		}
		m.timer(end)
		m.waitFor(ReasonProgressing, "step %d: pause until %s at %d%%", i, end.UTC().Format(time.RFC3339), m.st.CanaryWeight)
		return false
	case step.Pause != nil:
		m.st.Phase = meshv1alpha1.PhasePaused
		m.waitFor(ReasonWaitingForPromote, "step %d: waiting for a promote action at %d%%", i, m.st.CanaryWeight)
		return false
	case step.Analysis != nil:
		passed := int32(0)
		if m.st.Analysis != nil {
			passed = m.st.Analysis.StepPassed
		}
		if passed >= step.Analysis.Checks {
			return true
		}
		m.waitFor(ReasonProgressing, "step %d: %d of %d passing checks at %d%%", i, passed, step.Analysis.Checks, m.st.CanaryWeight)
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
	m.st.StableSlot, m.st.StableRevision = canary, rev
	m.endRelease()
	m.st.Phase = meshv1alpha1.PhaseHealthy
	m.st.ScaleDownTime = m.after(m.spec.Strategy.GetScaleDownDelay())
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
			m.slots[canary] = SlotIntent{Replicas: m.obs.Slots[canary].Replicas}
			m.waitFor(ReasonWaitingForTraffic, "rollback: %s", m.trafficMessage())
			return
		}
		m.st.Phase = meshv1alpha1.PhaseRolledBack
		m.st.ScaleDownTime = m.after(m.spec.Strategy.GetScaleDownDelay())
		m.event(true, ReasonRolledBack, "revision %s rolled back (%s): all traffic on revision %s in slot %s", m.st.CanaryRevision, m.st.AbortReason, m.st.StableRevision, m.st.StableSlot)
	}
	m.stall(ReasonRolledBack, fmt.Sprintf("revision %s was rolled back (%s); change the target or use the retry action", m.st.CanaryRevision, m.st.AbortReason))
}

// idleSlot scales the slot that serves nothing down once its scaleDownTime passed.
func (m *machine) idleSlot() {
	idle := m.st.StableSlot.Other()
	if _, set := m.slots[idle]; set {
		return
	}
	replicas := int32(0)
	if t := m.st.ScaleDownTime; t != nil {
		if m.obs.Now.Before(t.Time) {
			replicas = m.obs.Slots[idle].Replicas
			m.timer(t.Time)
		} else {
			m.st.ScaleDownTime = nil
		}
	}
	m.slots[idle] = SlotIntent{Replicas: replicas}
}

// guard enforces, whatever the path above: no weight, match or mirror to a canary slot that
// is not ready with the revision it must serve, and no template change of the canary slot
// while the route still sends it requests.
func (m *machine) guard() {
	canary := m.st.StableSlot.Other()
	if m.traffic != nil && !m.servable(canary) {
		m.traffic.Weights[m.st.StableSlot] += m.traffic.Weights[canary]
		m.traffic.Weights[canary] = 0
		m.traffic.Matches = false
		m.traffic.MirrorPercent = 0
	}
	// Only the canary slot: the stable slot's template changes only while initializing, where
	// nothing else can serve and the Deployment's rolling update keeps it available.
	intent, obs := m.slots[canary], m.obs.Slots[canary]
	if intent.Revision == "" || intent.Revision == obs.Revision || obs.Revision == "" {
		return
	}
	if m.obs.Traffic.Weights[canary] > 0 || m.obs.Traffic.Matches || m.obs.Traffic.MirrorPercent > 0 {
		intent.Revision = "" // the route still reaches the old pods: change them next time
		m.slots[canary] = intent
	}
}

// servable: the slot is ready and runs the revision it must serve.
func (m *machine) servable(s meshv1alpha1.Slot) bool {
	obs := m.obs.Slots[s]
	return obs.Ready && obs.Revision != "" && obs.Revision == m.want[s]
}

func (m *machine) setTraffic(canaryWeight int32, matches bool, mirror int32) {
	stable := m.st.StableSlot
	m.traffic = &TrafficIntent{
		Weights:       map[meshv1alpha1.Slot]int32{stable: 100 - canaryWeight, stable.Other(): canaryWeight},
		Matches:       matches && m.spec.Strategy.Canary != nil && len(m.spec.Strategy.Canary.Match) > 0,
		MirrorPercent: mirror,
	}
}

// holdTraffic keeps the weights, matches and mirror of the current step.
func (m *machine) holdTraffic() {
	m.setTraffic(m.st.CanaryWeight, true, m.mirrorPercent())
}

func (m *machine) mirrorPercent() int32 {
	if c := m.spec.Strategy.Canary; c != nil && c.Mirror != nil {
		return c.Mirror.Percent
	}
	return 0
}

// trafficInForce: the route carries the intended split and its parents accepted it.
func (m *machine) trafficInForce() bool {
	t, obs := m.traffic, m.obs.Traffic
	if t == nil || !obs.Found || !obs.Accepted || obs.Matches != t.Matches || obs.MirrorPercent != t.MirrorPercent {
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
	}
	return fmt.Sprintf("waiting for the route to carry %s (it carries %s)", formatWeights(m.traffic.Weights), formatWeights(obs.Weights))
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
