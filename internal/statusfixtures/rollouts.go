package statusfixtures

import (
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// The images of the stories: v1 is stable, v2 is released.
const (
	imageV1 = "registry.example.com/shop/checkout:1.4.1"
	imageV2 = "registry.example.com/shop/checkout:1.5.0"
)

// The canary steps of canarySpec, by index.
const (
	stepPause1m    = 1 // pause 1m at 5%
	stepAnalysis25 = 4 // 3 passing checks at 25%
	stepManualGate = 6 // pause {} at 50%: waits for promote
)

// canarySpec is the north-south canary of config/samples: 5% → 1m → 3 checks → 25% → 3
// checks → 50% → wait for promote.
func canarySpec() meshv1alpha1.RolloutSpec {
	return meshv1alpha1.RolloutSpec{
		TargetRef: meshv1alpha1.TargetReference{Name: "checkout"},
		Service:   meshv1alpha1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromString("http"))},
		TrafficRouting: meshv1alpha1.TrafficRouting{GatewayAPI: meshv1alpha1.GatewayAPIRouting{
			ParentRefs: []meshv1alpha1.ParentReference{{Name: "edge", Namespace: "gateways"}},
			Hostnames:  []meshv1alpha1.Hostname{"shop.example.com"},
		}},
		Strategy: meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{
			Steps: []meshv1alpha1.CanaryStep{
				{SetWeight: ptr.To(int32(5))},
				{Pause: &meshv1alpha1.PauseStep{Duration: &metav1.Duration{Duration: time.Minute}}},
				{Analysis: &meshv1alpha1.AnalysisStep{Checks: 3}},
				{SetWeight: ptr.To(int32(25))},
				{Analysis: &meshv1alpha1.AnalysisStep{Checks: 3}},
				{SetWeight: ptr.To(int32(50))},
				{Pause: &meshv1alpha1.PauseStep{}},
			},
			ScaleDownDelay: &metav1.Duration{Duration: 30 * time.Second},
		}},
		Analysis: &meshv1alpha1.RolloutAnalysis{
			Interval:      &metav1.Duration{Duration: 30 * time.Second},
			HealthGates:   []meshv1alpha1.LocalObjectReference{{Name: "success-rate"}, {Name: "p99-latency"}},
			FailureLimit:  ptr.To(int32(2)),
			MinSamples:    ptr.To(int32(100)),
			OnUnreachable: meshv1alpha1.OnUnreachableHold,
			MaxHold:       &metav1.Duration{Duration: 10 * time.Minute},
		},
		ProgressDeadline: &metav1.Duration{Duration: 10 * time.Minute},
	}
}

// blueGreenSpec runs the new revision behind a preview Service, checks it three times and
// waits for promote.
func blueGreenSpec() meshv1alpha1.RolloutSpec {
	s := canarySpec()
	s.Strategy = meshv1alpha1.RolloutStrategy{BlueGreen: &meshv1alpha1.BlueGreenStrategy{
		PreviewService: "checkout-preview", PrePromotionChecks: ptr.To(int32(3)),
		ScaleDownDelay: &metav1.Duration{Duration: 5 * time.Minute},
	}}
	return s
}

func phaseIs(p meshv1alpha1.RolloutPhase) func(*meshv1alpha1.Rollout) bool {
	return func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == p }
}

// condIs: the condition is True with this reason.
func condIs(typ, reason string) func(*meshv1alpha1.Rollout) bool {
	return func(r *meshv1alpha1.Rollout) bool {
		c := meta.FindStatusCondition(r.Status.Conditions, typ)
		return c != nil && c.Status == metav1.ConditionTrue && c.Reason == reason
	}
}

func atStep(step int32, p meshv1alpha1.RolloutPhase) func(*meshv1alpha1.Rollout) bool {
	return func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == p && r.Status.CurrentStep != nil && *r.Status.CurrentStep == step && r.Status.StepStartTime != nil
	}
}

func healthyOn(slot meshv1alpha1.Slot) func(*meshv1alpha1.Rollout) bool {
	return func(r *meshv1alpha1.Rollout) bool {
		return r.Status.StableSlot == slot && condIs(meshv1alpha1.ConditionReady, rollout.ReasonHealthy)(r)
	}
}

// story is a sequence of waits and changes on one simulated Rollout; its first error stops it.
type story struct {
	s   *sim
	err error
}

func (st *story) until(what string, done func(*meshv1alpha1.Rollout) bool) *story {
	if st.err == nil {
		st.err = st.s.until(what, done)
	}
	return st
}

func (st *story) do(f func(s *sim)) *story {
	if st.err == nil {
		f(st.s)
	}
	return st
}

// releasing is a canary Rollout, healthy on v1, releasing v2 up to the analysis at 25%.
func releasing() *story {
	st := &story{s: newSim(canarySpec(), imageV1)}
	return st.until("healthy on slot a", healthyOn(meshv1alpha1.SlotA)).
		do(func(s *sim) { s.release(imageV2) }).
		until("analysis at 25%", atStep(stepAnalysis25, meshv1alpha1.PhaseProgressing))
}

func healthy() *story {
	return (&story{s: newSim(canarySpec(), imageV1)}).until("healthy on slot a", healthyOn(meshv1alpha1.SlotA))
}

