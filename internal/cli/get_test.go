package cli_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

var (
	revV1 = "6f5d8c7b9a"
	revV2 = "7a1b2c3d4e"
)

func successRateGate(f *fixture) {
	f.gate("success-rate",
		meshv1alpha1.HealthMetric{Name: "success-rate", Builtin: meshv1alpha1.BuiltinRequestSuccessRate, ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.99)}},
		meshv1alpha1.HealthMetric{Name: "no-worse-than-stable", Builtin: meshv1alpha1.BuiltinRequestSuccessRate, CompareToStable: &meshv1alpha1.CompareToStable{MaxDegradation: 0.01}})
	f.gate("p99-latency",
		meshv1alpha1.HealthMetric{Name: "p99", Builtin: meshv1alpha1.BuiltinRequestDurationP99, ThresholdRange: &meshv1alpha1.ThresholdRange{Max: ptr.To(0.5)}})
}

// TestGetCanaryUnderAnalysis: a canary at its analysis step, one gate metric failing, the
// route carrying the step's weight, one canary pod not ready.
func TestGetCanaryUnderAnalysis(t *testing.T) {
	f := newFixture(t, "get-canary")
	f.target("checkout", "example.com/checkout:v2")
	successRateGate(f)
	f.slot("checkout", meshv1alpha1.SlotA, revV1, "example.com/checkout:v1", 2, 2, pod{suffix: "5d7f9-abcde", ready: true}, pod{suffix: "5d7f9-fghij", ready: true})
	f.slot("checkout", meshv1alpha1.SlotB, revV2, "example.com/checkout:v2", 2, 1, pod{suffix: "6c8e1-klmno", ready: true}, pod{suffix: "6c8e1-pqrst", restarts: 3})
	f.route("checkout", "sluice-split", true, backend{"checkout-a", 95}, backend{"checkout-b", 5})
	waiting := "step 3/7: 1 of 3 passing checks at 5%"
	f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named("checkout"), Spec: canarySpec("checkout", "success-rate", "p99-latency")}, &meshv1alpha1.RolloutStatus{
		Phase: meshv1alpha1.PhaseProgressing, StableSlot: meshv1alpha1.SlotA, StableRevision: revV1, CanaryRevision: revV2,
		CurrentStep: ptr.To(int32(2)), CanaryWeight: 5, Replicas: 2, ReleaseStartTime: at(-10 * time.Minute), StepStartTime: at(-2 * time.Minute),
		Autoscaler: "checkout",
		Slots: []meshv1alpha1.SlotStatus{
			{Slot: meshv1alpha1.SlotA, Revision: revV1, Replicas: 2, ReadyReplicas: 2, Config: []meshv1alpha1.ConfigCopy{{Kind: "ConfigMap", Name: "checkout-config", Copy: "checkout-config-3f9c0a1b2d"}}},
			{Slot: meshv1alpha1.SlotB, Revision: revV2, Replicas: 2, ReadyReplicas: 1, Config: []meshv1alpha1.ConfigCopy{{Kind: "ConfigMap", Name: "checkout-config", Copy: "checkout-config-0c1d2e3f4a"}}},
		},
		Analysis: &meshv1alpha1.AnalysisStatus{Passed: 4, Failed: 1, Inconclusive: 1, StepPassed: 1, Verdict: meshv1alpha1.VerdictFail, LastCheck: at(-20 * time.Second),
			Gates: []meshv1alpha1.GateMetricVerdict{
				{Gate: "success-rate", MetricVerdict: meshv1alpha1.MetricVerdict{Name: "success-rate", Verdict: meshv1alpha1.VerdictPass, Value: "0.997"}},
				{Gate: "success-rate", MetricVerdict: meshv1alpha1.MetricVerdict{Name: "no-worse-than-stable", Verdict: meshv1alpha1.VerdictPass, Value: "0.002"}},
				{Gate: "p99-latency", MetricVerdict: meshv1alpha1.MetricVerdict{Name: "p99", Verdict: meshv1alpha1.VerdictFail, Value: "0.81", Message: "0.81 is above the maximum 0.5"}},
			}},
		LastAction: &meshv1alpha1.ActionRecord{Action: meshv1alpha1.ActionPromote, Time: *at(-3 * time.Minute), ID: "0a1b2c3d4e5f6071"},
		History:    []meshv1alpha1.ReleaseRecord{{Revision: revV1, Outcome: meshv1alpha1.OutcomePromoted, EndTime: *at(-2 * time.Hour)}},
		Conditions: []metav1.Condition{
			cond(meshv1alpha1.ConditionReady, false, "Progressing", waiting),
			cond(meshv1alpha1.ConditionReconciling, true, "Progressing", waiting),
			cond(meshv1alpha1.ConditionTrafficApplied, true, "Applied", "the route carries a=95% b=5%"),
		},
	})
	r := run(t, "get", "rollout", "checkout", "-n", "get-canary")
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr: %s", r.code, r.stderr)
	}
	golden(t, "get-canary", r.stdout)
}

