package controllers_test

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// rollbacksCounted is sluice_rollout_releases_total{outcome="rolled_back"} for a Rollout.
func rollbacksCounted(t *testing.T, ns, name string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "sluice_rollout_releases_total" {
			continue
		}
		for _, m := range f.Metric {
			if label(m, "namespace") == ns && label(m, "rollout") == name && label(m, "outcome") == "rolled_back" {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// 7. Status tells the truth, against the real API server: observedGeneration moves only once
// a generation is applied or judged Stalled; a rollback stays on record (history, metric) when a newer revision
// arrives before the route carried it; a gate that never produces data ends in Stalled.
func TestStatusTellsTheTruth(t *testing.T) {
	t.Run("observedGeneration once the generation is applied or stalled", func(t *testing.T) {
		c := newCluster(t, "observed")
		startManager(t, c.ns, &stubGates{})
		c.target(t, "checkout")
		create(t, canaryRollout(c.ns, "checkout"))
		r := c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
		applied := r.Generation
		takeOverServicePort(t, c.ns, "checkout-a") // Sluice can't write the stable slot's Service now
		r.Spec.ProgressDeadline = &metav1.Duration{Duration: 11 * time.Minute}
		if err := env.Client.Update(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		// Retried failures leave observedGeneration at the generation applied; a stall is a
		// judgement of the new generation, so waiters read Failed at once.
		// (The takeover alone already stalls generation 1: the wait is for generation 2's.)
		r = c.waitRollout(t, "checkout", "generation 2 judged Stalled on the Service", func(r *meshv1alpha1.Rollout) bool {
			return condIs(r, meshv1alpha1.ConditionStalled, "ApplyFailed") && r.Status.ObservedGeneration == r.Generation && r.Generation > applied
		})
		if ready := meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionReady); ready == nil || ready.Status != metav1.ConditionFalse {
			t.Errorf("Ready %+v while the generation is stalled, want False", ready)
		}
		// The GitOps copy is fixed to agree with Sluice: shared ownership, no conflict.
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{"name": "checkout-a", "namespace": c.ns},
			"spec":     map[string]any{"ports": []any{map[string]any{"name": "http", "port": int64(80), "targetPort": "http", "protocol": "TCP"}}},
		}}
		if err := env.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("gitops"), client.ForceOwnership); err != nil {
			t.Fatal(err)
		}
		c.waitRollout(t, "checkout", "observedGeneration caught up", func(r *meshv1alpha1.Rollout) bool {
			return r.Status.ObservedGeneration == r.Generation && condIs(r, meshv1alpha1.ConditionReady, "Healthy")
		})
	})

	t.Run("a rollback is never erased from the record", func(t *testing.T) {
		c := newCluster(t, "record")
		g := &stubGates{}
		startManager(t, c.ns, g)
		c.target(t, "checkout")
		create(t, canaryRollout(c.ns, "checkout"))
		c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
		// No verdict until the test has seen 20% in force and held the routes: a Fail at once
		// could roll back before either.
		g.set(func(r *meshv1alpha1.Rollout) meshv1alpha1.Verdict { return meshv1alpha1.VerdictInconclusive })
		c.setImage(t, "checkout", "demo:bad")
		c.waitRollout(t, "checkout", "20% in force", func(r *meshv1alpha1.Rollout) bool {
			return r.Status.CanaryWeight == 20 && condIs(r, meshv1alpha1.ConditionTrafficApplied, "")
		})
		c.holdRoutes(true) // the rollback's route is not accepted yet: the Rollout stays RollingBack
		g.set(func(r *meshv1alpha1.Rollout) meshv1alpha1.Verdict { return meshv1alpha1.VerdictFail })
		r := c.waitRollout(t, "checkout", "RollingBack", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRollingBack })
		bad := r.Status.CanaryRevision
		g.set(nil)
		c.setImage(t, "checkout", "demo:v3") // the fix arrives before the rollback completed
		c.holdRoutes(false)
		r = c.waitRollout(t, "checkout", "v3 at the manual gate", atGate(4))
		annotate(t, r, meshv1alpha1.ActionPromote)
		r = c.healthyOn(t, "checkout", meshv1alpha1.SlotB)
		var rolledBack, promoted bool
		for _, h := range r.Status.History {
			rolledBack = rolledBack || (h.Revision == bad && h.Outcome == meshv1alpha1.OutcomeRolledBack && h.AbortReason == "HealthGateFailed")
			promoted = promoted || h.Outcome == meshv1alpha1.OutcomePromoted
		}
		if !rolledBack || !promoted {
			t.Errorf("history %+v: the rollback of %s and the promotion must both be on record", r.Status.History, bad)
		}
		if n := rollbacksCounted(t, c.ns, "checkout"); n != 1 {
			t.Errorf("%v rollbacks counted in sluice_rollout_releases_total, want 1", n)
		}
	})

	t.Run("a gate that never produces data ends in Stalled", func(t *testing.T) {
		c := newCluster(t, "nodata")
		g := &stubGates{}
		g.set(func(*meshv1alpha1.Rollout) meshv1alpha1.Verdict { return meshv1alpha1.VerdictInconclusive })
		startManager(t, c.ns, g)
		c.target(t, "checkout")
		ro := canaryRollout(c.ns, "checkout")
		ro.Spec.Analysis.InconclusiveLimit = ptr.To(int32(3))
		create(t, ro)
		c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
		c.setImage(t, "checkout", "demo:v2")
		r := c.waitRollout(t, "checkout", "Stalled on inconclusive checks", func(r *meshv1alpha1.Rollout) bool {
			return condIs(r, meshv1alpha1.ConditionStalled, "InconclusiveLimitExceeded")
		})
		if r.Status.Phase != meshv1alpha1.PhaseHolding || r.Status.CanaryWeight != 20 || r.Status.AbortReason != "" {
			t.Errorf("phase %s weight %d abort %q: want the weights held, nothing rolled back", r.Status.Phase, r.Status.CanaryWeight, r.Status.AbortReason)
		}
		g.set(nil) // the metric name is fixed: checks pass, the release carries on
		c.waitRollout(t, "checkout", "the release going on", func(r *meshv1alpha1.Rollout) bool { return r.Status.CanaryWeight == 60 })
	})
}