// Rollouts returns a Rollout in every phase, and in the states around them that health
// checks must tell apart.
func Rollouts() ([]Fixture, error) {
	var out []Fixture
	var errs []error
	add := func(name string, st *story) {
		if st.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, st.err))
			return
		}
		out = append(out, Fixture{Kind: "Rollout", Name: name, Object: st.s.snapshot()})
	}
	notOurs := "Service checkout-a is managed by someone else (exists and is not this Rollout's): remove it from Git or rename spec.service: " +
		`Apply failed with 1 conflict: conflict with "gitops" using v1: .spec.ports[name="http"].targetPort`

	add("no-status", &story{s: newSim(canarySpec(), imageV1)})
	add("initializing", (&story{s: newSim(canarySpec(), imageV1)}).until("waiting for pods", phaseIs(meshv1alpha1.PhaseInitializing)))
	add("initialization-failed", (&story{s: newSim(canarySpec(), imageV1)}).
		do(func(s *sim) { s.podsFail[revisionOf(imageV1)] = true }).
		until("initialization timed out", phaseIs(meshv1alpha1.PhaseFailed)))
	add("healthy", healthy())
	add("not-observed", healthy().do(func(s *sim) {
		s.changeSpec(func(spec *meshv1alpha1.RolloutSpec) {
			spec.Analysis.Interval = &metav1.Duration{Duration: 20 * time.Second}
		})
	}))
	add("stalled-spec-not-applied", healthy().do(func(s *sim) {
		s.changeSpec(func(spec *meshv1alpha1.RolloutSpec) { spec.Service.TargetPort = ptr.To(intstr.FromInt32(8080)) })
		s.applyErr = &rollout.ApplyError{Message: notOurs, Stalled: true}
	}).until("stalled on the Service", condIs(meshv1alpha1.ConditionStalled, rollout.ReasonApplyFailed)))
	add("stalled-target-misconfigured", healthy().do(func(s *sim) {
		s.release(imageV2)
		s.target.Problem = `spec.service.targetPort "http": no container of the target Deployment checkout declares a port with that name`
	}).until("stalled on the target", condIs(meshv1alpha1.ConditionStalled, rollout.ReasonTargetMisconfigured)))

	add("progressing-pause-step", healthy().do(func(s *sim) { s.release(imageV2) }).
		until("pause at 5%", atStep(stepPause1m, meshv1alpha1.PhaseProgressing)))
	add("progressing-analysis", releasing().until("a check passed", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Analysis != nil && r.Status.Analysis.StepPassed == 1
	}))
	atGate := func() *story {
		return releasing().until("at the manual gate", atStep(stepManualGate, meshv1alpha1.PhasePaused))
	}
	add("paused-at-manual-gate", atGate())
	add("action-pending", atGate().do(func(s *sim) {
		s.ro.Annotations = map[string]string{meshv1alpha1.ActionAnnotation: string(meshv1alpha1.ActionPromote)}
	}))
	add("paused-by-spec", releasing().do(func(s *sim) {
		s.changeSpec(func(spec *meshv1alpha1.RolloutSpec) { spec.Paused = true })
	}).until("paused", phaseIs(meshv1alpha1.PhasePaused)))
	add("paused-by-action", releasing().do(func(s *sim) { s.act(meshv1alpha1.ActionPause) }).
		until("paused", phaseIs(meshv1alpha1.PhasePaused)))
	holding := func() *story {
		return releasing().do(func(s *sim) { s.prom = unreachable("") }).
			until("holding", phaseIs(meshv1alpha1.PhaseHolding))
	}
	add("holding-prometheus-unreachable", holding())
	add("stalled-max-hold", holding().until("stalled past maxHold", condIs(meshv1alpha1.ConditionStalled, rollout.ReasonMaxHoldExceeded)))
	add("stalled-inconclusive", releasing().do(func(s *sim) { s.prom = tooFewSamples("") }).
		until("stalled on inconclusive checks", condIs(meshv1alpha1.ConditionStalled, rollout.ReasonInconclusiveLimit)))
	promoting := func() *story {
		return atGate().do(func(s *sim) { s.holdRoute = true; s.act(meshv1alpha1.ActionPromote) }).
			until("promoting", phaseIs(meshv1alpha1.PhasePromoting))
	}
	add("promoting", promoting())
	add("promoted", promoting().do(func(s *sim) { s.holdRoute = false }).until("healthy on slot b", healthyOn(meshv1alpha1.SlotB)))
	rollingBack := func() *story {
		return releasing().do(func(s *sim) { s.prom = failing(""); s.holdRoute = true }).
			until("rolling back", phaseIs(meshv1alpha1.PhaseRollingBack))
	}
	add("rolling-back", rollingBack())
	add("rolled-back", rollingBack().do(func(s *sim) { s.holdRoute = false }).until("rolled back", phaseIs(meshv1alpha1.PhaseRolledBack)))
	add("aborted", healthy().do(func(s *sim) { s.release(imageV2) }).
		until("pause at 5%", atStep(stepPause1m, meshv1alpha1.PhaseProgressing)).
		do(func(s *sim) { s.act(meshv1alpha1.ActionAbort) }).
		until("rolled back", phaseIs(meshv1alpha1.PhaseRolledBack)))
	add("bluegreen-waiting-for-promote", (&story{s: newSim(blueGreenSpec(), imageV1)}).
		until("healthy on slot a", healthyOn(meshv1alpha1.SlotA)).
		do(func(s *sim) { s.release(imageV2) }).
		until("preview ready", phaseIs(meshv1alpha1.PhasePaused)))
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
