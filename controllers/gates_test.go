package controllers

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/gates"
	"github.com/sluice-mesh/sluice/internal/scheme"
)

type countingEvaluator struct{ calls int }

func (e *countingEvaluator) Evaluate(context.Context, *meshv1alpha1.HealthGate, gates.Target) gates.Result {
	e.calls++
	return gates.Result{Verdict: meshv1alpha1.VerdictFail, Message: "bad"}
}

// A gate whose window reaches back before the release is not evaluated: that part of the
// window holds the previous release's requests to the same slot.
func TestRolloutGatesWaitForAWindowOfThisRelease(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	gate := &meshv1alpha1.HealthGate{ObjectMeta: metav1.ObjectMeta{Name: "g", Namespace: "shop"},
		Spec: meshv1alpha1.HealthGateSpec{Window: &metav1.Duration{Duration: 30 * time.Second}}}
	c := fake.NewClientBuilder().WithScheme(scheme.New()).WithObjects(gate).Build()
	ev := &countingEvaluator{}
	rg := &RolloutGates{Client: c, Evaluator: ev, Now: func() time.Time { return now }}
	r := &meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "shop"}, Spec: meshv1alpha1.RolloutSpec{
		Analysis: &meshv1alpha1.RolloutAnalysis{HealthGates: []meshv1alpha1.LocalObjectReference{{Name: "g"}}}}}

	start := metav1.NewTime(now.Add(-10 * time.Second))
	r.Status.ReleaseStartTime = &start
	if got := rg.Check(context.Background(), r); got.Verdict != meshv1alpha1.VerdictInconclusive || ev.calls != 0 || !strings.Contains(got.Message, "before this release") {
		t.Errorf("10s into the release with a 30s window: %+v after %d evaluations", got, ev.calls)
	}
	start = metav1.NewTime(now.Add(-31 * time.Second))
	r.Status.ReleaseStartTime = &start
	if got := rg.Check(context.Background(), r); got.Verdict != meshv1alpha1.VerdictFail || ev.calls != 1 {
		t.Errorf("31s into the release: %+v after %d evaluations", got, ev.calls)
	}
}
