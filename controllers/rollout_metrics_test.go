package controllers

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

func TestReleaseMetrics(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	started := metav1.NewTime(now.Add(-90 * time.Second))
	ro := func(phase meshv1alpha1.RolloutPhase, stable, canary, abort string, w int32) *meshv1alpha1.Rollout {
		return &meshv1alpha1.Rollout{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"},
			Status:     meshv1alpha1.RolloutStatus{Phase: phase, StableRevision: stable, CanaryRevision: canary, AbortReason: abort, CanaryWeight: w, ReleaseStartTime: &started},
		}
	}
	end := func(outcome meshv1alpha1.ReleaseOutcome, abort string) *meshv1alpha1.ReleaseRecord {
		return &meshv1alpha1.ReleaseRecord{Revision: "r2", Outcome: outcome, AbortReason: abort, StartTime: &started, EndTime: metav1.NewTime(now)}
	}
	recordMetrics(ro(meshv1alpha1.PhaseProgressing, "r1", "r2", "", 50), rollout.Decision{})
	if v := testutil.ToFloat64(weightGauge.WithLabelValues("shop", "checkout")); v != 50 {
		t.Errorf("canary weight %v, want 50", v)
	}
	if v := testutil.ToFloat64(phaseGauge.WithLabelValues("shop", "checkout", "Progressing")); v != 1 {
		t.Errorf("phase Progressing %v, want 1", v)
	}
	recordMetrics(ro(meshv1alpha1.PhasePaused, "r1", "r2", "", 50), rollout.Decision{})
	for _, p := range []string{"Progressing", "Healthy"} {
		if phaseGauge.DeleteLabelValues("shop", "checkout", p) { // reports whether the series was there
			t.Errorf("a series for phase %s while the Rollout is Paused: one series per Rollout", p)
		}
	}

	recordMetrics(ro(meshv1alpha1.PhaseRollingBack, "r1", "r2", "HealthGateFailed", 0), rollout.Decision{Ended: end(meshv1alpha1.OutcomeRolledBack, "HealthGateFailed")})
	recordMetrics(ro(meshv1alpha1.PhaseRolledBack, "r1", "r2", "HealthGateFailed", 0), rollout.Decision{})
	if v := testutil.ToFloat64(releasesTotal.WithLabelValues("shop", "checkout", "rolled_back", "HealthGateFailed")); v != 1 {
		t.Errorf("rolled-back releases %v, want 1 (counted once, when decided)", v)
	}
	recordMetrics(ro(meshv1alpha1.PhaseHealthy, "r3", "", "", 0), rollout.Decision{Ended: end(meshv1alpha1.OutcomePromoted, "")})
	if v := testutil.ToFloat64(releasesTotal.WithLabelValues("shop", "checkout", "promoted", "")); v != 1 {
		t.Errorf("promoted releases %v, want 1", v)
	}
	if n := testutil.CollectAndCount(releaseSeconds); n != 2 {
		t.Errorf("%d release-duration series, want 2 (promoted, rolled_back)", n)
	}
}
