package controllers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

var (
	phaseGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_phase", Help: "1 for the phase a Rollout is in, 0 for the others.",
	}, []string{"namespace", "rollout", "phase"})
	weightGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_canary_weight", Help: "Percent of a Rollout's traffic on its canary slot.",
	}, []string{"namespace", "rollout"})
	releasesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_rollout_releases_total", Help: "Finished releases by outcome (promoted, rolled_back) and abort reason.",
	}, []string{"namespace", "rollout", "outcome", "abort_reason"})
	releaseSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_rollout_release_duration_seconds", Help: "Time from the start of a release to its promotion or rollback.",
		Buckets: prometheus.ExponentialBuckets(5, 2, 12),
	}, []string{"outcome"})
)

var allPhases = []meshv1alpha1.RolloutPhase{
	meshv1alpha1.PhaseInitializing, meshv1alpha1.PhaseHealthy, meshv1alpha1.PhaseProgressing, meshv1alpha1.PhasePaused,
	meshv1alpha1.PhaseHolding, meshv1alpha1.PhasePromoting, meshv1alpha1.PhaseRollingBack, meshv1alpha1.PhaseRolledBack, meshv1alpha1.PhaseFailed,
}

func init() {
	metrics.Registry.MustRegister(phaseGauge, weightGauge, releasesTotal, releaseSeconds)
}

// recordMetrics updates the gauges and counts a release that ended in this reconcile.
func recordMetrics(before, after *meshv1alpha1.Rollout, now time.Time) {
	ns, name := after.Namespace, after.Name
	for _, p := range allPhases {
		v := 0.0
		if after.Status.Phase == p {
			v = 1
		}
		phaseGauge.WithLabelValues(ns, name, string(p)).Set(v)
	}
	weightGauge.WithLabelValues(ns, name).Set(float64(after.Status.CanaryWeight))

	var outcome, reason string
	switch {
	case before.Status.CanaryRevision != "" && after.Status.StableRevision == before.Status.CanaryRevision:
		outcome = "promoted"
	case after.Status.Phase == meshv1alpha1.PhaseRolledBack && before.Status.Phase != meshv1alpha1.PhaseRolledBack:
		outcome, reason = "rolled_back", after.Status.AbortReason
	default:
		return
	}
	releasesTotal.WithLabelValues(ns, name, outcome, reason).Inc()
	if start := before.Status.ReleaseStartTime; start != nil {
		releaseSeconds.WithLabelValues(outcome).Observe(now.Sub(start.Time).Seconds())
	}
}

// forgetMetrics drops a deleted Rollout's series.
func forgetMetrics(ro *meshv1alpha1.Rollout) {
	for _, p := range allPhases {
		phaseGauge.DeleteLabelValues(ro.Namespace, ro.Name, string(p))
	}
	weightGauge.DeleteLabelValues(ro.Namespace, ro.Name)
}
