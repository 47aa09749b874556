package controllers

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Metrics of the analysis, for dashboards and alerts: what the gates read, what they compare
// it with, and why a release needs a person. They follow what status says (recorded after the
// decided status is written), so they never disagree with kubectl.
var (
	gateValue = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_gate_value",
		Help: "Value each gate metric read for the canary at the last check of the release in progress (status.analysis.gates); no series without a release or a value.",
	}, []string{"namespace", "rollout", "gate", "metric"})
	gateChecks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sluice_rollout_gate_checks_total",
		Help: "Gate checks recorded in a Rollout's status, by verdict over all its gates (Pass, Fail, Inconclusive, Unreachable); every verdict starts at 0 for a Rollout with gates.",
	}, []string{"namespace", "rollout", "verdict"})
	stalledGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_rollout_stalled",
		Help: "1 while a Rollout's Stalled condition is True, with its reason (MaxHoldExceeded, InconclusiveLimitExceeded, ApplyFailed...); no series otherwise.",
	}, []string{"namespace", "rollout", "reason"})
	gateThreshold = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sluice_healthgate_threshold",
		Help: "Bounds of each HealthGate metric's thresholdRange (bound min or max); compareToStable margins are relative and not exported.",
	}, []string{"namespace", "gate", "metric", "bound"})
)

func init() {
	metrics.Registry.MustRegister(gateValue, gateChecks, stalledGauge, gateThreshold)
}

// Series kept per object, so that those that no longer apply can be deleted.
var (
	gateValueSeries, stalledSeries, thresholdSeries seriesSet
)

// recordAnalysisMetrics updates the analysis metrics from the status just written; before is
// the status it replaced. A check counts once, when its LastCheck first appears in status
// (status keeps whole seconds; checks start at least an interval, 1s or more, apart).
func recordAnalysisMetrics(before *meshv1alpha1.RolloutStatus, after *meshv1alpha1.Rollout) {
	ns, name := after.Namespace, after.Name
	key := ns + "/" + name
	st := &after.Status
	if a := after.Spec.Analysis; a != nil && len(a.HealthGates) > 0 {
		// Every verdict's series exists from the start, at 0: increase() sees the first check.
		for _, v := range verdicts {
			gateChecks.WithLabelValues(ns, name, string(v))
		}
	}
	if a := st.Analysis; a != nil && a.LastCheck != nil && a.Verdict != "" && (before.Analysis == nil || !a.LastCheck.Equal(before.Analysis.LastCheck)) {
		gateChecks.WithLabelValues(ns, name, string(a.Verdict)).Inc()
	}

	var values []series
	if a := st.Analysis; a != nil && releaseActive(st.Phase) {
		for _, g := range a.Gates {
			v, err := strconv.ParseFloat(g.Value, 64)
			if err != nil {
				continue // no value (unreachable, no data) or not a number
			}
			values = append(values, series{labels: []string{ns, name, g.Gate, g.Name}, value: v})
		}
	}
	gateValueSeries.set(gateValue, key, values)

	var stalled []series
	if c := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue {
		stalled = append(stalled, series{labels: []string{ns, name, c.Reason}, value: 1})
	}
	stalledSeries.set(stalledGauge, key, stalled)
}

var verdicts = []meshv1alpha1.Verdict{meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail, meshv1alpha1.VerdictInconclusive, meshv1alpha1.VerdictUnreachable}

// releaseActive: a release is under way (the canary may take traffic or is being taken out).
func releaseActive(p meshv1alpha1.RolloutPhase) bool {
	switch p {
	case meshv1alpha1.PhaseProgressing, meshv1alpha1.PhasePaused, meshv1alpha1.PhaseHolding, meshv1alpha1.PhasePromoting, meshv1alpha1.PhaseRollingBack:
		return true
	}
	return false
}

// forgetAnalysisMetrics drops a deleted Rollout's series.
func forgetAnalysisMetrics(ro *meshv1alpha1.Rollout) {
	key := ro.Namespace + "/" + ro.Name
	gateChecks.DeletePartialMatch(prometheus.Labels{"namespace": ro.Namespace, "rollout": ro.Name})
	gateValueSeries.set(gateValue, key, nil)
	stalledSeries.set(stalledGauge, key, nil)
}

// recordGateThresholds exports the thresholdRange bounds of a HealthGate's metrics.
func recordGateThresholds(g *meshv1alpha1.HealthGate) {
	var bounds []series
	for _, m := range g.Spec.Metrics {
		if tr := m.ThresholdRange; tr != nil {
			if tr.Min != nil {
				bounds = append(bounds, series{labels: []string{g.Namespace, g.Name, m.Name, "min"}, value: *tr.Min})
			}
			if tr.Max != nil {
				bounds = append(bounds, series{labels: []string{g.Namespace, g.Name, m.Name, "max"}, value: *tr.Max})
			}
		}
	}
	thresholdSeries.set(gateThreshold, g.Namespace+"/"+g.Name, bounds)
}

// forgetGateThresholds drops a deleted HealthGate's thresholds.
func forgetGateThresholds(key types.NamespacedName) {
	thresholdSeries.set(gateThreshold, key.String(), nil)
}

// series is one labelled value of a GaugeVec.
type series struct {
	labels []string
	value  float64
}

// seriesSet remembers, per object, the series a GaugeVec holds for it: series that no longer
// apply are deleted, and those that stay are only updated, never deleted and added again (a
// scrape in between would see a gap, and an alert's pending time would start over).
type seriesSet struct {
	mu   sync.Mutex
	last map[string][][]string // object key → label values
}

func (s *seriesSet) set(vec *prometheus.GaugeVec, key string, want []series) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := make(map[string]bool, len(want))
	labels := make([][]string, 0, len(want))
	for _, w := range want {
		vec.WithLabelValues(w.labels...).Set(w.value)
		keep[strings.Join(w.labels, "\x00")] = true
		labels = append(labels, w.labels)
	}
	for _, l := range s.last[key] {
		if !keep[strings.Join(l, "\x00")] {
			vec.DeleteLabelValues(l...)
		}
	}
	if len(labels) == 0 {
		delete(s.last, key)
		return
	}
	if s.last == nil {
		s.last = map[string][][]string{}
	}
	s.last[key] = labels
}
