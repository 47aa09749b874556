package controllers_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// canaryRollout: 20% → 2 passing checks → 60% → 1s pause → wait for promote.
func canaryRollout(ns, name string) *meshv1alpha1.Rollout {
	return &meshv1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: meshv1alpha1.RolloutSpec{
			TargetRef: meshv1alpha1.TargetReference{Name: name},
			Service:   meshv1alpha1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromString("http"))},
			TrafficRouting: meshv1alpha1.TrafficRouting{GatewayAPI: meshv1alpha1.GatewayAPIRouting{
				ParentRefs: []meshv1alpha1.ParentReference{{Name: "edge", Namespace: "gateways"}},
				Hostnames:  []meshv1alpha1.Hostname{"shop.example.com"},
			}},
			Strategy: meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{
				Steps: []meshv1alpha1.CanaryStep{
					{SetWeight: ptr.To(int32(20))},
					{Analysis: &meshv1alpha1.AnalysisStep{Checks: 2}},
					{SetWeight: ptr.To(int32(60))},
					{Pause: &meshv1alpha1.PauseStep{Duration: &metav1.Duration{Duration: time.Second}}},
					{Pause: &meshv1alpha1.PauseStep{}},
				},
				ScaleDownDelay: &metav1.Duration{Duration: 2 * time.Second},
			}},
			Analysis: &meshv1alpha1.RolloutAnalysis{
				Interval: &metav1.Duration{Duration: time.Second}, FailureLimit: ptr.To(int32(0)),
				HealthGates: []meshv1alpha1.LocalObjectReference{{Name: "stub"}},
			},
		},
	}
}

func create(t testing.TB, obj client.Object) {
	t.Helper()
	if err := env.Client.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
}

func annotate(t testing.TB, r *meshv1alpha1.Rollout, action meshv1alpha1.RolloutAction) {
	t.Helper()
	patch := client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, meshv1alpha1.ActionAnnotation, action)))
	if err := env.Client.Patch(context.Background(), r, patch); err != nil {
		t.Fatal(err)
	}
}

// healthyOn waits until the Rollout is Healthy and Ready with its stable slot at slot.
func (c *cluster) healthyOn(t testing.TB, name string, slot meshv1alpha1.Slot) *meshv1alpha1.Rollout {
	t.Helper()
	return c.waitRollout(t, name, "Healthy on slot "+string(slot), func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhaseHealthy && r.Status.StableSlot == slot && condIs(r, meshv1alpha1.ConditionReady, "") && r.Status.ObservedGeneration == r.Generation
	})
}

func TestCanaryWalksEveryStepToPromotionKeepingTheAnalyzedPods(t *testing.T) {
	c := newCluster(t, "canary")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))

	r := c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	if err := pollFor(10*time.Second, func() bool { return ptr.Deref(c.deployment(t, "checkout").Spec.Replicas, 1) == 0 }); err != nil {
		t.Errorf("target not scaled to zero: %v", err)
	}
	if a := c.deployment(t, "checkout-a"); *a.Spec.Replicas != 3 || a.Spec.Template.Spec.Containers[0].Image != "demo:v1" {
		t.Errorf("slot a: %d replicas of %s", *a.Spec.Replicas, a.Spec.Template.Spec.Containers[0].Image)
	}
	v1 := r.Status.StableRevision

	c.setImage(t, "checkout", "demo:v2")
	r = c.waitRollout(t, "checkout", "the manual gate at 60%", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhasePaused && ptr.Deref(r.Status.CurrentStep, -1) == 4 && r.Status.CanaryWeight == 60
	})
	v2 := r.Status.CanaryRevision
	if v2 == "" || v2 == v1 {
		t.Fatalf("canary revision %q (stable %q)", v2, v1)
	}
	if r.Status.Analysis == nil || r.Status.Analysis.Passed < 2 {
		t.Errorf("analysis %+v: the analysis step needs 2 passing checks", r.Status.Analysis)
	}
	canaryPods := c.deployment(t, "checkout-b")

	annotate(t, r, meshv1alpha1.ActionPromote)
	r = c.healthyOn(t, "checkout", meshv1alpha1.SlotB)
	if r.Status.StableRevision != v2 || r.Status.CanaryRevision != "" || !condIs(r, meshv1alpha1.ConditionPromoted, "Promoted") {
		t.Errorf("after promotion: stable %q canary %q conditions %+v", r.Status.StableRevision, r.Status.CanaryRevision, r.Status.Conditions)
	}
	if r.Status.LastAction == nil || r.Status.LastAction.Action != meshv1alpha1.ActionPromote {
		t.Errorf("lastAction %+v", r.Status.LastAction)
	}
	if _, ok := r.Annotations[meshv1alpha1.ActionAnnotation]; ok {
		t.Error("the action annotation was not removed")
	}

	// The pods that passed analysis now serve everything: same Deployment, same template.
	stablePods := c.deployment(t, "checkout-b")
	if stablePods.UID != canaryPods.UID || !reflect.DeepEqual(stablePods.Spec.Template, canaryPods.Spec.Template) ||
		stablePods.Annotations[rollout.AnnotationRevision] != v2 {
		t.Errorf("promotion changed the analyzed slot: uid %s→%s, template equal %v", canaryPods.UID, stablePods.UID, reflect.DeepEqual(stablePods.Spec.Template, canaryPods.Spec.Template))
	}

	want := []map[string]int32{
		{"checkout-a": 100, "checkout-b": 0},
		{"checkout-a": 80, "checkout-b": 20},
		{"checkout-a": 40, "checkout-b": 60},
		{"checkout-a": 0, "checkout-b": 100},
	}
	if got := c.splits(); !reflect.DeepEqual(got, want) {
		t.Errorf("the route went through %v, want %v", got, want)
	}

	// The old slot scales down after scaleDownDelay.
	err := pollFor(10*time.Second, func() bool { return ptr.Deref(c.deployment(t, "checkout-a").Spec.Replicas, 1) == 0 })
	if err != nil {
		t.Errorf("slot a not scaled down after scaleDownDelay: %v", err)
	}
}
