package scenarios

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/load"
)

// failed counts the requests that got no answer or an answer other than 200.
func failed(c load.Counts) int {
	n := c.Errors
	for code, k := range c.ByCode {
		if code != 200 {
			n += k
		}
	}
	return n
}

// 5. Deleting a Rollout keeps the service up. With 40 requests/s through the Gateway, the
// Rollout is deleted with foreground propagation (how Argo CD prunes: the garbage collector
// deletes every dependent at once) and with background propagation (kubectl's default). The
// real kube-controller-manager's garbage collector runs. No request may fail after the deletion
// completes; during it, at most a handful (the test logs how many).
func TestDeletingARolloutKeepsTheServiceUp(t *testing.T) {
	for _, policy := range []metav1.DeletionPropagation{metav1.DeletePropagationForeground, metav1.DeletePropagationBackground} {
		t.Run(string(policy), func(t *testing.T) {
			ctx := context.Background()
			ns, g, _ := start(t, "delete", nil)
			r := &meshv1alpha1.Rollout{}
			if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, r); err != nil {
				t.Fatal(err)
			}
			before := g.Snapshot()
			began := time.Now()
			if err := cl.Client.Delete(ctx, r, client.PropagationPolicy(policy)); err != nil {
				t.Fatal(err)
			}
			err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
				return apierrors.IsNotFound(cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, &meshv1alpha1.Rollout{})), nil
			})
			if err != nil {
				t.Fatalf("the Rollout was not deleted within 3 minutes: status %+v", r.Status)
			}
			took := time.Since(began)
			deleted := g.Snapshot()
			during := deleted.Since(before)
			after := waitTraffic(t, g, "30 s of traffic after the deletion", func(c load.Counts) bool { return c.Since(deleted).Total >= 1200 }).Since(deleted)
			t.Logf("%s deletion took %s: during it %d of %d requests failed %v; after it %d of %d failed %v",
				policy, took.Round(time.Millisecond), failed(during), during.Total, during.ByCode, failed(after), after.Total, after.ByCode)
			if n := failed(after); n != 0 {
				t.Errorf("%d of %d requests failed after the deletion completed (codes %v, transport errors %d)", n, after.Total, after.ByCode, after.Errors)
			}
			if n := failed(during); n > 5 {
				t.Errorf("%d of %d requests failed while the Rollout was being deleted, want at most a handful", n, during.Total)
			}
			if after.Share("v1") < 1 {
				t.Errorf("after the deletion: %+v, want all answered by v1 (the target's own pods)", after.ByVersion)
			}
			checkHandedBack(t, ns)
		})
	}
}

// checkHandedBack: the target serves, the apex Service selects its pods and is no longer the
// Rollout's, the route sends everything to the apex Service, the slots are gone.
func checkHandedBack(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	target := &appsv1.Deployment{}
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, target); err != nil || target.Status.ReadyReplicas != 2 {
		t.Errorf("target Deployment: %v, ready %d", err, target.Status.ReadyReplicas)
	}
	apex := &corev1.Service{}
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, apex); err != nil {
		t.Fatalf("the apex Service is gone: %v", err)
	}
	if apex.Spec.Selector["app"] != "shop" || apex.Labels["mesh.sluice.dev/rollout-uid"] != "" || len(apex.OwnerReferences) > 0 {
		t.Errorf("apex Service not handed back: selector %v labels %v owners %v", apex.Spec.Selector, apex.Labels, apex.OwnerReferences)
	}
	rt := &gatewayv1.HTTPRoute{}
	if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, rt); err != nil {
		t.Fatalf("the route is gone: %v", err)
	}
	var backends []string
	for _, rule := range rt.Spec.Rules {
		for _, b := range rule.BackendRefs {
			backends = append(backends, fmt.Sprintf("%s/%d", b.Name, derefWeight(b.Weight)))
		}
	}
	if len(backends) != 1 || backends[0] != "shop/1" || len(rt.OwnerReferences) > 0 {
		t.Errorf("route not handed back: backends %v owners %v", backends, rt.OwnerReferences)
	}
	for _, name := range []string{"shop-a", "shop-b"} {
		if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &appsv1.Deployment{}); !apierrors.IsNotFound(err) {
			t.Errorf("slot Deployment %s still there (%v)", name, err)
		}
		if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &corev1.Service{}); !apierrors.IsNotFound(err) {
			t.Errorf("slot Service %s still there (%v)", name, err)
		}
	}
}

func derefWeight(w *int32) int32 {
	if w == nil {
		return 1
	}
	return *w
}
