package controllers_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The manager's cache holds the Deployments and Services Sluice reads (slots, Services it
// made, targets it labelled) and not the cluster's others; no cached object keeps managedFields. A labelled target's next
// change still starts a release: the watch sees it.
func TestCacheHoldsOnlyWhatSluiceReads(t *testing.T) {
	c := newCluster(t, "cache")
	g := &stubGates{}
	mgr := newRolloutManager(t, func(ctrl.Manager) controllers.GateChecker { return g }, c.ns)
	m := &manager{t: t, gates: g, stopFn: testenv.RunManager(mgr)}
	t.Cleanup(m.stop)
	c.target(t, "unrelated") // no Rollout targets it
	unrelated := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: c.ns}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "unrelated"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}}
	create(t, unrelated)
	c.target(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	create(t, ro)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	// cached says whether the manager's cache holds the object, and that without managedFields.
	cached := func(o client.Object) bool {
		t.Helper()
		switch err := mgr.GetCache().Get(context.Background(), client.ObjectKeyFromObject(o), o); {
		case apierrors.IsNotFound(err):
			return false
		case err != nil:
			t.Fatal(err)
		}
		if n := len(o.GetManagedFields()); n > 0 {
			t.Errorf("%T %s is cached with %d managedFields entries", o, o.GetName(), n)
		}
		return true
	}
	deployment := func(name string) client.Object {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: name}}
	}
	service := func(name string) client.Object {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: name}}
	}
	for _, o := range []client.Object{deployment("unrelated"), service("unrelated")} {
		if cached(o) {
			t.Errorf("the unrelated %T is in the manager's cache (labels %v)", o, o.GetLabels())
		}
	}
	for _, o := range []client.Object{deployment("checkout"), deployment("checkout-a"), service(ro.GetServiceName()),
		service(ro.GetSlotServiceName(meshv1alpha1.SlotA)), service(ro.GetSlotServiceName(meshv1alpha1.SlotB))} {
		if !cached(o) {
			t.Errorf("%T %s is not in the manager's cache", o, o.GetName())
		}
	}
	var pods corev1.PodList
	if err := mgr.GetCache().List(context.Background(), &pods, client.InNamespace(c.ns)); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) == 0 {
		t.Error("no slot pods in the manager's cache")
	}
	for _, p := range pods.Items {
		if len(p.Spec.Containers) > 0 || p.Status.Phase != "" || len(p.ManagedFields) > 0 {
			t.Errorf("pod %s cached with more than its metadata", p.Name)
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

// A target that can't be labelled (a policy engine refuses the patch) must not stop the
// Rollout: it works from uncached reads and notices the target's changes on a timer.
func TestTargetThatCantBeLabelled(t *testing.T) {
	c := newCluster(t, "nolabel")
	g := &stubGates{}
	refuse := func(cl client.Client) client.Client {
		return interceptor.NewClient(noWatch{cl}, interceptor.Funcs{
			Patch: func(ctx context.Context, cl client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				if data, _ := patch.Data(obj); strings.Contains(string(data), `"`+rollout.LabelRollout+`"`) {
					return apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, obj.GetName(), errors.New("labels are locked"))
				}
				return cl.Patch(ctx, obj, patch, opts...)
			},
		})
	}
	mgr := newRolloutManagerWith(t, managerSetup{wrap: refuse}, func(ctrl.Manager) controllers.GateChecker { return g }, c.ns)
	m := &manager{t: t, gates: g, stopFn: testenv.RunManager(mgr)}
	t.Cleanup(m.stop)
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	if _, ok := c.deployment(t, "checkout").Labels[rollout.LabelRollout]; ok {
		t.Fatal("the target was labelled although the patch is refused")
	}
	c.setImage(t, "checkout", "demo:v2")
	c.waitRollout(t, "checkout", "a release of the new image (noticed on the 15 s timer)", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.CanaryRevision != "" && r.Status.CanaryRevision != r.Status.StableRevision
	})
}

// A Rollout read from the cache is decided on only when it is the version the manager last
// saw: a cache that lags (here: one that keeps serving the copy from before a rollback) must
// not replay the old step and push weight back to the canary.
func TestStaleCachedRolloutIsNotDecidedOn(t *testing.T) {
	c := newCluster(t, "stalero")
	g := &stubGates{}
	var stale atomic.Pointer[meshv1alpha1.Rollout]
	var served atomic.Int32
	lagging := func(cl client.Client) client.Client {
		return interceptor.NewClient(noWatch{cl}, interceptor.Funcs{
			Get: func(ctx context.Context, cl client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if ro, ok := obj.(*meshv1alpha1.Rollout); ok {
					if old := stale.Load(); old != nil && key.Name == old.Name {
						old.DeepCopyInto(ro)
						served.Add(1)
						return nil
					}
				}
				return cl.Get(ctx, key, obj, opts...)
			},
		})
	}
	mgr := newRolloutManagerWith(t, managerSetup{wrap: lagging}, func(ctrl.Manager) controllers.GateChecker { return g }, c.ns)
	m := &manager{t: t, gates: g, stopFn: testenv.RunManager(mgr)}
	t.Cleanup(m.stop)
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	g.set(func(*meshv1alpha1.Rollout) meshv1alpha1.Verdict { return meshv1alpha1.VerdictInconclusive })
	c.setImage(t, "checkout", "demo:v2")
	if err := pollFor(30*time.Second, func() bool { return c.canaryWeight("checkout", "checkout-b") == 20 }); err != nil {
		t.Fatal("the release never reached 20%")
	}
	before := c.rolloutNow(t, "checkout") // what a lagging cache would still hold
	g.set(func(*meshv1alpha1.Rollout) meshv1alpha1.Verdict { return meshv1alpha1.VerdictFail })
	c.waitRollout(t, "checkout", "RolledBack", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })
	if err := pollFor(30*time.Second, func() bool { return c.canaryWeight("checkout", "checkout-b") == 0 }); err != nil {
		t.Fatal("the rollback never reached the route")
	}

	stale.Store(before)
	// Wake the Rollout (an annotation passes the watch predicate) a few times.
	for i := range 5 {
		ro := c.rolloutNow(t, "checkout")
		patch := client.MergeFrom(ro.DeepCopy())
		metav1.SetMetaDataAnnotation(&ro.ObjectMeta, "test.sluice.dev/wake", strconv.Itoa(i))
		if err := env.Client.Patch(context.Background(), ro, patch); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			if w := c.canaryWeight("checkout", "checkout-b"); w != 0 {
				t.Fatalf("the canary got weight %d back after its rollback: a stale cached Rollout was decided on", w)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if served.Load() == 0 {
		t.Fatal("the reconciler never read the Rollout through its cache: the test proved nothing")
	}
	if r := c.rolloutNow(t, "checkout"); r.Status.Phase != meshv1alpha1.PhaseRolledBack {
		t.Errorf("phase %s after the stale reads, want RolledBack", r.Status.Phase)
	}
}