// TestGetHoldingWithPendingAction: Prometheus unreachable holds the weights; the route's
// parent has not processed its generation; an abort waits for the manager.
func TestGetHoldingWithPendingAction(t *testing.T) {
	f := newFixture(t, "get-holding")
	f.target("checkout", "example.com/checkout:v2")
	successRateGate(f)
	f.slot("checkout", meshv1alpha1.SlotB, revV1, "example.com/checkout:v1", 3, 3, pod{suffix: "1", ready: true})
	f.slot("checkout", meshv1alpha1.SlotA, revV2, "example.com/checkout:v2", 3, 3, pod{suffix: "2", ready: true}, pod{suffix: "3", ready: true, revision: revV1})
	f.route("checkout", "sluice-split", false, backend{"checkout-a", 25}, backend{"checkout-b", 75})
	msg := "Prometheus unreachable since 2026-03-01T11:56:00Z: weights held at 25%"
	f.rollout(&meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Annotations: map[string]string{meshv1alpha1.ActionAnnotation: "abort"}},
		Spec: canarySpec("checkout", "success-rate", "p99-latency")}, &meshv1alpha1.RolloutStatus{
		Phase: meshv1alpha1.PhaseHolding, StableSlot: meshv1alpha1.SlotB, StableRevision: revV1, CanaryRevision: revV2,
		CurrentStep: ptr.To(int32(4)), CanaryWeight: 25, Replicas: 3, StepStartTime: at(-5 * time.Minute), HoldStartTime: at(-4 * time.Minute),
		Analysis: &meshv1alpha1.AnalysisStatus{Passed: 6, Unreachable: 3, StepPassed: 1, Verdict: meshv1alpha1.VerdictUnreachable, LastCheck: at(-30 * time.Second),
			Gates: []meshv1alpha1.GateMetricVerdict{
				{Gate: "success-rate", MetricVerdict: meshv1alpha1.MetricVerdict{Name: "success-rate", Verdict: meshv1alpha1.VerdictUnreachable, Message: "dial tcp 10.96.0.12:9090: connect: connection refused"}},
			}},
		Conditions: []metav1.Condition{
			cond(meshv1alpha1.ConditionReady, false, "PrometheusUnreachable", msg),
			cond(meshv1alpha1.ConditionReconciling, true, "PrometheusUnreachable", msg),
		},
	})
	r := run(t, "get", "rollout", "checkout", "-n", "get-holding")
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr: %s", r.code, r.stderr)
	}
	golden(t, "get-holding", r.stdout)
}

// TestGetRolledBack: a release rolled back by its gates; the canary slot scales down soon.
func TestGetRolledBack(t *testing.T) {
	f := newFixture(t, "get-rolledback")
	f.target("checkout", "example.com/checkout:v2")
	successRateGate(f)
	f.slot("checkout", meshv1alpha1.SlotA, revV1, "example.com/checkout:v1", 2, 2, pod{suffix: "1", ready: true}, pod{suffix: "2", ready: true})
	f.slot("checkout", meshv1alpha1.SlotB, revV2, "example.com/checkout:v2", 2, 2, pod{suffix: "3", ready: true}, pod{suffix: "4", ready: true})
	f.route("checkout", "sluice-split", true, backend{"checkout-a", 100}, backend{"checkout-b", 0})
	why := "3 failed checks (limit 2): p99-latency/p99: 0.81 is above the maximum 0.5"
	f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named("checkout"), Spec: canarySpec("checkout", "success-rate", "p99-latency")}, &meshv1alpha1.RolloutStatus{
		Phase: meshv1alpha1.PhaseRolledBack, StableSlot: meshv1alpha1.SlotA, StableRevision: revV1, CanaryRevision: revV2,
		Replicas: 2, ScaleDownTime: at(25 * time.Second), AbortReason: "HealthGateFailed",
		Analysis: &meshv1alpha1.AnalysisStatus{Passed: 2, Failed: 3, Verdict: meshv1alpha1.VerdictFail, LastCheck: at(-40 * time.Second)},
		History: []meshv1alpha1.ReleaseRecord{
			{Revision: revV2, Outcome: meshv1alpha1.OutcomeRolledBack, AbortReason: "HealthGateFailed", Message: why, EndTime: *at(-5 * time.Second)},
			{Revision: revV1, Outcome: meshv1alpha1.OutcomePromoted, EndTime: *at(-26 * time.Hour)},
		},
		Conditions: []metav1.Condition{
			cond(meshv1alpha1.ConditionReady, false, "RolledBack", "revision "+revV2+" was rolled back (HealthGateFailed); change the target or use the retry action"),
			cond(meshv1alpha1.ConditionStalled, true, "RolledBack", "revision "+revV2+" was rolled back (HealthGateFailed); change the target or use the retry action"),
			cond(meshv1alpha1.ConditionRolledBack, true, "HealthGateFailed", why),
		},
	})
	r := run(t, "get", "rollout", "checkout", "-n", "get-rolledback")
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr: %s", r.code, r.stderr)
	}
	golden(t, "get-rolledback", r.stdout)
}

