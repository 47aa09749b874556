package rollout

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	mv1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

const (
	a, b = mv1.SlotA, mv1.SlotB
	r1   = "rev1"
	r2   = "rev2"
	r3   = "rev3"
)

func i32(v int32) *int32 { return &v }

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func at(d time.Duration) *metav1.Time { t := metav1.NewTime(t0.Add(d)); return &t }

// canarySpec: 10% → pause 1m → 2 checks → 50% → wait for promote.
func canarySpec() *mv1.RolloutSpec {
	return &mv1.RolloutSpec{
		Strategy: mv1.RolloutStrategy{Canary: &mv1.CanaryStrategy{Steps: []mv1.CanaryStep{
			{SetWeight: i32(10)},
			{Pause: &mv1.PauseStep{Duration: dur(time.Minute)}},
			{Analysis: &mv1.AnalysisStep{Checks: 2}},
			{SetWeight: i32(50)},
			{Pause: &mv1.PauseStep{}},
		}}},
		Analysis: &mv1.RolloutAnalysis{Interval: dur(30 * time.Second), FailureLimit: i32(1), HealthGates: []mv1.LocalObjectReference{{Name: "g"}}},
	}
}

func blueGreenSpec(auto bool) *mv1.RolloutSpec {
	return &mv1.RolloutSpec{
		Strategy: mv1.RolloutStrategy{BlueGreen: &mv1.BlueGreenStrategy{PrePromotionChecks: i32(2), AutoPromote: auto}},
		Analysis: &mv1.RolloutAnalysis{HealthGates: []mv1.LocalObjectReference{{Name: "g"}}},
	}
}

func ready(rev string) SlotState { return mv1SlotState(rev, true) }
func notReady(rev string) SlotState {
	return mv1SlotState(rev, false)
}

func mv1SlotState(rev string, ok bool) SlotState {
	s := SlotState{Revision: rev, Replicas: 3, Ready: ok}
	if ok {
		s.Available = 3
	}
	return s
}

func route(wa, wb int32) TrafficState {
	return TrafficState{Found: true, Accepted: true, Weights: map[mv1.Slot]int32{a: wa, b: wb}, Reaches: map[mv1.Slot]bool{a: wa > 0, b: wb > 0}, ProbeOff: true}
}

var keep = &SlotIntent{Keep: true}

func obs(target string, sa, sb SlotState, tr TrafficState) Observations {
	return Observations{
		Now: t0, Generation: 1,
		Target:  TargetState{Found: true, Revision: target, Replicas: 0},
		Slots:   map[mv1.Slot]SlotState{a: sa, b: sb},
		Traffic: tr,
	}
}

func healthy() mv1.RolloutStatus {
	return mv1.RolloutStatus{Phase: mv1.PhaseHealthy, StableSlot: a, StableRevision: r1, Replicas: 3}
}

// releasing is a release of r2 in slot b at step, with weight, started 2 minutes ago.
func releasing(step int32, weight int32) mv1.RolloutStatus {
	st := healthy()
	st.Phase = mv1.PhaseProgressing
	st.CanaryRevision = r2
	st.CurrentStep = i32(step)
	st.CanaryWeight = weight
	st.ReleaseStartTime = at(-2 * time.Minute)
	st.StepStartTime = at(-10 * time.Second)
	st.Analysis = &mv1.AnalysisStatus{}
	return st
}

func with[T any](v T, f func(*T)) T { f(&v); return v }

type want struct {
	phase       mv1.RolloutPhase
	stable      mv1.Slot
	stableRev   string
	canaryRev   *string
	step        *int32
	weightB     *int32 // traffic intent for slot b (nil: don't check; -1: no traffic intent)
	matches     *bool
	mirror      *int32
	slotB       *SlotIntent
	slotA       *SlotIntent
	scaleTarget *bool
	abortReason string
	events      []string // reasons, in order
	conds       map[string]string
	requeue     time.Duration
	check       func(t *testing.T, d Decision)
}

func str(s string) *string { return &s }
func boolp(v bool) *bool   { return &v }

