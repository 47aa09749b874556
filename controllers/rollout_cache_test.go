package controllers_test

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The manager's cache holds the Deployments Sluice reads (slots, and targets it labelled) and
// not the cluster's others; no cached object keeps managedFields. A labelled target's next
// change still starts a release: the watch sees it.
func TestCacheHoldsOnlyWhatSluiceReads(t *testing.T) {
	c := newCluster(t, "cache")
	g := &stubGates{}
	mgr := newRolloutManager(t, func(ctrl.Manager) controllers.GateChecker { return g }, c.ns)
	m := &manager{t: t, gates: g, stopFn: testenv.RunManager(mgr)}
	t.Cleanup(m.stop)
	c.target(t, "unrelated") // no Rollout targets it
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	cached := func(name string) *appsv1.Deployment {
		t.Helper()
		d := &appsv1.Deployment{}
		switch err := mgr.GetCache().Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: name}, d); {
		case apierrors.IsNotFound(err):
			return nil
		case err != nil:
			t.Fatal(err)
		}
		return d
	}
	if d := cached("unrelated"); d != nil {
		t.Errorf("the unrelated Deployment is in the manager's cache (labels %v)", d.Labels)
	}
	for _, name := range []string{"checkout", "checkout-a"} {
		d := cached(name)
		if d == nil {
			t.Errorf("Deployment %s is not in the manager's cache", name)
			continue
		}
		if len(d.ManagedFields) > 0 {
			t.Errorf("Deployment %s is cached with %d managedFields entries", name, len(d.ManagedFields))
		}
	}
	if l := c.deployment(t, "checkout").Labels[rollout.LabelRollout]; l != "checkout" {
		t.Errorf("target label %s=%q, want checkout", rollout.LabelRollout, l)
	}

	c.setImage(t, "checkout", "demo:v2")
	c.waitRollout(t, "checkout", "a release of the new image", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.CanaryRevision != "" && r.Status.CanaryRevision != r.Status.StableRevision
	})
}
