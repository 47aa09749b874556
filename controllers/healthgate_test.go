package controllers_test

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// successRateGate is a HealthGate on the canary's success rate through Traefik's metrics.
func successRateGate(ns, prometheus string, target *meshv1alpha1.GateTarget) *meshv1alpha1.HealthGate {
	return &meshv1alpha1.HealthGate{
		ObjectMeta: metav1.ObjectMeta{Name: "success-rate", Namespace: ns},
		Spec: meshv1alpha1.HealthGateSpec{
			Prometheus: meshv1alpha1.PrometheusSource{Addresses: []string{prometheus}, Timeout: &metav1.Duration{Duration: time.Second}},
			DataPlane:  meshv1alpha1.DataPlaneTraefik,
			Metrics: []meshv1alpha1.HealthMetric{{
				Name: "success-rate", Builtin: meshv1alpha1.BuiltinRequestSuccessRate,
				ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.99)},
			}},
			Window:   &metav1.Duration{Duration: 5 * time.Second},
			Interval: &metav1.Duration{Duration: time.Second},
			Target:   target,
		},
	}
}

// startRealGates runs the Rollout and HealthGate controllers with the Prometheus evaluator.
func startRealGates(t testing.TB) {
	t.Helper()
	var ev *controllers.PrometheusEvaluator
	mgr := newRolloutManager(t, func(m ctrl.Manager) controllers.GateChecker {
		ev = &controllers.PrometheusEvaluator{Reader: m.GetAPIReader()}
		return &controllers.RolloutGates{Client: m.GetClient(), Evaluator: ev}
	})
	if err := controllers.SetupHealthGateController(mgr, ev, 1); err != nil {
		t.Fatal(err)
	}
	stop := testenv.RunManager(mgr)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

func waitGate(t *testing.T, ns, what string, cond func(*meshv1alpha1.HealthGate) bool) *meshv1alpha1.HealthGate {
	t.Helper()
	g := &meshv1alpha1.HealthGate{}
	err := pollFor(45*time.Second, func() bool {
		return env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "success-rate"}, g) == nil && cond(g)
	})
	if err != nil {
		t.Fatalf("waiting for the gate to be %s: status %+v", what, g.Status)
	}
	return g
}

// A HealthGate with a target is evaluated on its own and reports in status: Ready only while
// it passes, so other things can wait on it.
func TestHealthGateEvaluatesOnItsOwn(t *testing.T) {
	c := newCluster(t, "gate")
	exp := testenv.StartExporter(t)
	prom := testenv.StartPrometheus(t, exp.Addr())
	startRealGates(t)

	exp.Set(c.ns, "checkout", 40, 0, 10*time.Millisecond)
	create(t, successRateGate(c.ns, prom.URL(), &meshv1alpha1.GateTarget{Service: "checkout"}))
	g := waitGate(t, c.ns, "passing", func(g *meshv1alpha1.HealthGate) bool { return g.Status.Verdict == meshv1alpha1.VerdictPass })
	if !condIs2(g.Status.Conditions, meshv1alpha1.ConditionReady) || g.Status.Address != prom.URL() || len(g.Status.Metrics) != 1 || g.Status.Metrics[0].Value == "" {
		t.Errorf("passing gate status %+v", g.Status)
	}

	exp.Set(c.ns, "checkout", 40, 0.2, 10*time.Millisecond)
	g = waitGate(t, c.ns, "failing", func(g *meshv1alpha1.HealthGate) bool { return g.Status.Verdict == meshv1alpha1.VerdictFail })
	if condIs2(g.Status.Conditions, meshv1alpha1.ConditionReady) {
		t.Errorf("a failing gate is Ready: %+v", g.Status.Conditions)
	}

	prom.Stop()
	waitGate(t, c.ns, "unreachable", func(g *meshv1alpha1.HealthGate) bool { return g.Status.Verdict == meshv1alpha1.VerdictUnreachable })
}

// Prometheus stopped mid-analysis: the Rollout holds its weight (no promotion, no rollback);
// when Prometheus is back the release resumes and promotes.
func TestRolloutHoldsWhilePrometheusIsDownThenPromotes(t *testing.T) {
	c := newCluster(t, "promdown")
	exp := testenv.StartExporter(t)
	prom := testenv.StartPrometheus(t, exp.Addr())
	startRealGates(t)

	// The canary slot's pods answer well whenever they get traffic.
	exp.Set(c.ns, "checkout-b", 40, 0, 10*time.Millisecond)
	create(t, successRateGate(c.ns, prom.URL(), nil))
	c.target(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	ro.Spec.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{
		{SetWeight: ptr.To(int32(20))},
		{Analysis: &meshv1alpha1.AnalysisStep{Checks: 3}},
		{SetWeight: ptr.To(int32(60))},
		{Analysis: &meshv1alpha1.AnalysisStep{Checks: 1}},
	}
	ro.Spec.Analysis.HealthGates = []meshv1alpha1.LocalObjectReference{{Name: "success-rate"}}
	ro.Spec.Analysis.MaxHold = &metav1.Duration{Duration: time.Minute}
	create(t, ro)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	c.setImage(t, "checkout", "demo:v2")
	c.waitRollout(t, "checkout", "a passing check at 20%", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.CanaryWeight == 20 && r.Status.Analysis != nil && r.Status.Analysis.Passed >= 1
	})
	prom.Stop()
	r := c.waitRollout(t, "checkout", "Holding", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseHolding })
	if r.Status.CanaryWeight != 20 || r.Status.Analysis.Failed != 0 || r.Status.StableSlot != meshv1alpha1.SlotA {
		t.Errorf("while Prometheus is down: weight %d failed %d stable %s", r.Status.CanaryWeight, r.Status.Analysis.Failed, r.Status.StableSlot)
	}
	if r.Status.Analysis.Verdict != meshv1alpha1.VerdictUnreachable {
		t.Errorf("last verdict %s, want Unreachable", r.Status.Analysis.Verdict)
	}

	prom.Start()
	r = c.healthyOn(t, "checkout", meshv1alpha1.SlotB)
	if r.Status.Analysis != nil {
		t.Logf("analysis at promotion: %+v", r.Status.Analysis)
	}
	for _, s := range c.splits() {
		if s["checkout-b"] > 20 && s["checkout-b"] < 60 {
			t.Errorf("unexpected split %v", s)
		}
	}
	if !condIs(r, meshv1alpha1.ConditionPromoted, "Promoted") || r.Status.AbortReason != "" {
		t.Errorf("not promoted cleanly: %+v abort %q", r.Status.Conditions, r.Status.AbortReason)
	}
}

func condIs2(conds []metav1.Condition, typ string) bool {
	c := meta.FindStatusCondition(conds, typ)
	return c != nil && c.Status == metav1.ConditionTrue
}
