package rollout

import (
	"testing"
	"time"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	mv1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// kstatusOf is what generic tooling (Flux, Argo CD health, kstatus) reads from a Rollout with
// this status at this generation.
func kstatusOf(t *testing.T, generation int64, st mv1.RolloutStatus) kstatus.Status {
	t.Helper()
	ro := &mv1.Rollout{TypeMeta: metav1.TypeMeta{APIVersion: mv1.GroupVersion.String(), Kind: "Rollout"},
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "ns", Generation: generation}, Status: st}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ro)
	if err != nil {
		t.Fatal(err)
	}
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// 7. Status tells the truth: every phase reads right to kstatus (Current only when healthy and
// in force, Failed when a person must act, InProgress while work is under way), Ready never
// contradicts the phase, and a generation not yet applied is never Current.
func TestStatusTellsTheTruthKstatus(t *testing.T) {
	paused := func(s *mv1.RolloutSpec) { s.Paused = true }
	cases := []struct {
		name  string
		spec  *mv1.RolloutSpec
		st    mv1.RolloutStatus
		obs   Observations
		phase mv1.RolloutPhase
		want  kstatus.Status
	}{
		{"Initializing, waiting for pods", canarySpec(), mv1.RolloutStatus{},
			with(obs(r1, SlotState{}, SlotState{}, TrafficState{}), func(o *Observations) { o.Target.Replicas = 3 }), mv1.PhaseInitializing, kstatus.InProgressStatus},
		{"Initializing, target missing", canarySpec(), mv1.RolloutStatus{},
			with(obs(r1, SlotState{}, SlotState{}, TrafficState{}), func(o *Observations) { o.Target = TargetState{} }), mv1.PhaseInitializing, kstatus.FailedStatus},
		{"Healthy", canarySpec(), healthy(), obs(r1, ready(r1), SlotState{}, route(100, 0)), mv1.PhaseHealthy, kstatus.CurrentStatus},
		{"Healthy, route not yet accepted", canarySpec(), healthy(),
			with(obs(r1, ready(r1), SlotState{}, route(100, 0)), func(o *Observations) { o.Traffic.Accepted = false }), mv1.PhaseHealthy, kstatus.InProgressStatus},
		{"Healthy, target misconfigured", canarySpec(), healthy(),
			with(obs(r2, ready(r1), SlotState{}, route(100, 0)), func(o *Observations) { o.Target.Problem = "no port" }), mv1.PhaseHealthy, kstatus.FailedStatus},
		{"Progressing", canarySpec(), releasing(0, 0), obs(r2, ready(r1), ready(r2), route(100, 0)), mv1.PhaseProgressing, kstatus.InProgressStatus},
		{"Paused at a manual gate", canarySpec(), releasing(4, 50), obs(r2, ready(r1), ready(r2), route(50, 50)), mv1.PhasePaused, kstatus.InProgressStatus},
		{"Paused by spec.paused", modSpec(canarySpec(), paused), releasing(1, 10), obs(r2, ready(r1), ready(r2), route(90, 10)), mv1.PhasePaused, kstatus.InProgressStatus},
		{"Holding on an unreachable Prometheus", canarySpec(), releasing(2, 10),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictUnreachable} }), mv1.PhaseHolding, kstatus.InProgressStatus},
		{"Holding past maxHold", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseHolding; s.HoldStartTime = at(-time.Hour) }),
			obs(r2, ready(r1), ready(r2), route(90, 10)), mv1.PhaseHolding, kstatus.FailedStatus},
		{"Holding past inconclusiveLimit", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.ConsecutiveInconclusive = 11 }),
			obs(r2, ready(r1), ready(r2), route(90, 10)), mv1.PhaseHolding, kstatus.FailedStatus},
		{"Promoting", canarySpec(), with(releasing(5, 100), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhasePromoting }),
			obs(r2, ready(r1), ready(r2), route(50, 50)), mv1.PhasePromoting, kstatus.InProgressStatus},
		{"RollingBack", canarySpec(), with(releasing(2, 10), func(s *mv1.RolloutStatus) { s.Analysis.Failed = 1 }),
			with(obs(r2, ready(r1), ready(r2), route(90, 10)), func(o *Observations) { o.Check = &Check{Verdict: mv1.VerdictFail} }), mv1.PhaseRollingBack, kstatus.InProgressStatus},
		{"RolledBack", canarySpec(), with(releasing(0, 0), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhaseRolledBack }),
			obs(r2, ready(r1), ready(r2), route(100, 0)), mv1.PhaseRolledBack, kstatus.FailedStatus},
		{"Failed to initialize", canarySpec(), mv1.RolloutStatus{StableSlot: a, Replicas: 3, ReleaseStartTime: at(-time.Hour)},
			obs(r1, notReady(r1), SlotState{}, TrafficState{}), mv1.PhaseFailed, kstatus.FailedStatus},
	}
	seen := map[mv1.RolloutPhase]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Next(tc.spec, &tc.st, tc.obs)
			if d.Status.Phase != tc.phase {
				t.Fatalf("phase %s, want %s", d.Status.Phase, tc.phase)
			}
			seen[tc.phase] = true
			if got := kstatusOf(t, 1, d.Status); got != tc.want {
				t.Errorf("kstatus %s, want %s; conditions %+v", got, tc.want, d.Status.Conditions)
			}
			ready := false
			for _, c := range d.Status.Conditions {
				if c.Type == mv1.ConditionReady && c.Status == metav1.ConditionTrue {
					ready = true
				}
			}
			if ready && d.Status.Phase != mv1.PhaseHealthy {
				t.Errorf("Ready=True in phase %s", d.Status.Phase)
			}
			// The same status while a newer generation is not applied yet is never Current.
			if got := kstatusOf(t, 2, d.Status); got == kstatus.CurrentStatus {
				t.Errorf("generation 2 with observedGeneration %d reads Current", d.Status.ObservedGeneration)
			}
		})
	}
	for _, p := range []mv1.RolloutPhase{mv1.PhaseInitializing, mv1.PhaseHealthy, mv1.PhaseProgressing, mv1.PhasePaused, mv1.PhaseHolding,
		mv1.PhasePromoting, mv1.PhaseRollingBack, mv1.PhaseRolledBack, mv1.PhaseFailed} {
		if !seen[p] {
			t.Errorf("phase %s has no case", p)
		}
	}

	t.Run("an apply failure: retried is InProgress, only-a-person is Failed", func(t *testing.T) {
		d := Next(canarySpec(), ptr(healthy()), obs(r1, ready(r1), SlotState{}, route(100, 0)))
		transient, stuck := *d.Status.DeepCopy(), *d.Status.DeepCopy()
		ApplyFailed(&transient, "connection reset", false, 1)
		ApplyFailed(&stuck, "Service checkout exists and is not this Rollout's", true, 1)
		if got := kstatusOf(t, 1, transient); got != kstatus.InProgressStatus {
			t.Errorf("transient apply failure: %s", got)
		}
		if got := kstatusOf(t, 1, stuck); got != kstatus.FailedStatus {
			t.Errorf("terminal apply failure: %s", got)
		}
	})
}
