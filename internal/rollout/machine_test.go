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
	return SlotState{Revision: rev, Replicas: 3, Ready: ok}
}

func route(wa, wb int32) TrafficState {
	return TrafficState{Found: true, Accepted: true, Weights: map[mv1.Slot]int32{a: wa, b: wb}}
}

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
			want{phase: mv1.PhaseInitializing, slotA: &SlotIntent{r1, 3}, slotB: &SlotIntent{"", 0}, weightB: i32(-1), scaleTarget: boolp(false),
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
			want{phase: mv1.PhaseInitializing, slotA: &SlotIntent{r2, 3}, weightB: i32(-1)}},
		{"init: a target at zero replicas with nothing remembered runs one pod", canarySpec(), mv1.RolloutStatus{},
			obs(r1, SlotState{}, SlotState{}, TrafficState{}),
			want{slotA: &SlotIntent{r1, 1}}},

		// Healthy
		{"healthy: steady, idle slot at zero, no events", canarySpec(), healthy(),
			obs(r1, ready(r1), SlotState{}, route(100, 0)),
			want{phase: mv1.PhaseHealthy, slotA: &SlotIntent{r1, 3}, slotB: &SlotIntent{"", 0}, weightB: i32(0), scaleTarget: boolp(true), events: []string{},
				conds: map[string]string{"Ready": "True/Healthy", "Reconciling": "", "Stalled": ""}}},
		{"healthy: idle slot kept warm until scaleDownTime", canarySpec(), with(healthy(), func(s *mv1.RolloutStatus) { s.ScaleDownTime = at(20 * time.Second) }),
			obs(r1, ready(r1), ready(r2), route(100, 0)),
			want{slotB: &SlotIntent{"", 3}, requeue: 20 * time.Second}},
		{"healthy: idle slot scaled down once scaleDownTime passed", canarySpec(), with(healthy(), func(s *mv1.RolloutStatus) { s.ScaleDownTime = at(-time.Second) }),
			obs(r1, ready(r1), ready(r2), route(100, 0)),
			want{slotB: &SlotIntent{"", 0}, check: func(t *testing.T, d Decision) {
				if d.Status.ScaleDownTime != nil {
					t.Error("scaleDownTime not cleared")
				}
			}}},
		{"healthy: target scaled up in Git becomes the slot size", canarySpec(), healthy(),
			with(obs(r1, ready(r1), SlotState{}, route(100, 0)), func(o *Observations) { o.Target.Replicas = 5 }),
			want{slotA: &SlotIntent{r1, 5}, scaleTarget: boolp(true), check: func(t *testing.T, d Decision) {
				if d.Status.Replicas != 5 {
					t.Errorf("replicas %d", d.Status.Replicas)
				}
			}}},

		// Release start and progress
		{"new revision starts a release in the other slot", canarySpec(), healthy(),
			obs(r2, ready(r1), SlotState{}, route(100, 0)),
			want{phase: mv1.PhaseProgressing, canaryRev: str(r2), step: i32(0), slotB: &SlotIntent{r2, 3}, weightB: i32(0), events: []string{ReasonReleaseStarted},
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
			want{phase: mv1.PhaseRollingBack, weightB: i32(0), matches: boolp(false), mirror: i32(0), abortReason: ReasonGateFailed, slotB: &SlotIntent{"", 3},
				events: []string{ReasonRollingBack}, check: func(t *testing.T, d Decision) {
					c := meta.FindStatusCondition(d.Status.Conditions, "RolledBack")
					if c == nil || !strings.Contains(c.Message, "0.80 below 0.99") {
						t.Errorf("RolledBack condition should say why: %+v", c)
					}
				}}},
		{"rolling back: route at 100/0, canary scales down after scaleDownDelay", canarySpec(), with(releasing(2, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseRollingBack; s.AbortReason = ReasonGateFailed }),
			obs(r2, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseRolledBack, slotB: &SlotIntent{"", 3}, events: []string{ReasonRolledBack}, requeue: 30 * time.Second,
				conds: map[string]string{"Ready": "False/RolledBack", "Stalled": "True/RolledBack", "Reconciling": ""}}},
		{"rolled back: canary slot at zero after the delay", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) {
			s.Phase = mv1.PhaseRolledBack
			s.ScaleDownTime = at(-time.Second)
		}),
			obs(r2, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseRolledBack, slotB: &SlotIntent{"", 0}, weightB: i32(0), events: []string{}}},
		{"rolled back + retry restarts the release", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseRolledBack }),
			with(obs(r2, ready(r1), ready(r2), route(100, 0)), func(o *Observations) { o.Action = mv1.ActionRetry }),
			want{phase: mv1.PhaseProgressing, canaryRev: str(r2), step: i32(0), weightB: i32(10), events: []string{ReasonAction, ReasonReleaseStarted}}},
		{"rolled back + target reverted in Git: healthy", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseRolledBack }),
			obs(r1, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseHealthy, canaryRev: str(""), conds: map[string]string{"Ready": "True/Healthy", "Stalled": ""}}},
		{"rolled back + a newer revision: new release", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseRolledBack }),
			obs(r3, ready(r1), ready(r2), route(100, 0)),
			want{phase: mv1.PhaseProgressing, canaryRev: str(r3), slotB: &SlotIntent{r3, 3}, events: []string{ReasonReleaseStarted}}},

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
		{"promotion in force: slot b becomes stable with the same pods", canarySpec(), with(releasing(5, 100), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhasePromoting }),
			obs(r2, ready(r1), ready(r2), route(0, 100)),
			want{phase: mv1.PhaseHealthy, stable: b, stableRev: r2, canaryRev: str(""), slotB: &SlotIntent{r2, 3}, slotA: &SlotIntent{"", 3},
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
		{"abort action rolls back", canarySpec(), releasing(3, 50),
			with(obs(r2, ready(r1), ready(r2), route(50, 50)), func(o *Observations) { o.Action = mv1.ActionAbort }),
			want{phase: mv1.PhaseRollingBack, weightB: i32(0), abortReason: ReasonAborted}},

		// Revisions changing under a release
		{"newer revision mid-release: weight to 0 first, template kept while the route reaches it", canarySpec(), releasing(2, 10),
			obs(r3, ready(r1), ready(r2), route(90, 10)),
			want{phase: mv1.PhaseProgressing, canaryRev: str(r3), step: i32(0), weightB: i32(0), slotB: &SlotIntent{"", 3}, events: []string{ReasonReleaseRestarted}}},
		{"newer revision: once the route sends nothing, the template changes", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.CanaryRevision = r3 }),
			obs(r3, ready(r1), ready(r2), route(100, 0)),
			want{canaryRev: str(r3), slotB: &SlotIntent{r3, 3}, weightB: i32(0)}},
		{"target back at the stable revision mid-release: release dropped", canarySpec(), releasing(2, 10),
			obs(r1, ready(r1), ready(r2), route(90, 10)),
			want{phase: mv1.PhaseHealthy, canaryRev: str(""), weightB: i32(0), slotB: &SlotIntent{"", 3}, events: []string{ReasonReleaseSuperseded}}},
		{"target deleted mid-release: rolled back, stable keeps serving", canarySpec(), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Target = TargetState{} }),
			want{phase: mv1.PhaseRollingBack, weightB: i32(0), abortReason: ReasonTargetNotFound, slotA: &SlotIntent{r1, 3}, conds: map[string]string{"Stalled": "True/TargetNotFound"}}},
		{"target deleted while healthy: stalled, still serving", canarySpec(), healthy(),
			with(obs(r2, ready(r1), SlotState{}, route(100, 0)), func(o *Observations) { o.Target = TargetState{} }),
			want{phase: mv1.PhaseHealthy, weightB: i32(0), slotA: &SlotIntent{r1, 3}, scaleTarget: boolp(false), conds: map[string]string{"Stalled": "True/TargetNotFound", "Ready": "False/TargetNotFound"}}},
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
			want{phase: mv1.PhaseProgressing, slotB: &SlotIntent{r2, 3}, weightB: i32(0), events: []string{ReasonReleaseStarted}}},
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