func TestNext(t *testing.T) {
	cases := []struct {
		name string
		spec *mv1.RolloutSpec
		st   mv1.RolloutStatus
		obs  Observations
		want want
	}{
		// Initialization
		{"init: slot a gets the target's template, nothing routed yet", canarySpec(), mv1.RolloutStatus{},
			with(obs(r1, SlotState{}, SlotState{}, TrafficState{}), func(o *Observations) { o.Target.Replicas = 3 }),
			want{phase: mv1.PhaseInitializing, slotA: &SlotIntent{Revision: r1, Replicas: 3}, slotB: &SlotIntent{Revision: "", Replicas: 0}, weightB: i32(-1), scaleTarget: boolp(false),
				conds: map[string]string{"Ready": "False/WaitingForPods", "Reconciling": "True/WaitingForPods", "TrafficApplied": "False/NoRoute"}}},
		{"init: slot a ready, route requested", canarySpec(), mv1.RolloutStatus{StableSlot: a, Replicas: 3, ReleaseStartTime: at(-time.Minute)},
			obs(r1, ready(r1), SlotState{}, TrafficState{}),
			want{phase: mv1.PhaseInitializing, weightB: i32(0), conds: map[string]string{"Reconciling": "True/WaitingForTraffic"}}},
		{"init: route accepted, healthy, target scaled to zero", canarySpec(), mv1.RolloutStatus{StableSlot: a, Replicas: 3, ReleaseStartTime: at(-time.Minute)},
			obs(r1, ready(r1), SlotState{}, route(100, 0)),
			want{phase: mv1.PhaseHealthy, stableRev: r1, scaleTarget: boolp(true), events: []string{ReasonHealthy},
				conds: map[string]string{"Ready": "True/Healthy", "TrafficApplied": "True/Applied"}}},
		{"init: target missing stalls", canarySpec(), mv1.RolloutStatus{},
			with(obs(r1, SlotState{}, SlotState{}, TrafficState{}), func(o *Observations) { o.Target = TargetState{} }),
			want{phase: mv1.PhaseInitializing, conds: map[string]string{"Stalled": "True/TargetNotFound", "Ready": "False/TargetNotFound"}}},
		{"init: slot never ready within progressDeadline fails", canarySpec(), mv1.RolloutStatus{StableSlot: a, Replicas: 3, ReleaseStartTime: at(-11 * time.Minute)},
			obs(r1, notReady(r1), SlotState{}, TrafficState{}),
			want{phase: mv1.PhaseFailed, weightB: i32(-1), conds: map[string]string{"Stalled": "True/InitializationTimeout"}}},
		{"init: a newer target while the route already points at slot a rolls slot a", canarySpec(), mv1.RolloutStatus{StableSlot: a, Replicas: 3, ReleaseStartTime: at(-time.Minute)},
			obs(r2, ready(r1), SlotState{}, route(100, 0)),
			want{phase: mv1.PhaseInitializing, slotA: &SlotIntent{Revision: r2, Replicas: 3}, weightB: i32(-1)}},
		{"init: a target at zero replicas with nothing remembered runs one pod", canarySpec(), mv1.RolloutStatus{},
			obs(r1, SlotState{}, SlotState{}, TrafficState{}),
			want{slotA: &SlotIntent{Revision: r1, Replicas: 1}}},

		// Healthy
		{"healthy: steady, idle slot at zero, no events", canarySpec(), healthy(),
			obs(r1, ready(r1), SlotState{}, route(100, 0)),
			want{phase: mv1.PhaseHealthy, slotA: &SlotIntent{Revision: r1, Replicas: 3}, slotB: &SlotIntent{Revision: "", Replicas: 0}, weightB: i32(0), scaleTarget: boolp(true), events: []string{},
				conds: map[string]string{"Ready": "True/Healthy", "Reconciling": "", "Stalled": ""}}},
		{"healthy: idle slot kept warm until scaleDownTime", canarySpec(), with(healthy(), func(s *mv1.RolloutStatus) { s.ScaleDownTime = at(20 * time.Second) }),
			obs(r1, ready(r1), ready(r2), route(100, 0)),
			want{slotB: keep, requeue: 20 * time.Second}},
		{"healthy: idle slot scaled down once scaleDownTime passed", canarySpec(), with(healthy(), func(s *mv1.RolloutStatus) { s.ScaleDownTime = at(-time.Second) }),
			obs(r1, ready(r1), ready(r2), route(100, 0)),
			want{slotB: &SlotIntent{Revision: "", Replicas: 0}, check: func(t *testing.T, d Decision) {
				if d.Status.ScaleDownTime == nil {
					t.Error("scaleDownTime cleared before the slot is seen at zero: a stale read would start the delay again")
				}
			}}},
		{"healthy: idle slot seen at zero clears scaleDownTime", canarySpec(), with(healthy(), func(s *mv1.RolloutStatus) { s.ScaleDownTime = at(-time.Second) }),
			obs(r1, ready(r1), SlotState{Revision: r2}, route(100, 0)),
			want{slotB: &SlotIntent{}, check: func(t *testing.T, d Decision) {
				if d.Status.ScaleDownTime != nil {
					t.Error("scaleDownTime not cleared")
				}
			}}},
		{"healthy: idle slot keeps its pods past scaleDownTime while the route is not accepted", canarySpec(), with(healthy(), func(s *mv1.RolloutStatus) { s.ScaleDownTime = at(-time.Second) }),
			with(obs(r1, ready(r1), ready(r2), route(100, 0)), func(o *Observations) { o.Traffic.Accepted = false }),
			want{slotB: keep}},
		{"healthy: idle slot keeps its pods while an A/B rule or mirror still reaches it", canarySpec(), with(healthy(), func(s *mv1.RolloutStatus) { s.ScaleDownTime = at(-time.Second) }),
			with(obs(r1, ready(r1), ready(r2), route(100, 0)), func(o *Observations) { o.Traffic.Reaches[b] = true }),
			want{slotB: keep}},
		{"healthy: target scaled up in Git becomes the slot size", canarySpec(), healthy(),
			with(obs(r1, ready(r1), SlotState{}, route(100, 0)), func(o *Observations) { o.Target.Replicas = 5 }),
			want{slotA: &SlotIntent{Revision: r1, Replicas: 5}, scaleTarget: boolp(true), check: func(t *testing.T, d Decision) {
				if d.Status.Replicas != 5 {
					t.Errorf("replicas %d", d.Status.Replicas)
				}
			}}},

		// Release start and progress
		{"new revision starts a release in the other slot", canarySpec(), healthy(),
			obs(r2, ready(r1), SlotState{}, route(100, 0)),
			want{phase: mv1.PhaseProgressing, canaryRev: str(r2), step: i32(0), slotB: &SlotIntent{Revision: r2, Replicas: 1}, weightB: i32(0), events: []string{ReasonReleaseStarted},
				conds: map[string]string{"Promoted": "False/ReleaseInProgress", "Reconciling": "True/WaitingForPods"}}},
		{"canary not ready by progressDeadline rolls back", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.ReleaseStartTime = at(-11 * time.Minute) }),
			obs(r2, ready(r1), notReady(r2), route(100, 0)),
			want{phase: mv1.PhaseRolledBack, weightB: i32(0), abortReason: ReasonProgressDeadline, events: []string{ReasonRollingBack, ReasonRolledBack},
				conds: map[string]string{"RolledBack": "True/ProgressDeadlineExceeded", "Stalled": "True/RolledBack"}}},
		{"canary ready: first weight requested, waits for the route", canarySpec(), releasing(0, 0),
			obs(r2, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseProgressing, step: i32(0), weightB: i32(10), conds: map[string]string{"TrafficApplied": "False/WaitingForTraffic"}}},
		{"weight in force: the pause starts now", canarySpec(), releasing(0, 10),
			obs(r2, ready(r1), ready(r2), route(90, 10)),
			want{step: i32(1), weightB: i32(10), requeue: time.Minute, check: func(t *testing.T, d Decision) {
				if !d.Status.StepStartTime.Time.Equal(t0) {
					t.Errorf("stepStartTime %v, want now", d.Status.StepStartTime)
				}
			}}},
		{"weight not yet accepted: the pause does not start", canarySpec(), with(releasing(1, 10), func(s *mv1.RolloutStatus) { s.StepStartTime = nil }),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Traffic.Accepted = false; o.Traffic.Message = "gw: Pending" }),
			want{step: i32(1), check: func(t *testing.T, d Decision) {
				if d.Status.StepStartTime != nil {
					t.Error("pause started before the route was accepted")
				}
				if c := meta.FindStatusCondition(d.Status.Conditions, "TrafficApplied"); c == nil || !strings.Contains(c.Message, "gw: Pending") {
					t.Errorf("TrafficApplied %+v should carry the router's message", c)
				}
			}}},
		{"pause not over", canarySpec(), releasing(1, 10),
			obs(r2, ready(r1), ready(r2), route(90, 10)),
			want{step: i32(1), requeue: 50 * time.Second}},
		{"pause over: analysis step starts", canarySpec(), with(releasing(1, 10), func(s *mv1.RolloutStatus) { s.StepStartTime = at(-61 * time.Second) }),
			obs(r2, ready(r1), ready(r2), route(90, 10)),
			want{step: i32(2), weightB: i32(10)}},
		{"analysis step: one pass of two", canarySpec(), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictPass} }),
			want{step: i32(2), check: func(t *testing.T, d Decision) {
				if a := d.Status.Analysis; a.Passed != 1 || a.StepPassed != 1 || a.Verdict != mv1.VerdictPass || a.LastCheck == nil {
					t.Errorf("analysis %+v", a)
				}
			}}},
		{"analysis step: second pass moves to 50%", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.StepPassed = 1; s.Analysis.Passed = 1 }),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictPass} }),
			want{step: i32(3), weightB: i32(50), check: func(t *testing.T, d Decision) {
				if d.Status.Analysis.StepPassed != 0 {
					t.Error("stepPassed not reset for the next step")
				}
			}}},
		{"inconclusive check neither passes nor fails", canarySpec(), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictInconclusive} }),
			want{step: i32(2), phase: mv1.PhaseProgressing, check: func(t *testing.T, d Decision) {
				if a := d.Status.Analysis; a.Inconclusive != 1 || a.StepPassed != 0 || a.Failed != 0 {
					t.Errorf("analysis %+v", a)
				}
			}}},
		{"inconclusive beyond inconclusiveLimit: weights held, stalled, no rollback", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.ConsecutiveInconclusive = 10 }),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) {
				o.Check = &Check{Verdict: mv1.VerdictInconclusive, Gates: []mv1.GateMetricVerdict{{Gate: "g", MetricVerdict: mv1.MetricVerdict{Name: "m", Verdict: mv1.VerdictInconclusive, Message: "no data"}}}}
			}),
			want{phase: mv1.PhaseHolding, step: i32(2), weightB: i32(10), conds: map[string]string{"Stalled": "True/InconclusiveLimitExceeded"}, check: func(t *testing.T, d Decision) {
				c := meta.FindStatusCondition(d.Status.Conditions, "Stalled")
				if !strings.Contains(c.Message, "g/m: no data") {
					t.Errorf("Stalled should name the gate and why: %s", c.Message)
				}
			}}},
		{"inconclusive limit: a premature check does not count", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.ConsecutiveInconclusive = 10 }),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictInconclusive, Premature: true} }),
			want{phase: mv1.PhaseProgressing, conds: map[string]string{"Stalled": ""}}},
		{"inconclusive limit: a pass ends the hold", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.ConsecutiveInconclusive = 11; s.Phase = mv1.PhaseHolding }),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictPass} }),
			want{phase: mv1.PhaseProgressing, step: i32(2), conds: map[string]string{"Stalled": ""}}},
		{"inconclusive limit: promote moves on", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.ConsecutiveInconclusive = 11; s.Phase = mv1.PhaseHolding }),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Action = mv1.ActionPromote }),
			want{phase: mv1.PhaseProgressing, step: i32(3), weightB: i32(50)}},
		{"a check's start time paces the next one", canarySpec(), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictPass, Started: t0.Add(-4 * time.Second)} }),
			want{requeue: 26 * time.Second}},
		{"a failure within failureLimit is counted, no rollback", canarySpec(), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictFail} }),
			want{phase: mv1.PhaseProgressing, weightB: i32(10), check: func(t *testing.T, d Decision) {
				if d.Status.Analysis.Failed != 1 {
					t.Error("failure not counted")
				}
			}}},
		{"failure beyond failureLimit: weight 0 on this very reconcile", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.Failed = 1 }),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) {
				o.Check = &Check{Verdict: mv1.VerdictFail, Message: "success-rate/success-rate: 0.80 below 0.99"}
			}),
			want{phase: mv1.PhaseRollingBack, weightB: i32(0), matches: boolp(false), mirror: i32(0), abortReason: ReasonGateFailed, slotB: keep,
				events: []string{ReasonRollingBack}, check: func(t *testing.T, d Decision) {
					c := meta.FindStatusCondition(d.Status.Conditions, "RolledBack")
					if c == nil || !strings.Contains(c.Message, "0.80 below 0.99") {
						t.Errorf("RolledBack condition should say why: %+v", c)
					}
				}}},
		{"rolling back: route at 100/0, canary scales down after scaleDownDelay", canarySpec(), with(releasing(2, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseRollingBack; s.AbortReason = ReasonGateFailed }),
			obs(r2, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseRolledBack, slotB: keep, events: []string{ReasonRolledBack}, requeue: 30 * time.Second,
				conds: map[string]string{"Ready": "False/RolledBack", "Stalled": "True/RolledBack", "Reconciling": ""}}},
		{"rolled back: canary slot at zero after the delay", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) {
			s.Phase = mv1.PhaseRolledBack
			s.ScaleDownTime = at(-time.Second)
		}),
			obs(r2, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseRolledBack, slotB: &SlotIntent{Revision: "", Replicas: 0}, weightB: i32(0), events: []string{}}},
		{"rolled back + retry restarts the release", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseRolledBack }),
			with(obs(r2, ready(r1), ready(r2), route(100, 0)), func(o *Observations) { o.Action = mv1.ActionRetry }),
			want{phase: mv1.PhaseProgressing, canaryRev: str(r2), step: i32(0), weightB: i32(10), events: []string{ReasonAction, ReasonReleaseStarted}}},
		{"rolled back + target reverted in Git: healthy", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseRolledBack }),
			obs(r1, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseHealthy, canaryRev: str(""), conds: map[string]string{"Ready": "True/Healthy", "Stalled": ""}}},
		{"rolled back + a newer revision: new release", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseRolledBack }),
			obs(r3, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseProgressing, canaryRev: str(r3), slotB: &SlotIntent{Revision: r3, Replicas: 1}, events: []string{ReasonReleaseStarted}}},

		// Unreachable Prometheus
		{"unreachable: hold the weight", canarySpec(), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictUnreachable, Message: "dial tcp: refused"} }),
			want{phase: mv1.PhaseHolding, step: i32(2), weightB: i32(10), events: []string{ReasonHolding}, requeue: 30 * time.Second,
				conds: map[string]string{"Reconciling": "True/PrometheusUnreachable", "Stalled": ""}}},
		{"holding within maxHold: still frozen", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseHolding; s.HoldStartTime = at(-5 * time.Minute) }),
			obs(r2, ready(r1), ready(r2), route(90, 10)),
			want{phase: mv1.PhaseHolding, weightB: i32(10), events: []string{}}},
		{"holding past maxHold: stalled, still no promotion or rollback", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) {
			s.Phase = mv1.PhaseHolding
			s.HoldStartTime = at(-11 * time.Minute)
			s.Analysis.StepPassed = 5
		}),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictUnreachable} }),
			want{phase: mv1.PhaseHolding, step: i32(2), weightB: i32(10), conds: map[string]string{"Stalled": "True/MaxHoldExceeded"}}},
		{"holding, Prometheus back with a pass: the release resumes", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) {
			s.Phase = mv1.PhaseHolding
			s.HoldStartTime = at(-11 * time.Minute)
			s.Analysis.StepPassed = 1
		}),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictPass} }),
			want{phase: mv1.PhaseProgressing, step: i32(3), weightB: i32(50), conds: map[string]string{"Stalled": ""}, check: func(t *testing.T, d Decision) {
				if d.Status.HoldStartTime != nil {
					t.Error("hold not cleared")
				}
			}}},
		{"unreachable with onUnreachable Rollback counts as a failure", modSpec(canarySpec(), func(s *mv1.RolloutSpec) {
			s.Analysis.OnUnreachable = mv1.OnUnreachableRollback
			s.Analysis.FailureLimit = i32(0)
		}), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictUnreachable} }),
			want{phase: mv1.PhaseRollingBack, weightB: i32(0), abortReason: ReasonGateFailed}},

		// Manual gates and actions
		{"pause without duration waits for promote", canarySpec(), releasing(4, 50),
			obs(r2, ready(r1), ready(r2), route(50, 50)),
			want{phase: mv1.PhasePaused, step: i32(4), weightB: i32(50), conds: map[string]string{"Reconciling": "True/WaitingForPromote"}}},
		{"promote passes the manual gate, then promotion starts", canarySpec(), releasing(4, 50),
			with(obs(r2, ready(r1), ready(r2), route(50, 50)), func(o *Observations) { o.Action = mv1.ActionPromote }),
			want{phase: mv1.PhasePromoting, weightB: i32(100), events: []string{ReasonAction, ReasonPromoting}, check: func(t *testing.T, d Decision) {
				if d.Status.LastAction == nil || d.Status.LastAction.Action != mv1.ActionPromote {
					t.Errorf("lastAction %+v", d.Status.LastAction)
				}
			}}},
		{"promote-full at an analysis step skips every remaining step", canarySpec(), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Action = mv1.ActionPromoteFull }),
			want{phase: mv1.PhasePromoting, weightB: i32(100), step: i32(5), events: []string{ReasonAction, ReasonAction, ReasonPromoting}, check: func(t *testing.T, d Decision) {
				if d.Status.LastAction == nil || d.Status.LastAction.Action != mv1.ActionPromoteFull {
					t.Errorf("lastAction %+v", d.Status.LastAction)
				}
			}}},
		{"promote-full before the data plane proved the canary: no weight until it does", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.DataPlane = nil }),
			with(obs(r2, ready(r1), ready(r2), route(100, 0)), func(o *Observations) { o.Action = mv1.ActionPromoteFull; o.Traffic.ProbeOff = false }),
			want{phase: mv1.PhaseProgressing, weightB: i32(0), step: i32(5), conds: map[string]string{"Reconciling": "True/" + ReasonWaitingForDataPlane}}},
		{"promotion in force: slot b becomes stable with the same pods", canarySpec(), with(releasing(5, 100), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhasePromoting }),
			obs(r2, ready(r1), ready(r2), route(0, 100)),
			want{phase: mv1.PhaseHealthy, stable: b, stableRev: r2, canaryRev: str(""), slotB: &SlotIntent{Revision: r2, Replicas: 3}, slotA: keep,
				events: []string{ReasonPromoted}, requeue: 30 * time.Second, conds: map[string]string{"Promoted": "True/Promoted", "Ready": "True/Healthy"},
				check: func(t *testing.T, d Decision) {
					if d.Traffic.Weights[b] != 100 || d.Traffic.Weights[a] != 0 {
						t.Errorf("the route must not change at relabel: %v", d.Traffic.Weights)
					}
				}}},
		{"spec.paused freezes the release", modSpec(canarySpec(), func(s *mv1.RolloutSpec) { s.Paused = true }), releasing(1, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Now = t0.Add(time.Hour) }),
			want{phase: mv1.PhasePaused, step: i32(1), weightB: i32(10), conds: map[string]string{"Reconciling": "True/Paused"}}},
		{"pause action freezes the release", canarySpec(), releasing(1, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Action = mv1.ActionPause }),
			want{phase: mv1.PhasePaused, check: func(t *testing.T, d Decision) {
				if !d.Status.ManualPause {
					t.Error("manualPause not set")
				}
			}}},
		{"resume action continues", canarySpec(), with(releasing(1, 10), func(s *mv1.RolloutStatus) { s.ManualPause = true; s.Phase = mv1.PhasePaused }),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Action = mv1.ActionResume }),
			want{phase: mv1.PhaseProgressing, step: i32(1)}},
		{"abort action rolls back, recorded with its request ID and in history", canarySpec(), releasing(3, 50),
			with(obs(r2, ready(r1), ready(r2), route(50, 50)), func(o *Observations) { o.Action = mv1.ActionAbort; o.ActionID = "id1" }),
			want{phase: mv1.PhaseRollingBack, weightB: i32(0), abortReason: ReasonAborted, check: func(t *testing.T, d Decision) {
				if l := d.Status.LastAction; l == nil || l.ID != "id1" || l.Action != mv1.ActionAbort {
					t.Errorf("lastAction %+v", l)
				}
				if d.Ended == nil || d.Ended.Outcome != mv1.OutcomeRolledBack || d.Ended.AbortReason != ReasonAborted || len(d.Status.History) != 1 {
					t.Errorf("rollback not on record when decided: ended %+v history %+v", d.Ended, d.Status.History)
				}
			}}},
		{"a newer revision while rolling back keeps the rollback on record", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) {
			s.Phase = mv1.PhaseRollingBack
			s.AbortReason = ReasonGateFailed
			s.History = []mv1.ReleaseRecord{{Revision: r2, Outcome: mv1.OutcomeRolledBack, AbortReason: ReasonGateFailed}}
		}),
			obs(r3, ready(r1), ready(r2), route(90, 10)),
			want{phase: mv1.PhaseProgressing, canaryRev: str(r3), weightB: i32(0), check: func(t *testing.T, d Decision) {
				if h := d.Status.History; len(h) != 1 || h[0].Outcome != mv1.OutcomeRolledBack || h[0].AbortReason != ReasonGateFailed {
					t.Errorf("history %+v", h)
				}
				if d.Ended != nil {
					t.Errorf("a rollback in progress is not superseded: %+v", d.Ended)
				}
			}}},

		// Revisions changing under a release
		{"newer revision mid-release: weight to 0 first, template kept while the route reaches it", canarySpec(), releasing(2, 10),
			obs(r3, ready(r1), ready(r2), route(90, 10)),
			want{phase: mv1.PhaseProgressing, canaryRev: str(r3), step: i32(0), weightB: i32(0), slotB: &SlotIntent{Revision: "", Replicas: 1}, events: []string{ReasonReleaseRestarted}}},
		{"newer revision: once the route sends nothing, the template changes", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.CanaryRevision = r3 }),
			obs(r3, ready(r1), ready(r2), route(100, 0)),
			want{canaryRev: str(r3), slotB: &SlotIntent{Revision: r3, Replicas: 1}, weightB: i32(0)}},
		{"target back at the stable revision mid-release: release dropped", canarySpec(), releasing(2, 10),
			obs(r1, ready(r1), ready(r2), route(90, 10)),
			want{phase: mv1.PhaseHealthy, canaryRev: str(""), weightB: i32(0), slotB: keep, events: []string{ReasonReleaseSuperseded},
				check: func(t *testing.T, d Decision) {
					if d.Status.ScaleDownTime != nil {
						t.Errorf("scale-down timer %v started while the route still sends the canary 10%%", d.Status.ScaleDownTime)
					}
					if d.Ended == nil || d.Ended.Outcome != mv1.OutcomeSuperseded || d.Status.History[0].Revision != r2 {
						t.Errorf("superseded release not on record: %+v", d.Status.History)
					}
				}}},
		{"superseded release, scaleDownDelay 0: canary pods go only once the accepted route gives them nothing", modSpec(canarySpec(), func(s *mv1.RolloutSpec) {
			s.Strategy.Canary.ScaleDownDelay = dur(0)
		}), healthy(),
			obs(r1, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseHealthy, slotB: &SlotIntent{}}},
		{"target deleted mid-release: rolled back, stable keeps serving", canarySpec(), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Target = TargetState{} }),
			want{phase: mv1.PhaseRollingBack, weightB: i32(0), abortReason: ReasonTargetNotFound, slotA: &SlotIntent{Revision: r1, Replicas: 3}, conds: map[string]string{"Stalled": "True/TargetNotFound"}}},
		{"target deleted while healthy: stalled, still serving", canarySpec(), healthy(),
			with(obs(r2, ready(r1), SlotState{}, route(100, 0)), func(o *Observations) { o.Target = TargetState{} }),
			want{phase: mv1.PhaseHealthy, weightB: i32(0), slotA: &SlotIntent{Revision: r1, Replicas: 3}, scaleTarget: boolp(false), conds: map[string]string{"Stalled": "True/TargetNotFound", "Ready": "False/TargetNotFound"}}},
		{"target whose pods lack the named target port: not released, stalled, stable serves", canarySpec(), healthy(),
			with(obs(r2, ready(r1), SlotState{}, route(100, 0)), func(o *Observations) { o.Target.Problem = "no container port named http" }),
			want{phase: mv1.PhaseHealthy, canaryRev: str(""), weightB: i32(0), slotA: &SlotIntent{Revision: r1, Replicas: 3},
				conds: map[string]string{"Stalled": "True/TargetMisconfigured", "Ready": "False/TargetMisconfigured"}}},
		{"target misconfigured mid-release: the release is rolled back", canarySpec(), releasing(2, 10),
			with(obs(r3, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Target.Problem = "no container port named http" }),
			want{phase: mv1.PhaseRollingBack, weightB: i32(0), abortReason: ReasonTargetMisconfigured}},
		{"canary pods lost mid-release: its weight goes back to stable", canarySpec(), releasing(3, 50),
			obs(r2, ready(r1), notReady(r2), route(50, 50)),
			want{phase: mv1.PhaseProgressing, weightB: i32(0), conds: map[string]string{"Reconciling": "True/WaitingForPods"}}},

		// A/B and mirroring
		{"match and mirror only once the canary is ready", modSpec(canarySpec(), func(s *mv1.RolloutSpec) {
			s.Strategy.Canary.Match = []mv1.RouteMatch{{Headers: []mv1.ValueMatch{{Name: "x-canary", Value: "1"}}}}
			s.Strategy.Canary.Mirror = &mv1.Mirror{Percent: 20}
		}), releasing(0, 0),
			obs(r2, ready(r1), notReady(r2), route(100, 0)),
			want{weightB: i32(0), matches: boolp(false), mirror: i32(0)}},
		{"match and mirror with a ready canary", modSpec(canarySpec(), func(s *mv1.RolloutSpec) {
			s.Strategy.Canary.Match = []mv1.RouteMatch{{Headers: []mv1.ValueMatch{{Name: "x-canary", Value: "1"}}}}
			s.Strategy.Canary.Mirror = &mv1.Mirror{Percent: 20}
		}), releasing(0, 0),
			obs(r2, ready(r1), ready(r2), route(100, 0)),
			want{weightB: i32(10), matches: boolp(true), mirror: i32(20)}},

		// Blue-green
		{"blue-green: new revision in the idle slot, no traffic", blueGreenSpec(true), healthy(),
			obs(r2, ready(r1), SlotState{}, route(100, 0)),
			want{phase: mv1.PhaseProgressing, slotB: &SlotIntent{Revision: r2, Replicas: 3}, weightB: i32(0), events: []string{ReasonReleaseStarted}}},
		{"blue-green: preview checks count", blueGreenSpec(true), releasing(0, 0),
			with(obs(r2, ready(r1), ready(r2), route(100, 0)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictPass} }),
			want{phase: mv1.PhaseProgressing, weightB: i32(0), check: func(t *testing.T, d Decision) {
				if d.Status.Analysis.StepPassed != 1 {
					t.Errorf("stepPassed %d", d.Status.Analysis.StepPassed)
				}
			}}},
		{"blue-green: checks passed, manual promotion awaited", blueGreenSpec(false), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Analysis.StepPassed = 2 }),
			obs(r2, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhasePaused, weightB: i32(0), conds: map[string]string{"Reconciling": "True/WaitingForPromote"}}},
		{"blue-green: promote switches all traffic at once", blueGreenSpec(false), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Analysis.StepPassed = 2 }),
			with(obs(r2, ready(r1), ready(r2), route(100, 0)), func(o *Observations) { o.Action = mv1.ActionPromote }),
			want{phase: mv1.PhasePromoting, weightB: i32(100)}},
		{"blue-green: autoPromote switches after the checks", blueGreenSpec(true), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Analysis.StepPassed = 1 }),
			with(obs(r2, ready(r1), ready(r2), route(100, 0)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictPass} }),
			want{phase: mv1.PhasePromoting, weightB: i32(100)}},
		{"blue-green: failing preview check rolls back without moving traffic", modSpec(blueGreenSpec(true), func(s *mv1.RolloutSpec) { s.Analysis.FailureLimit = i32(0) }), releasing(0, 0),
			with(obs(r2, ready(r1), ready(r2), route(100, 0)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictFail} }),
			want{phase: mv1.PhaseRolledBack, weightB: i32(0), abortReason: ReasonGateFailed}},
	}
	if len(cases) < 40 {
		t.Fatalf("%d cases; the state machine needs at least 40", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.st.DeepCopy()
			d := Next(tc.spec, &tc.st, tc.obs)
			if !equalStatus(before, &tc.st) {
				t.Fatal("Next modified its input status")
			}
			checkWant(t, d, tc.want)
		})
	}
}

