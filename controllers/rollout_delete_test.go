package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// handBackSample is one look at what serves while a Rollout is deleted.
type handBackSample struct {
	targetReady  bool
	apexSelector string
	routeTo      string // the split rule's backends with weight > 0
	slotsLeft    int    // slot Deployments not yet deleting
}

// watchHandBack samples every 20 ms until stop is closed.
func (c *cluster) watchHandBack(stop <-chan struct{}) func() []handBackSample {
	var mu sync.Mutex
	var samples []handBackSample
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			s := c.handBackState()
			mu.Lock()
			if n := len(samples); n == 0 || samples[n-1] != s {
				samples = append(samples, s)
			}
			mu.Unlock()
		}
	}()
	return func() []handBackSample { <-done; mu.Lock(); defer mu.Unlock(); return samples }
}

func (c *cluster) handBackState() handBackSample {
	ctx := context.Background()
	var s handBackSample
	t := &appsv1.Deployment{}
	if env.Client.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: "checkout"}, t) == nil {
		s.targetReady = ptr.Deref(t.Spec.Replicas, 1) > 0 && t.Status.ReadyReplicas == ptr.Deref(t.Spec.Replicas, 1)
	}
	apex := &corev1.Service{}
	if env.Client.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: "checkout"}, apex) == nil {
		s.apexSelector = fmt.Sprint(apex.Spec.Selector)
	}
	rt := &gatewayv1.HTTPRoute{}
	if env.Client.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: "checkout"}, rt) == nil {
		var to []string
		for _, rule := range rt.Spec.Rules {
			for _, b := range rule.BackendRefs {
				if ptr.Deref(b.Weight, 1) > 0 {
					to = append(to, string(b.Name))
				}
			}
		}
		s.routeTo = strings.Join(to, ",")
	}
	for _, name := range []string{"checkout-a", "checkout-b"} {
		d := &appsv1.Deployment{}
		if env.Client.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: name}, d) == nil && d.DeletionTimestamp == nil && ptr.Deref(d.Spec.Replicas, 1) > 0 {
			s.slotsLeft++
		}
	}
	return s
}

// 5. Deleting a Rollout keeps the service up: the finalizer hands traffic back in order, and
// nothing serving is deleted before something else serves in its place. (The e2e scenario
// TestDeletingARolloutKeepsTheServiceUp measures the same through Traefik under load, with the
// real garbage collector and foreground propagation.)
func TestDeletingARolloutHandsTrafficBackFirst(t *testing.T) {
	c := newCluster(t, "delete")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	r := c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	if err := pollFor(10*time.Second, func() bool { return ptr.Deref(c.deployment(t, "checkout").Spec.Replicas, 1) == 0 }); err != nil {
		t.Fatal("target not scaled to zero")
	}
	for _, o := range []client.Object{c.deployment(t, "checkout-a"), c.route(t, "checkout")} {
		if len(o.GetOwnerReferences()) > 0 {
			t.Errorf("%T %s has ownerReferences %v: the garbage collector would delete it with the Rollout", o, o.GetName(), o.GetOwnerReferences())
		}
	}

	stop := make(chan struct{})
	samples := c.watchHandBack(stop)
	// Background: envtest runs no garbage collector, which completes a foreground deletion.
	if err := env.Client.Delete(context.Background(), r, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
		t.Fatal(err)
	}
	if err := pollFor(60*time.Second, func() bool {
		return apierrors.IsNotFound(env.Client.Get(context.Background(), client.ObjectKeyFromObject(r), &meshv1alpha1.Rollout{}))
	}); err != nil {
		t.Fatalf("the Rollout was not deleted: %+v", c.rolloutNow(t, "checkout").Status.Conditions)
	}
	close(stop)
	seen := samples()
	for i, s := range seen {
		t.Logf("%d: %+v", i, s)
		routedToApex := s.routeTo == "checkout"
		if routedToApex && (!s.targetReady || !strings.Contains(s.apexSelector, "app:checkout")) {
			t.Errorf("sample %d: the route sends traffic to the apex Service before it selects the target's ready pods: %+v", i, s)
		}
		if routedToApex && s.slotsLeft > 0 && !strings.Contains(s.apexSelector, "pod-template-hash:") {
			t.Errorf("sample %d: the apex Service selects the slots' pods (they carry the target's labels) while they are about to go: %+v", i, s)
		}
		if s.slotsLeft == 0 && !routedToApex {
			t.Errorf("sample %d: the slots are gone while the route still sends them traffic: %+v", i, s)
		}
	}
	last := seen[len(seen)-1]
	if last.routeTo != "checkout" || !last.targetReady || last.slotsLeft != 0 {
		t.Errorf("after the deletion: %+v, want the route on the apex Service, the target serving, no slots", last)
	}
	apex := &corev1.Service{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: "checkout"}, apex); err != nil {
		t.Fatal(err)
	}
	if apex.Labels["mesh.sluice.dev/rollout-uid"] != "" || len(apex.OwnerReferences) > 0 {
		t.Errorf("the apex Service is still the Rollout's: labels %v owners %v", apex.Labels, apex.OwnerReferences)
	}
	if fmt.Sprint(apex.Spec.Selector) != "map[app:checkout]" {
		t.Errorf("the handed-back apex Service selects %v, want the target's selector", apex.Spec.Selector)
	}
	for _, name := range []string{"checkout-a", "checkout-b"} {
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: name}, &corev1.Service{}); !apierrors.IsNotFound(err) {
			t.Errorf("slot Service %s left behind (%v)", name, err)
		}
	}
	if l, ok := c.deployment(t, "checkout").Labels["mesh.sluice.dev/rollout"]; ok {
		t.Errorf("the handed-back target still carries the Rollout's cache label (%q)", l)
	}
}
