package controllers

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// vecSeries lists the label values of every series a vec holds for one namespace (tests use
// their own namespace, the vecs are global).
func vecSeries(t *testing.T, c prometheus.Collector, ns string) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.Metric {
			key, inNS := "", false
			for _, l := range m.Label {
				if l.GetName() == "namespace" {
					inNS = l.GetValue() == ns
					continue
				}
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			if !inNS {
				continue
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[key] = v
		}
	}
	return out
}

func TestAnalysisMetrics(t *testing.T) {
	const ns = "analysis-metrics"
	at := func(sec int) *metav1.Time {
		return &metav1.Time{Time: time.Date(2026, 11, 21, 12, 0, sec, 0, time.UTC)}
	}
	ro := func(phase meshv1alpha1.RolloutPhase, a *meshv1alpha1.AnalysisStatus, conds ...metav1.Condition) *meshv1alpha1.Rollout {
		return &meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "checkout"},
			Spec:   meshv1alpha1.RolloutSpec{Analysis: &meshv1alpha1.RolloutAnalysis{HealthGates: []meshv1alpha1.LocalObjectReference{{Name: "success-rate"}}}},
			Status: meshv1alpha1.RolloutStatus{Phase: phase, Analysis: a, Conditions: conds}}
	}
	gates := func(vals ...string) []meshv1alpha1.GateMetricVerdict {
		var out []meshv1alpha1.GateMetricVerdict
		for i, v := range vals {
			out = append(out, meshv1alpha1.GateMetricVerdict{Gate: "success-rate", MetricVerdict: meshv1alpha1.MetricVerdict{Name: []string{"rate", "p99"}[i], Value: v}})
		}
		return out
	}
	stalled := func(reason string) metav1.Condition {
		return metav1.Condition{Type: meshv1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: reason}
	}

	// A passing check at 12:00:01, then the same status written again (no new check).
	none := &meshv1alpha1.RolloutStatus{}
	first := ro(meshv1alpha1.PhaseProgressing, &meshv1alpha1.AnalysisStatus{Verdict: meshv1alpha1.VerdictPass, LastCheck: at(1), Gates: gates("0.995", "0.21")})
	recordAnalysisMetrics(none, first)
	recordAnalysisMetrics(&first.Status, first)
	want := map[string]float64{"rollout=checkout verdict=Pass ": 1, "rollout=checkout verdict=Fail ": 0, "rollout=checkout verdict=Inconclusive ": 0, "rollout=checkout verdict=Unreachable ": 0}
	if got := vecSeries(t, gateChecks, ns); !equalMaps(got, want) {
		t.Errorf("checks after one check written twice: %v, want %v", got, want)
	}
	if got := vecSeries(t, gateValue, ns); len(got) != 2 || got["gate=success-rate metric=rate rollout=checkout "] != 0.995 || got["gate=success-rate metric=p99 rollout=checkout "] != 0.21 {
		t.Errorf("gate values %v", got)
	}

	// An unreachable check: no values, the metric without a value loses its series; the
	// Rollout holds, then stalls past maxHold.
	holding := ro(meshv1alpha1.PhaseHolding, &meshv1alpha1.AnalysisStatus{Verdict: meshv1alpha1.VerdictUnreachable, LastCheck: at(2), Gates: gates("0.99", "")})
	recordAnalysisMetrics(&first.Status, holding)
	stuck := ro(meshv1alpha1.PhaseHolding, &meshv1alpha1.AnalysisStatus{Verdict: meshv1alpha1.VerdictUnreachable, LastCheck: at(3), Gates: gates("NaN", "")},
		stalled("MaxHoldExceeded"))
	recordAnalysisMetrics(&holding.Status, stuck)
	if got := vecSeries(t, gateChecks, ns); got["rollout=checkout verdict=Unreachable "] != 2 {
		t.Errorf("checks %v, want 2 Unreachable", got)
	}
	if got := vecSeries(t, gateValue, ns); len(got) != 1 || !math.IsNaN(got["gate=success-rate metric=rate rollout=checkout "]) {
		t.Errorf("gate values while unreachable %v, want only rate=NaN", got)
	}
	if got := vecSeries(t, stalledGauge, ns); len(got) != 1 || got["reason=MaxHoldExceeded rollout=checkout "] != 1 {
		t.Errorf("stalled %v", got)
	}

	// Another reason replaces the first; promotion ends the release: no values, not stalled.
	other := ro(meshv1alpha1.PhaseHolding, stuck.Status.Analysis, stalled("InconclusiveLimitExceeded"))
	recordAnalysisMetrics(&stuck.Status, other)
	if got := vecSeries(t, stalledGauge, ns); len(got) != 1 || got["reason=InconclusiveLimitExceeded rollout=checkout "] != 1 {
		t.Errorf("stalled after the reason changed %v", got)
	}
	done := ro(meshv1alpha1.PhaseHealthy, other.Status.Analysis)
	recordAnalysisMetrics(&other.Status, done)
	if got := vecSeries(t, gateValue, ns); len(got) != 0 {
		t.Errorf("gate values without a release %v", got)
	}
	if got := vecSeries(t, stalledGauge, ns); len(got) != 0 {
		t.Errorf("stalled once the condition is gone %v", got)
	}

	// A deleted Rollout drops its series.
	recordAnalysisMetrics(&done.Status, stuck)
	forgetMetrics(stuck)
	if v, s, c := vecSeries(t, gateValue, ns), vecSeries(t, stalledGauge, ns), vecSeries(t, gateChecks, ns); len(v)+len(s)+len(c) != 0 {
		t.Errorf("after delete: values %v stalled %v checks %v", v, s, c)
	}

	// A Rollout without gates has no check series.
	plain := ro(meshv1alpha1.PhaseHealthy, nil)
	plain.Spec.Analysis = nil
	recordAnalysisMetrics(none, plain)
	if got := vecSeries(t, gateChecks, ns); len(got) != 0 {
		t.Errorf("checks of a Rollout without gates: %v", got)
	}
}

func TestGateThresholdMetrics(t *testing.T) {
	const ns = "threshold-metrics"
	g := &meshv1alpha1.HealthGate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "latency"}, Spec: meshv1alpha1.HealthGateSpec{Metrics: []meshv1alpha1.HealthMetric{
		{Name: "rate", ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.99)}},
		{Name: "p99", ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.0), Max: ptr.To(0.5)}},
		{Name: "relative", CompareToStable: &meshv1alpha1.CompareToStable{MaxDegradation: 0.1}},
	}}}
	recordGateThresholds(g)
	want := map[string]float64{"bound=min gate=latency metric=rate ": 0.99, "bound=min gate=latency metric=p99 ": 0, "bound=max gate=latency metric=p99 ": 0.5}
	if got := vecSeries(t, gateThreshold, ns); !equalMaps(got, want) {
		t.Errorf("thresholds %v, want %v", got, want)
	}
	g.Spec.Metrics = g.Spec.Metrics[1:2]
	g.Spec.Metrics[0].ThresholdRange.Min = nil
	recordGateThresholds(g)
	want = map[string]float64{"bound=max gate=latency metric=p99 ": 0.5}
	if got := vecSeries(t, gateThreshold, ns); !equalMaps(got, want) {
		t.Errorf("thresholds after the spec changed %v, want %v", got, want)
	}
	forgetGateThresholds(types.NamespacedName{Namespace: ns, Name: "latency"})
	if got := vecSeries(t, gateThreshold, ns); len(got) != 0 {
		t.Errorf("thresholds of a deleted gate %v", got)
	}
}

func equalMaps(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
