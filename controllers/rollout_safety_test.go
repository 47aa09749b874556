package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// takeOverServicePort makes another field manager (a GitOps tool applying its own copy) own
// the target port of Service name, with a value Sluice does not want: Sluice's next apply of
// that Service conflicts.
func takeOverServicePort(t *testing.T, ns, name string) {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"ports": []any{map[string]any{"name": "http", "port": int64(80), "targetPort": int64(9090), "protocol": "TCP"}}},
	}}
	if err := env.Client.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("gitops"), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
}

// 3. The route moves first when traffic leaves the canary: a Service Sluice can no longer
// write (someone else took a field of it) does not hold the rollback back; the route carries
// weight 0 as fast as without the conflict, and the conflict is reported as Stalled.
func TestRouteMovesFirstWhenTrafficLeavesTheCanary(t *testing.T) {
	c := newCluster(t, "routefirst")
	g := &stubGates{}
	startManager(t, c.ns, g)
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	failAt20 := func(r *meshv1alpha1.Rollout) meshv1alpha1.Verdict {
		if r.Status.CanaryWeight >= 20 {
			return meshv1alpha1.VerdictFail
		}
		return meshv1alpha1.VerdictPass
	}
	g.set(failAt20)
	normal := c.rollbackLatency(t, "checkout", "demo:bad-1")
	c.waitRollout(t, "checkout", "RolledBack", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })

	g.set(nil) // the next release passes its checks until the Service is taken
	c.setImage(t, "checkout", "demo:bad-2")
	if err := pollFor(30*time.Second, func() bool { return c.canaryWeight("checkout", "checkout-b") == 20 }); err != nil {
		t.Fatal("the second release never reached 20%")
	}
	takeOverServicePort(t, c.ns, "checkout-b")
	start := time.Now()
	g.set(failAt20)
	if err := wait10ms(30*time.Second, func() bool { return c.canaryWeight("checkout", "checkout-b") == 0 }); err != nil {
		t.Fatalf("the rollback never reached the route while a Service conflicted: %+v", c.rolloutNow(t, "checkout").Status.Conditions)
	}
	conflicted := time.Since(start)
	t.Logf("rollback to weight 0: %s normally, %s with the canary's Service owned by someone else (measured from the failing verdict being available)", normal.Round(time.Millisecond), conflicted.Round(time.Millisecond))
	if limit := 2*normal + 2*time.Second; conflicted > limit {
		t.Errorf("the rollback took %s with a conflicting Service, more than %s", conflicted, limit)
	}
	r := c.waitRollout(t, "checkout", "Stalled on the Service conflict", func(r *meshv1alpha1.Rollout) bool {
		return condIs(r, meshv1alpha1.ConditionStalled, "ApplyFailed")
	})
	if c := meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionStalled); !strings.Contains(c.Message, "checkout-b") {
		t.Errorf("Stalled does not name the Service: %s", c.Message)
	}
}

// 4. No traffic reaches pods that are going away: a slot loses its pods, or gets a new
// template, only once the route the gateway accepted gives it nothing. The gateway is made to
// lag (route changes stay unaccepted) at the moments that matter.
func TestNoTrafficReachesPodsThatAreGoingAway(t *testing.T) {
	c := newCluster(t, "drain")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	ro.Spec.Strategy.Canary.ScaleDownDelay = &metav1.Duration{} // 0s: the tightest case
	create(t, ro)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	replicasOf := func(name string) int32 { return ptr.Deref(c.deployment(t, name).Spec.Replicas, 1) }
	imageOf := func(name string) string { return c.deployment(t, name).Spec.Template.Spec.Containers[0].Image }

	// A newer revision mid-release: the canary slot keeps the pods the route still reaches.
	c.setImage(t, "checkout", "demo:v2")
	if err := pollFor(30*time.Second, func() bool { return c.canaryWeight("checkout", "checkout-b") == 20 }); err != nil {
		t.Fatal("never reached 20%")
	}
	c.holdRoutes(true)
	c.setImage(t, "checkout", "demo:v3")
	if err := pollFor(2*time.Second, func() bool { return imageOf("checkout-b") != "demo:v2" }); err == nil {
		t.Fatalf("the canary slot got a new template (%s) while the accepted route still sent it 20%%", imageOf("checkout-b"))
	}
	c.holdRoutes(false)
	if err := pollFor(30*time.Second, func() bool { return imageOf("checkout-b") == "demo:v3" }); err != nil {
		t.Fatalf("the canary slot never moved to v3 once the route let go: %s", imageOf("checkout-b"))
	}

	// The release is superseded (the target goes back to the stable revision) with
	// scaleDownDelay 0: the canary keeps its pods until the route without it is accepted.
	if err := pollFor(30*time.Second, func() bool { return c.canaryWeight("checkout", "checkout-b") == 20 }); err != nil {
		t.Fatal("v3 never reached 20%")
	}
	c.holdRoutes(true)
	c.setImage(t, "checkout", "demo:v1")
	c.waitRollout(t, "checkout", "the release superseded", func(r *meshv1alpha1.Rollout) bool { return r.Status.CanaryRevision == "" })
	if err := pollFor(2*time.Second, func() bool { return replicasOf("checkout-b") == 0 }); err == nil {
		t.Fatal("the canary slot was scaled down while the accepted route still sent it 20%")
	}
	c.holdRoutes(false)
	if err := pollFor(30*time.Second, func() bool { return replicasOf("checkout-b") == 0 }); err != nil {
		t.Fatalf("the canary slot kept %d replicas after the route let go", replicasOf("checkout-b"))
	}
	c.checkNoTrafficToUnreadySlots(t)
}

// 4 (and what the chaos scenario found). A release into a slot that still has pods of the
// revision it ran before: its Service's EndpointSlices lag behind their deletion (for tens of
// seconds after an API server restart) and the data plane would send the new weight to the
// old pods. Weight moves only once the slot's endpoints are all pods of the new revision.
func TestWeightMovesOnlyToTheSlotsCurrentPods(t *testing.T) {
	c := newCluster(t, "stale")
	g := &stubGates{}
	startManager(t, c.ns, g)
	c.target(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	ro.Spec.Strategy.Canary.ScaleDownDelay = &metav1.Duration{Duration: time.Minute} // the rolled-back pods stay warm
	create(t, ro)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	g.set(func(*meshv1alpha1.Rollout) meshv1alpha1.Verdict { return meshv1alpha1.VerdictFail })
	c.setImage(t, "checkout", "demo:bad")
	c.waitRollout(t, "checkout", "RolledBack", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })

	g.set(nil)
	c.lingerPods(true) // the bad pods stay published after slot b moves to v3
	c.setImage(t, "checkout", "demo:v3")
	if err := pollFor(30*time.Second, func() bool {
		d := c.deployment(t, "checkout-b")
		// (The canary runs its first weight's share: one pod of three for 20%.)
		return d.Spec.Template.Spec.Containers[0].Image == "demo:v3" && d.Status.ReadyReplicas == 1
	}); err != nil {
		t.Fatal("slot b never ran v3")
	}
	if err := pollFor(2*time.Second, func() bool { return c.canaryWeight("checkout", "checkout-b") > 0 }); err == nil {
		t.Fatal("weight moved to slot b while its Service still published the rolled-back revision's pods")
	}
	c.lingerPods(false)
	if err := pollFor(30*time.Second, func() bool { return c.canaryWeight("checkout", "checkout-b") == 20 }); err != nil {
		t.Fatalf("weight never moved once only v3's pods were published: %+v", c.rolloutNow(t, "checkout").Status.Conditions)
	}
}
