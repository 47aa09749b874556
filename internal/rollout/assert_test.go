package rollout

import (
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	mv1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func equalStatus(x, y *mv1.RolloutStatus) bool { return reflect.DeepEqual(x, y) }

func checkWant(t *testing.T, d Decision, w want) {
	t.Helper()
	st := d.Status
	if w.phase != "" && st.Phase != w.phase {
		t.Errorf("phase %s, want %s", st.Phase, w.phase)
	}
	if w.stable != "" && st.StableSlot != w.stable {
		t.Errorf("stableSlot %s, want %s", st.StableSlot, w.stable)
	}
	if w.stableRev != "" && st.StableRevision != w.stableRev {
		t.Errorf("stableRevision %q, want %q", st.StableRevision, w.stableRev)
	}
	if w.canaryRev != nil && st.CanaryRevision != *w.canaryRev {
		t.Errorf("canaryRevision %q, want %q", st.CanaryRevision, *w.canaryRev)
	}
	if w.step != nil && (st.CurrentStep == nil || *st.CurrentStep != *w.step) {
		t.Errorf("currentStep %v, want %d", st.CurrentStep, *w.step)
	}
	if w.weightB != nil {
		switch {
		case *w.weightB < 0 && d.Traffic != nil:
			t.Errorf("traffic %+v, want none", d.Traffic)
		case *w.weightB >= 0 && d.Traffic == nil:
			t.Errorf("no traffic intent, want b=%d", *w.weightB)
		case *w.weightB >= 0 && d.Traffic.Weights[mv1.SlotB] != *w.weightB:
			t.Errorf("traffic b=%d, want %d", d.Traffic.Weights[mv1.SlotB], *w.weightB)
		}
		if d.Traffic != nil && d.Traffic.Weights[mv1.SlotA]+d.Traffic.Weights[mv1.SlotB] != 100 {
			t.Errorf("weights %v do not sum to 100", d.Traffic.Weights)
		}
	}
	if w.matches != nil && (d.Traffic == nil || d.Traffic.Matches != *w.matches) {
		t.Errorf("traffic %+v, want matches %v", d.Traffic, *w.matches)
	}
	if w.mirror != nil && (d.Traffic == nil || d.Traffic.MirrorPercent != *w.mirror) {
		t.Errorf("traffic %+v, want mirror %d", d.Traffic, *w.mirror)
	}
	if w.slotA != nil && d.Slots[mv1.SlotA] != *w.slotA {
		t.Errorf("slot a %+v, want %+v", d.Slots[mv1.SlotA], *w.slotA)
	}
	if w.slotB != nil && d.Slots[mv1.SlotB] != *w.slotB {
		t.Errorf("slot b %+v, want %+v", d.Slots[mv1.SlotB], *w.slotB)
	}
	if w.scaleTarget != nil && d.ScaleTargetToZero != *w.scaleTarget {
		t.Errorf("scaleTargetToZero %v, want %v", d.ScaleTargetToZero, *w.scaleTarget)
	}
	if w.abortReason != "" && st.AbortReason != w.abortReason {
		t.Errorf("abortReason %q, want %q", st.AbortReason, w.abortReason)
	}
	if w.events != nil {
		var got []string
		for _, e := range d.Events {
			got = append(got, e.Reason)
		}
		if len(got) != len(w.events) || (len(got) > 0 && !reflect.DeepEqual(got, w.events)) {
			t.Errorf("events %v, want %v", got, w.events)
		}
	}
	for typ, want := range w.conds {
		c := meta.FindStatusCondition(st.Conditions, typ)
		switch {
		case want == "" && c != nil:
			t.Errorf("condition %s = %s/%s, want none", typ, c.Status, c.Reason)
		case want != "" && c == nil:
			t.Errorf("condition %s missing, want %s", typ, want)
		case want != "" && string(c.Status)+"/"+c.Reason != want:
			t.Errorf("condition %s = %s/%s (%s), want %s", typ, c.Status, c.Reason, c.Message, want)
		}
	}
	if w.requeue != 0 && (d.RequeueAfter <= 0 || d.RequeueAfter > w.requeue) {
		t.Errorf("requeueAfter %s, want at most %s", d.RequeueAfter, w.requeue)
	}
	if st.ObservedGeneration != 1 {
		t.Errorf("observedGeneration %d, want 1", st.ObservedGeneration)
	}
	for _, c := range st.Conditions {
		if c.ObservedGeneration != 1 {
			t.Errorf("condition %s observedGeneration %d", c.Type, c.ObservedGeneration)
		}
	}
	if w.check != nil {
		w.check(t, d)
	}
}

func TestSteps(t *testing.T) {
	spec := &mv1.RolloutSpec{Strategy: mv1.RolloutStrategy{Canary: &mv1.CanaryStrategy{StepWeight: i32(20), MaxWeight: i32(50)}}}
	var got []int32
	for _, s := range Steps(spec) {
		if s.SetWeight != nil {
			got = append(got, *s.SetWeight)
		} else if s.Pause == nil || s.Pause.Duration.Duration != mv1.DefaultAnalysisInterval {
			t.Errorf("without analysis, each weight waits one interval: %+v", s)
		}
	}
	if !reflect.DeepEqual(got, []int32{20, 40, 50}) {
		t.Errorf("weights %v, want [20 40 50]", got)
	}
	spec.Analysis = &mv1.RolloutAnalysis{HealthGates: []mv1.LocalObjectReference{{Name: "g"}}}
	if s := Steps(spec); len(s) != 6 || s[1].Analysis == nil || s[1].Analysis.Checks != 1 {
		t.Errorf("with analysis, each weight waits for one passing check: %+v", s)
	}
	if w := WeightAt(canarySpec().Strategy.Canary.Steps, 2); w != 10 {
		t.Errorf("WeightAt(2) = %d, want 10", w)
	}
}

func TestCheckDue(t *testing.T) {
	spec := canarySpec()
	cases := []struct {
		name string
		st   mv1.RolloutStatus
		obs  Observations
		want bool
	}{
		{"first check once the step's traffic is in force", releasing(2, 10), obs(r2, ready(r1), ready(r2), route(90, 10)), true},
		{"not before an interval passed", with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.LastCheck = at(-10 * time.Second) }), obs(r2, ready(r1), ready(r2), route(90, 10)), false},
		{"again after an interval", with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.LastCheck = at(-30 * time.Second) }), obs(r2, ready(r1), ready(r2), route(90, 10)), true},
		{"not while the route lags", releasing(2, 10), obs(r2, ready(r1), ready(r2), route(100, 0)), false},
		{"not before the step's traffic is in force", with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.StepStartTime = nil }), obs(r2, ready(r1), ready(r2), route(100, 0)), false},
		{"not with the canary unready", releasing(2, 10), obs(r2, ready(r1), notReady(r2), route(90, 10)), false},
		{"not when paused", with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.ManualPause = true }), obs(r2, ready(r1), ready(r2), route(90, 10)), false},
		{"while holding, to notice Prometheus is back", with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseHolding }), obs(r2, ready(r1), ready(r2), route(90, 10)), true},
		{"not when healthy", healthy(), obs(r1, ready(r1), SlotState{}, route(100, 0)), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := CheckDue(spec, &tc.st, tc.obs); got != tc.want {
				t.Errorf("CheckDue = %v, want %v", got, tc.want)
			}
		})
	}
}
