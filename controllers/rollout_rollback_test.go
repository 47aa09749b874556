package controllers_test

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// A failing verdict at any step puts all traffic back on the stable slot in the same
// reconcile that saw it, the canary slot scales down after scaleDownDelay, and status says why.
func TestFailingVerdictRollsBackAtOnce(t *testing.T) {
	for _, step := range []struct {
		name   string
		weight int32 // the canary weight at which the gates start failing
	}{{"at 20%", 20}, {"at 60%", 60}} {
		t.Run(step.name, func(t *testing.T) {
			c := newCluster(t, "rollback")
			g := &stubGates{}
			startManager(t, c.ns, g)
			c.target(t, "checkout")
			ro := canaryRollout(c.ns, "checkout")
			ro.Spec.Strategy.Canary.Steps[4] = meshv1alpha1.CanaryStep{Analysis: &meshv1alpha1.AnalysisStep{Checks: 2}} // judged at 60% too
			create(t, ro)
			c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

			g.set(func(r *meshv1alpha1.Rollout) meshv1alpha1.Verdict {
				if r.Status.CanaryWeight >= step.weight {
					return meshv1alpha1.VerdictFail
				}
				return meshv1alpha1.VerdictPass
			})
			c.setImage(t, "checkout", "demo:bad")
			r := c.waitRollout(t, "checkout", "RolledBack", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })

			if n := g.count(meshv1alpha1.VerdictFail); n != 1 {
				t.Errorf("%d failing checks; with failureLimit 0 the first one must roll back", n)
			}
			if r.Status.AbortReason != "HealthGateFailed" || r.Status.CanaryWeight != 0 || r.Status.StableSlot != meshv1alpha1.SlotA {
				t.Errorf("status: abortReason %q weight %d stable %s", r.Status.AbortReason, r.Status.CanaryWeight, r.Status.StableSlot)
			}
			rb := meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionRolledBack)
			if rb == nil || rb.Status != metav1.ConditionTrue || !strings.Contains(rb.Message, "stub gate: Fail") {
				t.Errorf("RolledBack condition does not say why: %+v", rb)
			}
			if !condIs(r, meshv1alpha1.ConditionStalled, "RolledBack") {
				t.Errorf("a rolled-back release needs a person: Stalled expected, %+v", r.Status.Conditions)
			}
			splits := c.splits()
			last := splits[len(splits)-1]
			if last["checkout-a"] != 100 || last["checkout-b"] != 0 {
				t.Errorf("the route ends at %v, want all on checkout-a", last)
			}
			// The last split before rollback carried the failing weight; the next one is 100/0.
			if prev := splits[len(splits)-2]; prev["checkout-b"] != step.weight {
				t.Errorf("splits %v: the rollback must follow the failing step directly", splits)
			}
			if err := pollFor(10*time.Second, func() bool { return ptr.Deref(c.deployment(t, "checkout-b").Spec.Replicas, 1) == 0 }); err != nil {
				t.Errorf("canary slot not scaled down after scaleDownDelay: %v", err)
			}
		})
	}
}

// Unreachable verdicts hold the weight (no promotion, no rollback) until maxHold, then the
// Rollout is Stalled, still frozen; when Prometheus answers again the release resumes.
func TestUnreachablePrometheusHoldsThenStallsThenResumes(t *testing.T) {
	c := newCluster(t, "hold")
	g := &stubGates{}
	startManager(t, c.ns, g)
	c.target(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	ro.Spec.Analysis.MaxHold = &metav1.Duration{Duration: 3 * time.Second}
	create(t, ro)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	g.set(func(*meshv1alpha1.Rollout) meshv1alpha1.Verdict { return meshv1alpha1.VerdictUnreachable })
	c.setImage(t, "checkout", "demo:v2")
	r := c.waitRollout(t, "checkout", "Holding", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseHolding })
	if r.Status.CanaryWeight != 20 {
		t.Errorf("holding at %d%%, want the step's 20%%", r.Status.CanaryWeight)
	}
	r = c.waitRollout(t, "checkout", "Stalled after maxHold", func(r *meshv1alpha1.Rollout) bool {
		return condIs(r, meshv1alpha1.ConditionStalled, "MaxHoldExceeded")
	})
	if r.Status.Phase != meshv1alpha1.PhaseHolding || r.Status.CanaryWeight != 20 || r.Status.StableSlot != meshv1alpha1.SlotA || r.Status.AbortReason != "" {
		t.Errorf("while stalled: phase %s weight %d stable %s abort %q", r.Status.Phase, r.Status.CanaryWeight, r.Status.StableSlot, r.Status.AbortReason)
	}
	for _, s := range c.splits() {
		if s["checkout-b"] > 20 {
			t.Errorf("the weight moved while Prometheus was unreachable: %v", c.splits())
		}
	}

	g.set(nil) // Prometheus is back: checks pass
	r = c.waitRollout(t, "checkout", "the manual gate at 60%", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhasePaused && r.Status.CanaryWeight == 60
	})
	if meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionStalled) != nil {
		t.Error("still Stalled after Prometheus came back")
	}
	annotate(t, r, meshv1alpha1.ActionPromote)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotB)
}

// Manual actions with plain kubectl: abort rolls back; an unknown value is reported and removed.
func TestAbortAndInvalidActionThroughTheAnnotation(t *testing.T) {
	c := newCluster(t, "abort")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	c.setImage(t, "checkout", "demo:v2")
	r := c.waitRollout(t, "checkout", "the manual gate", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhasePaused })

	annotate(t, r, "rollback-please")
	r = c.waitRollout(t, "checkout", "the invalid action removed", func(r *meshv1alpha1.Rollout) bool {
		_, ok := r.Annotations[meshv1alpha1.ActionAnnotation]
		return !ok
	})
	if r.Status.Phase != meshv1alpha1.PhasePaused || r.Status.LastAction != nil {
		t.Errorf("an invalid action changed the release: phase %s lastAction %+v", r.Status.Phase, r.Status.LastAction)
	}

	annotate(t, r, meshv1alpha1.ActionAbort)
	r = c.waitRollout(t, "checkout", "RolledBack", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })
	if r.Status.AbortReason != "Aborted" || r.Status.LastAction == nil || r.Status.LastAction.Action != meshv1alpha1.ActionAbort {
		t.Errorf("abortReason %q lastAction %+v", r.Status.AbortReason, r.Status.LastAction)
	}
}