func modSpec(s *mv1.RolloutSpec, f func(*mv1.RolloutSpec)) *mv1.RolloutSpec { f(s); return s }

// An apply failure is carried until an apply succeeds, without the conditions changing from
// one reconcile to the next (a changing status wakes the Rollout again: a hot loop).
func TestApplyFailureIsStableAcrossReconciles(t *testing.T) {
	o := obs(r1, SlotState{}, SlotState{}, TrafficState{})
	o.Target.Replicas = 3
	first := Next(canarySpec(), &mv1.RolloutStatus{}, o)
	ApplyFailed(&first.Status, "Service checkout exists and is not this Rollout's", true, 1)
	o.ApplyError = ApplyErrorOf(&first.Status)
	if o.ApplyError == nil || !o.ApplyError.Stalled {
		t.Fatalf("apply error not read back: %+v", o.ApplyError)
	}
	o.Now = o.Now.Add(time.Second)
	second := Next(canarySpec(), &first.Status, o)
	if !equalStatus(&first.Status, &second.Status) {
		t.Errorf("the status changed on the next reconcile:\n%+v\n%+v", first.Status.Conditions, second.Status.Conditions)
	}
	o.ApplyError = nil
	third := Next(canarySpec(), &second.Status, o)
	if c := meta.FindStatusCondition(third.Status.Conditions, "Stalled"); c != nil {
		t.Errorf("still Stalled after a successful apply: %+v", c)
	}
}

