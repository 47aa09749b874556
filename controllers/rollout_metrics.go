package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

var (
	phaseGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_phase", Help: "1 for the phase a Rollout is in (one series per Rollout: the other phases have none).",
	}, []string{"namespace", "rollout", "phase"})
	weightGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_canary_weight", Help: "Percent of a Rollout's traffic on its canary slot.",
	}, []string{"namespace", "rollout"})
	releasesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_rollout_releases_total", Help: "Finished releases by outcome (promoted, rolled_back, superseded) and abort reason; a rollback counts when decided.",
	}, []string{"namespace", "rollout", "outcome", "abort_reason"})
	releaseSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sluice_rollout_release_duration_seconds", Help: "Time from the start of a release to the decision that ended it.",
		Buckets: prometheus.ExponentialBuckets(5, 2, 12),
	}, []string{"outcome"})
	// One series for the whole manager: at scale it says whether workers keep up.
	stepDecisionDelay = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sluice_rollout_step_decision_delay_seconds", Help: "From the end of a timed pause step to the persisted decision that ends it.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
	})
)

var (
	probeRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_rollout_dataplane_probes_total",
		Help: "Data-plane probe runs by result: proven, unprobeable (route status stands in), error, or why the data plane did not serve the split yet (NoAnswer, RuleNotServed, SplitNotServed, SlotUnreachable).",
	}, []string{"result"})
	dataPlaneLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sluice_rollout_dataplane_lag_seconds", Help: "From the first probe of a split the gateway accepted to the data plane serving it.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30},
	})
)

var allPhases = []meshv1alpha1.RolloutPhase{
	meshv1alpha1.PhaseInitializing, meshv1alpha1.PhaseHealthy, meshv1alpha1.PhaseProgressing, meshv1alpha1.PhasePaused,
	meshv1alpha1.PhaseHolding, meshv1alpha1.PhasePromoting, meshv1alpha1.PhaseRollingBack, meshv1alpha1.PhaseRolledBack, meshv1alpha1.PhaseFailed,
}

func init() {
	metrics.Registry.MustRegister(phaseGauge, weightGauge, releasesTotal, releaseSeconds, stepDecisionDelay, probeRuns, dataPlaneLag)
}

// recordMetrics updates the gauges and counts the release the decision ended (every one: a
// rollback is counted when decided, even if a newer revision follows before the route
// carries it).
func recordMetrics(after *meshv1alpha1.Rollout, d rollout.Decision) {
	if d.StepOverdue != nil {
		stepDecisionDelay.Observe(d.StepOverdue.Seconds())
	}
	ended := d.Ended
	ns, name := after.Namespace, after.Name
	// Only the phase the Rollout is in has a series: nine per Rollout were most of the
	// manager's series (and 15% of its memory) at a thousand Rollouts.
	for _, p := range allPhases {
		if p != after.Status.Phase {
			phaseGauge.DeleteLabelValues(ns, name, string(p))
		}
	}
	if after.Status.Phase != "" {
		phaseGauge.WithLabelValues(ns, name, string(after.Status.Phase)).Set(1)
	}
	weightGauge.WithLabelValues(ns, name).Set(float64(after.Status.CanaryWeight))
	if ended == nil {
		return
	}
	outcome := map[meshv1alpha1.ReleaseOutcome]string{
		meshv1alpha1.OutcomePromoted: "promoted", meshv1alpha1.OutcomeRolledBack: "rolled_back", meshv1alpha1.OutcomeSuperseded: "superseded",
	}[ended.Outcome]
	releasesTotal.WithLabelValues(ns, name, outcome, ended.AbortReason).Inc()
	if start := ended.StartTime; start != nil {
		releaseSeconds.WithLabelValues(outcome).Observe(ended.EndTime.Sub(start.Time).Seconds())
	}
}

// forgetMetrics drops a deleted Rollout's series.
func forgetMetrics(ro *meshv1alpha1.Rollout) {
	for _, p := range allPhases {
		phaseGauge.DeleteLabelValues(ro.Namespace, ro.Name, string(p))
	}
	weightGauge.DeleteLabelValues(ro.Namespace, ro.Name)
	forgetAnalysisMetrics(ro)
}