// TestGetBlueGreenPaused: a blue-green preview paused by the pause action, driving an existing
// route; a resume was accepted by the manager and is being applied.
func TestGetBlueGreenPaused(t *testing.T) {
	f := newFixture(t, "get-bluegreen")
	f.target("storefront", "example.com/storefront:v2")
	successRateGate(f)
	f.slot("storefront", meshv1alpha1.SlotA, revV1, "example.com/storefront:v1", 1, 1, pod{suffix: "1", ready: true})
	f.slot("storefront", meshv1alpha1.SlotB, revV2, "example.com/storefront:v2", 1, 1, pod{suffix: "2", ready: true})
	f.route("shop", "", true, backend{"storefront-a", 100}, backend{"storefront-b", 0})
	spec := canarySpec("storefront", "success-rate")
	spec.Strategy = meshv1alpha1.RolloutStrategy{BlueGreen: &meshv1alpha1.BlueGreenStrategy{PreviewService: "storefront-preview", PrePromotionChecks: ptr.To(int32(3))}}
	spec.TrafficRouting.GatewayAPI = meshv1alpha1.GatewayAPIRouting{HTTPRouteRef: &meshv1alpha1.LocalObjectReference{Name: "shop"}}
	msg := "paused (pause action): weights frozen at 0% on the canary"
	f.rollout(&meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "storefront", Annotations: map[string]string{meshv1alpha1.AcceptedActionAnnotation: "resume/9f8e7d6c5b4a3921"}}, Spec: spec},
		&meshv1alpha1.RolloutStatus{
			Phase: meshv1alpha1.PhasePaused, StableSlot: meshv1alpha1.SlotA, StableRevision: revV1, CanaryRevision: revV2, Replicas: 1,
			ManualPause: true, StepStartTime: at(-time.Minute),
			Analysis:   &meshv1alpha1.AnalysisStatus{Passed: 2, StepPassed: 2, Verdict: meshv1alpha1.VerdictPass, LastCheck: at(-45 * time.Second)},
			LastAction: &meshv1alpha1.ActionRecord{Action: meshv1alpha1.ActionPause, Time: *at(-50 * time.Second), ID: "1122334455667788"},
			Conditions: []metav1.Condition{
				cond(meshv1alpha1.ConditionReady, false, "Paused", msg),
				cond(meshv1alpha1.ConditionReconciling, true, "Paused", msg),
			},
		})
	r := run(t, "get", "sro", "storefront", "-n", "get-bluegreen")
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr: %s", r.code, r.stderr)
	}
	golden(t, "get-bluegreen", r.stdout)
}

// TestGetRolloutsOfNamespace: every Rollout of a namespace, one steady and one the manager has
// not seen yet (no status, no route).
func TestGetRolloutsOfNamespace(t *testing.T) {
	f := newFixture(t, "get-list")
	f.target("catalog", "example.com/catalog:v3")
	f.target("search", "example.com/search:v1")
	f.slot("catalog", meshv1alpha1.SlotB, revV1, "example.com/catalog:v3", 2, 2, pod{suffix: "1", ready: true}, pod{suffix: "2", ready: true})
	f.route("catalog", "sluice-split", true, backend{"catalog-a", 0}, backend{"catalog-b", 100})
	ready := "revision " + revV1 + " serves all traffic from slot b"
	f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named("catalog"), Spec: canarySpec("catalog")}, &meshv1alpha1.RolloutStatus{
		Phase: meshv1alpha1.PhaseHealthy, StableSlot: meshv1alpha1.SlotB, StableRevision: revV1, Replicas: 2,
		LastAction: &meshv1alpha1.ActionRecord{Action: meshv1alpha1.ActionPromote, Time: *at(-26 * time.Hour), ID: "aa"},
		History:    []meshv1alpha1.ReleaseRecord{{Revision: revV1, Outcome: meshv1alpha1.OutcomePromoted, EndTime: *at(-26 * time.Hour)}},
		Conditions: []metav1.Condition{cond(meshv1alpha1.ConditionReady, true, "Healthy", ready), cond(meshv1alpha1.ConditionPromoted, true, "Promoted", "revision "+revV1+" promoted in slot b")},
	})
	f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named("search"), Spec: canarySpec("search")}, nil)
	r := run(t, "get", "rollouts", "-n", "get-list")
	if r.code != 0 {
		t.Fatalf("exit code %d, stderr: %s", r.code, r.stderr)
	}
	golden(t, "get-list", r.stdout)

	if r := run(t, "get", "rollout", "missing", "-n", "get-list"); r.code != 1 || r.stderr != "Error: Rollout get-list/missing not found\n" {
		t.Errorf("a missing Rollout: exit code %d, stderr %q; want 1 and the Rollout named", r.code, r.stderr)
	}
	if r := run(t, "get", "pods", "-n", "get-list"); r.code != 1 {
		t.Errorf("get pods: exit code %d, want 1 (only rollouts)", r.code)
	}
}