// probing is a route with the data-plane probe on: its probe rule reaches slot (running rev)
// and carries split.
func probing(tr TrafficState, slot mv1.Slot, rev, split string) TrafficState {
	tr.ProbeOff, tr.ProbeSlot, tr.ProbeRevision, tr.Split = false, slot, rev, split
	tr.Reaches[slot] = true
	return tr
}

func provenAt(split string) func(*mv1.RolloutStatus) {
	return func(s *mv1.RolloutStatus) {
		s.DataPlane = &mv1.DataPlaneStatus{Split: split, Slot: b, Revision: r2, Probed: true, Latency: dur(0)}
	}
}

// 8. Weight moves only when the data plane can serve the canary, and time counts only once it
// serves the split.
func TestDataPlaneProof(t *testing.T) {
	cases := []struct {
		name string
		st   mv1.RolloutStatus
		obs  Observations
		want want
	}{
		{"the canary's first weight waits for a proof that it answers", releasing(0, 0),
			obs(r2, ready(r1), ready(r2), probing(route(100, 0), a, r1, "s0")),
			want{step: i32(0), weightB: i32(0), conds: map[string]string{"Reconciling": "True/WaitingForDataPlane"}, check: func(t *testing.T, d Decision) {
				if d.Traffic.ProbeSlot != b || d.Traffic.ProbeRevision != r2 {
					t.Errorf("probe rule to %s/%s, want the canary slot b running r2", d.Traffic.ProbeSlot, d.Traffic.ProbeRevision)
				}
			}}},
		{"proven: the first weight moves", with(releasing(0, 0), provenAt("s1")),
			obs(r2, ready(r1), ready(r2), probing(route(100, 0), b, r2, "s1")),
			want{step: i32(0), weightB: i32(10)}},
		{"a proof of the split the route carries is recorded with its latency", releasing(0, 0),
			with(obs(r2, ready(r1), ready(r2), probing(route(100, 0), b, r2, "s1")), func(o *Observations) {
				o.Traffic.Proof = &Proof{Split: "s1", OK: true, Probed: true, Latency: 420 * time.Millisecond, Message: "answered"}
			}),
			want{weightB: i32(10), check: func(t *testing.T, d Decision) {
				if dp := d.Status.DataPlane; dp == nil || dp.Split != "s1" || dp.Slot != b || dp.Revision != r2 || dp.Latency.Duration != 420*time.Millisecond {
					t.Errorf("dataPlane %+v", dp)
				}
			}}},
		{"a proof of another split is not taken", releasing(0, 0),
			with(obs(r2, ready(r1), ready(r2), probing(route(100, 0), b, r2, "s1")), func(o *Observations) {
				o.Traffic.Proof = &Proof{Split: "s0", OK: true, Probed: true}
			}),
			want{weightB: i32(0)}},
		{"accepted but not yet served: the pause does not start", with(releasing(0, 10), provenAt("s1")),
			obs(r2, ready(r1), ready(r2), probing(route(90, 10), b, r2, "s2")),
			want{step: i32(0), conds: map[string]string{"TrafficApplied": "False/WaitingForTraffic"}, check: func(t *testing.T, d Decision) {
				if d.Status.StepStartTime != nil {
					t.Error("the step started before the data plane served its weight")
				}
				if c := meta.FindStatusCondition(d.Status.Conditions, "TrafficApplied"); !strings.Contains(c.Message, "data plane") {
					t.Errorf("TrafficApplied should say it waits for the data plane: %s", c.Message)
				}
			}}},
		{"served: the step starts, TrafficApplied says it was proven", with(releasing(0, 10), provenAt("s2")),
			obs(r2, ready(r1), ready(r2), probing(route(90, 10), b, r2, "s2")),
			want{step: i32(1), conds: map[string]string{"TrafficApplied": "True/Applied"}}},
		{"no probe possible: route status stands in, and says so", with(releasing(0, 10), func(s *mv1.RolloutStatus) {
			provenAt("s2")(s)
			s.DataPlane.Probed, s.DataPlane.Message = false, "east-west route"
		}),
			obs(r2, ready(r1), ready(r2), probing(route(90, 10), b, r2, "s2")),
			want{step: i32(1), conds: map[string]string{"TrafficApplied": "True/NotProbed"}}},
		{"initialization: Healthy only once the stable slot is proven served", mv1.RolloutStatus{StableSlot: a, Replicas: 3, ReleaseStartTime: at(-time.Minute)},
			obs(r1, ready(r1), SlotState{}, probing(route(100, 0), a, r1, "s0")),
			want{phase: mv1.PhaseInitializing, conds: map[string]string{"Ready": "False/WaitingForTraffic"}}},
		// A late proof of the split the route carried before (the stable slot's probe) replaces
		// the canary's proof: no weight moves, or stays, until the canary is proven again.
		{"promoting: a late proof of the stable slot's split takes the weight back", with(releasing(5, 100), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhasePromoting }),
			with(obs(r2, ready(r1), ready(r2), probing(route(100, 0), a, r1, "s0")), func(o *Observations) {
				o.Traffic.Proof = &Proof{Split: "s0", OK: true, Probed: true}
			}),
			want{phase: mv1.PhasePromoting, weightB: i32(0), conds: map[string]string{"Reconciling": "True/WaitingForDataPlane"}, check: func(t *testing.T, d Decision) {
				if d.Traffic.ProbeSlot != b || d.Traffic.ProbeRevision != r2 {
					t.Errorf("probe rule to %s/%s, want the canary slot b running r2", d.Traffic.ProbeSlot, d.Traffic.ProbeRevision)
				}
			}}},
		{"promoting: proven again, the weight moves", with(releasing(5, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhasePromoting; provenAt("s1")(s) }),
			obs(r2, ready(r1), ready(r2), probing(route(100, 0), b, r2, "s1")),
			want{phase: mv1.PhasePromoting, weightB: i32(100)}},
		{"paused: frozen weights are not given to a canary whose proof was replaced", with(releasing(1, 10), func(s *mv1.RolloutStatus) { s.ManualPause = true }),
			with(obs(r2, ready(r1), ready(r2), probing(route(100, 0), a, r1, "s0")), func(o *Observations) {
				o.Traffic.Proof = &Proof{Split: "s0", OK: true, Probed: true}
			}),
			want{phase: mv1.PhasePaused, weightB: i32(0), matches: boolp(false)}},
		{"blue-green: no switch before the preview slot is proven", with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Analysis.StepPassed = 2 }),
			obs(r2, ready(r1), ready(r2), probing(route(100, 0), a, r1, "s0")),
			want{phase: mv1.PhaseProgressing, weightB: i32(0), conds: map[string]string{"Reconciling": "True/WaitingForDataPlane"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := canarySpec()
			if strings.HasPrefix(tc.name, "blue-green") {
				spec = blueGreenSpec(true)
			}
			checkWant(t, Next(spec, &tc.st, tc.obs), tc.want)
		})
	}
}

// The decision that ends a timed pause says how late it came; any other decision says nothing.
func TestStepOverdue(t *testing.T) {
	st := releasing(1, 10)
	st.StepStartTime = at(-time.Minute - 1500*time.Millisecond) // the 1m pause ended 1.5s ago
	d := Next(canarySpec(), &st, obs(r2, ready(r1), ready(r2), route(90, 10)))
	if d.StepOverdue == nil || *d.StepOverdue != 1500*time.Millisecond {
		t.Fatalf("StepOverdue %v, want 1.5s", d.StepOverdue)
	}
	if got := *d.Status.CurrentStep; got != 2 {
		t.Errorf("step %d after the pause, want 2", got)
	}
	st.StepStartTime = at(-10 * time.Second)
	if d := Next(canarySpec(), &st, obs(r2, ready(r1), ready(r2), route(90, 10))); d.StepOverdue != nil {
		t.Errorf("StepOverdue %v while the pause runs, want none", *d.StepOverdue)
	}
}
