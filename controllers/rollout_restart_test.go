package controllers_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// finalState is what must be equal between an interrupted and an uninterrupted release.
type finalState struct {
	Phase                           meshv1alpha1.RolloutPhase
	StableSlot                      meshv1alpha1.Slot
	StableImage                     string
	CanaryRevision                  string
	Weights                         map[string]int32
	SlotAReplicas, SlotBReplicas    int32
	TargetReplicas                  int32
	Promoted, RolledBack, ReadyCond bool
}

// release runs one release of demo:v2 over the canary spec, with the canary slot unready for
// its first moments, and promotes at the manual gate. With restart, the manager is stopped and
// a new one started every time the phase or step changes.
func release(t *testing.T, restart bool) (finalState, int) {
	c := newCluster(t, "restart")
	g := &stubGates{}
	m := startManager(t, c.ns, g)
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	c.hold("checkout-b", true) // the canary's pods are slow to start
	c.setImage(t, "checkout", "demo:v2")

	restarts := 0
	seen, promotedAt := "", ""
	var r *meshv1alpha1.Rollout
	err := pollFor(60*time.Second, func() bool {
		r = c.rolloutNow(t, "checkout")
		boundary := fmt.Sprintf("%s/%d/%d", r.Status.Phase, ptr.Deref(r.Status.CurrentStep, -1), r.Status.CanaryWeight)
		if boundary != seen {
			seen = boundary
			if restart && r.Status.Phase != meshv1alpha1.PhaseHealthy {
				m.stop()
				m = startManager(t, c.ns, g)
				restarts++
			}
		}
		// The canary's pods become ready only after the Rollout said it waits for them.
		if condIs(r, meshv1alpha1.ConditionReconciling, "WaitingForPods") && r.Status.CanaryRevision != "" {
			c.hold("checkout-b", false)
		}
		// Promote once per arrival at the manual gate, as a person would. (Annotating on every
		// poll keeps changing the object, so every status write of the controller conflicts
		// and each consumed action is dropped: dropped, by design, rather than applied twice.)
		if r.Status.Phase == meshv1alpha1.PhasePaused && ptr.Deref(r.Status.CurrentStep, -1) == 4 && boundary != promotedAt {
			promotedAt = boundary
			annotate(t, r, meshv1alpha1.ActionPromote)
		}
		return r.Status.Phase == meshv1alpha1.PhaseHealthy && r.Status.StableSlot == meshv1alpha1.SlotB && condIs(r, meshv1alpha1.ConditionReady, "")
	})
	if err != nil {
		t.Fatalf("release did not finish: %v; status %+v", err, r.Status)
	}
	// Let the old slot's scale-down and the target's scale happen.
	_ = pollFor(10*time.Second, func() bool { return ptr.Deref(c.deployment(t, "checkout-a").Spec.Replicas, 1) == 0 })

	c.checkNoTrafficToUnreadySlots(t)
	splits := c.splits()
	a, b := c.deployment(t, "checkout-a"), c.deployment(t, "checkout-b")
	return finalState{
		Phase: r.Status.Phase, StableSlot: r.Status.StableSlot, StableImage: b.Spec.Template.Spec.Containers[0].Image,
		CanaryRevision: r.Status.CanaryRevision, Weights: splits[len(splits)-1],
		SlotAReplicas: ptr.Deref(a.Spec.Replicas, 1), SlotBReplicas: ptr.Deref(b.Spec.Replicas, 1),
		TargetReplicas: ptr.Deref(c.deployment(t, "checkout").Spec.Replicas, 1),
		Promoted:       condIs(r, meshv1alpha1.ConditionPromoted, ""), RolledBack: condIs(r, meshv1alpha1.ConditionRolledBack, ""),
		ReadyCond: condIs(r, meshv1alpha1.ConditionReady, ""),
	}, restarts
}

func TestManagerRestartAtEveryPhaseBoundaryEndsLikeAnUninterruptedRun(t *testing.T) {
	want, _ := release(t, false)
	got, restarts := release(t, true)
	if restarts < 5 {
		t.Errorf("only %d restarts: the release did not cross enough boundaries to prove anything", restarts)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("with %d restarts the release ended in\n%+v\nwithout restarts in\n%+v", restarts, got, want)
	}
	t.Logf("%d manager restarts; final state %+v", restarts, got)
}

// checkNoTrafficToUnreadySlots: every split the route carried gave weight only to slots whose
// Deployment was ready when the split was seen.
func (c *cluster) checkNoTrafficToUnreadySlots(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.timeline {
		for svc, w := range s.weights {
			dep := map[string]string{"checkout-a": "checkout-a", "checkout-b": "checkout-b"}[svc]
			if w > 0 && !s.ready[dep] {
				t.Errorf("split %d %v sends %d%% to %s whose pods were not ready", i, s.weights, w, svc)
			}
		}
	}
}
