package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/traffic/gatewayapi"
)

// Issue 9, point 9 (one writer of a route's rules): a MeshPolicy change and a rollback at the
// same moment. The MeshPolicy on the Rollout's apex Service changes its timeout while the
// Rollout's router is writing the rollback's weight: the test holds that write (after the
// router read the route) until the policy's change has reached the route, then lets it go. The
// rollback's write must land as it is (no Conflict, no retry), within the rollback's normal
// latency, measured in the same test by a rollback without the policy change; and the policy's
// new timeout must be on the route afterwards.
//
// The race is made certain rather than hoped for: the held write is exactly the interleaving
// that used to lose (both writers read-modify-wrote spec.rules, each guarded by the route's
// resourceVersion, so the rollback's write got a Conflict and waited for a requeue).
func TestRouteRulesOneWriterRollbackAndPolicyAtOnce(t *testing.T) {
	for _, mode := range []string{"generated route", "existing route"} {
		t.Run(mode, func(t *testing.T) {
			c := newCluster(t, "onewriter")
			route := "shop"
			if mode == "existing route" {
				route = "storefront"
				createStorefront(t, c.ns)
			}
			hook := &rollbackHook{ns: c.ns, route: route, canary: "shop-b"}
			g := &stubGates{}
			var failing atomic.Bool
			g.set(func(*meshv1alpha1.Rollout) meshv1alpha1.Verdict {
				if failing.Load() {
					hook.failedAt.CompareAndSwap(nil, ptr.To(time.Now()))
					return meshv1alpha1.VerdictFail
				}
				return meshv1alpha1.VerdictPass
			})
			startManagerWithRouteHook(t, c.ns, g, hook)
			c.target(t, "shop")
			ro := canaryRollout(c.ns, "shop")
			if mode == "existing route" {
				ro.Spec.TrafficRouting.GatewayAPI = meshv1alpha1.GatewayAPIRouting{HTTPRouteRef: &meshv1alpha1.LocalObjectReference{Name: route}}
			}
			create(t, ro)
			c.healthyOn(t, "shop", meshv1alpha1.SlotA)
			createPolicy(t, c.ns, "shop", meshv1alpha1.MeshPolicySpec{
				TargetRefs: targets("shop"),
				Provider:   meshv1alpha1.ProviderGatewayAPI,
				Timeouts:   &meshv1alpha1.Timeouts{Request: &metav1.Duration{Duration: 5 * time.Second}},
			})
			c.waitRouteState(t, route, "the policy's 5s timeout", func(w int32, timeout string) bool { return timeout == "5s" })

			// A rollback on its own: its normal latency, from the failing check to weight 0.
			normal := c.rollback(t, hook, &failing, "demo:v2", false)
			// The same with the policy changing at the rollback's write.
			atOnce := c.rollback(t, hook, &failing, "demo:v3", true)

			t.Logf("%s: failing check to weight 0 on the route: alone %v; with the policy change %v, of which %v waiting for the policy's write to land, so %v the rollback's own",
				mode, normal.latency, atOnce.latency, atOnce.held, atOnce.latency-atOnce.held)
			if atOnce.writeErr != nil {
				t.Errorf("the rollback's route write, racing the policy's, failed: %v (it must neither lose to a policy write nor wait for one)", atOnce.writeErr)
			}
			if !atOnce.policyLanded {
				t.Errorf("the policy's change did not reach the route while the rollback's write was held: the race was not run")
			}
			if budget := 2*normal.latency + 250*time.Millisecond; atOnce.latency-atOnce.held > budget {
				t.Errorf("with a policy change at the same moment the rollback took %v (held %v for the policy), over its normal %v (budget %v)",
					atOnce.latency-atOnce.held, atOnce.held, normal.latency, budget)
			}
			c.waitRouteState(t, route, "weight 0 and the policy's new 7s timeout", func(w int32, timeout string) bool { return w == 0 && timeout == "7s" })
		})
	}
}

// rollbackRun is what one rollback took.
type rollbackRun struct {
	// latency from the failing check to weight 0 seen on the route.
	latency time.Duration
	// held: how long the rollback's write was held while the policy's change landed.
	held time.Duration
	// policyLanded: the policy's change reached the route while the write was held.
	policyLanded bool
	// writeErr is what the held write returned.
	writeErr error
}

// rollback releases image, waits for the canary at 20%, then makes the gate fail; with
// policyChange, the rollback's route write is held until the MeshPolicy's new timeout reached
// the route.
func (c *cluster) rollback(t *testing.T, hook *rollbackHook, failing *atomic.Bool, image string, policyChange bool) rollbackRun {
	t.Helper()
	failing.Store(false)
	c.setImage(t, "shop", image)
	c.waitRollout(t, "shop", image+" at 20%", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhaseProgressing && r.Status.CanaryWeight == 20 && condIs(r, meshv1alpha1.ConditionTrafficApplied, "")
	})
	c.waitRouteState(t, hook.route, image+" at 20% on the route", func(w int32, _ string) bool { return w == 20 })
	hook.arm(policyChange)
	failing.Store(true)
	var seenAt time.Time
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		rt := &gatewayv1.HTTPRoute{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: hook.route}, rt); err != nil {
			return false, nil
		}
		if w, ok := backendWeight(rt, hook.canary); ok && w == 0 {
			seenAt = time.Now()
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%s: the rollback's weight 0 never reached the route: %v", image, err)
	}
	c.waitRollout(t, "shop", image+" rolled back", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })
	run := hook.disarm()
	failedAt := hook.failedAt.Swap(nil)
	if failedAt == nil {
		t.Fatalf("%s: weight 0 without a failing check", image)
	}
	run.latency = seenAt.Sub(*failedAt)
	return run
}

// rollbackHook sits between the Rollout's router and the API server. Armed with a policy change,
// it holds the first route write that takes the canary to weight 0 (the rollback's, sent after
// the router read the route), changes the MeshPolicy's timeout to 7s meanwhile, waits until that
// change is on the route (in its rules or in its annotations, wherever the policy writes), then
// sends the write and records what it returned.
type rollbackHook struct {
	ns, route, canary string
	failedAt          atomic.Pointer[time.Time]

	mu     sync.Mutex
	armed  bool
	policy bool
	run    rollbackRun
}

func (h *rollbackHook) arm(policyChange bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed, h.policy, h.run = true, policyChange, rollbackRun{}
}

func (h *rollbackHook) disarm() rollbackRun {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = false
	return h.run
}

// take reports whether the write of body is the rollback's, and disarms the hook if so.
func (h *rollbackHook) take(body []byte) (hold bool, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.armed || !mentionsWeight(body, h.canary, 0) {
		return false, false
	}
	h.armed = false
	return h.policy, true
}

func (h *rollbackHook) around(ctx context.Context, body []byte, write func() error) error {
	hold, ok := h.take(body)
	if !ok {
		return write()
	}
	run := rollbackRun{}
	if hold {
		start := time.Now()
		run.policyLanded = h.changePolicy(ctx)
		run.held = time.Since(start)
	}
	run.writeErr = write()
	h.mu.Lock()
	h.run = run
	h.mu.Unlock()
	return run.writeErr
}

// changePolicy sets the policy's timeout to 7s and waits until the route shows it.
func (h *rollbackHook) changePolicy(ctx context.Context) bool {
	p := &meshv1alpha1.MeshPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "shop"}}
	if err := env.Client.Patch(ctx, p, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"timeouts":{"request":"7s"}}}`))); err != nil {
		return false
	}
	err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		rt := &gatewayv1.HTTPRoute{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: h.ns, Name: h.route}, rt); err != nil {
			return false, nil
		}
		data, _ := json.Marshal(struct {
			Annotations map[string]string
			Rules       []gatewayv1.HTTPRouteRule
		}{rt.Annotations, rt.Spec.Rules})
		return strings.Contains(string(data), "7s"), nil
	})
	return err == nil
}

// startManagerWithRouteHook runs the Rollout controller for ns with its router's writes going
// through hook.
func startManagerWithRouteHook(t *testing.T, ns string, g *stubGates, hook *rollbackHook) {
	t.Helper()
	cacheOpts := controllers.CacheOptions()
	cacheOpts.DefaultNamespaces = map[string]cache.Config{ns: {}}
	mgr, err := ctrl.NewManager(managerConfig(t), ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:      cacheOpts,
	})
	if err != nil {
		t.Fatal(err)
	}
	direct, err := client.NewWithWatch(managerConfig(t), client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	routes := interceptor.NewClient(direct, interceptor.Funcs{
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			body, _ := json.Marshal(obj)
			return hook.around(ctx, body, func() error { return c.Apply(ctx, obj, opts...) })
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			body, _ := patch.Data(obj)
			return hook.around(ctx, body, func() error { return c.Patch(ctx, obj, patch, opts...) })
		},
	})
	r := controllers.NewRolloutReconciler(mgr, g, 1)
	r.Router = gatewayapi.New(routes).WithGateways(mgr.GetAPIReader())
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	stop := testenv.RunManager(mgr)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

// createStorefront is a user's route whose only rule sends everything to Service shop.
func createStorefront(t *testing.T, ns string) {
	t.Helper()
	rt := &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Name: "storefront", Namespace: ns},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{Name: "edge"}}},
			Rules: []gatewayv1.HTTPRouteRule{{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
				BackendObjectReference: gatewayv1.BackendObjectReference{Name: "shop", Port: ptr.To(gatewayv1.PortNumber(80))},
			}}}}},
		},
	}
	if err := env.Client.Create(context.Background(), rt); err != nil {
		t.Fatal(err)
	}
}

// waitRouteState polls the route until cond holds for the canary's weight (of the rule routing to
// the slots) and that rule's request timeout.
func (c *cluster) waitRouteState(t *testing.T, route, what string, cond func(canaryWeight int32, timeout string) bool) {
	t.Helper()
	var last string
	err := pollFor(30*time.Second, func() bool {
		rt := &gatewayv1.HTTPRoute{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: route}, rt); err != nil {
			return false
		}
		w, _ := backendWeight(rt, "shop-b")
		timeout := ""
		for _, rule := range rt.Spec.Rules {
			if hasBackend(rule, "shop-a") && rule.Timeouts != nil && rule.Timeouts.Request != nil {
				timeout = string(*rule.Timeouts.Request)
			}
		}
		last = fmt.Sprintf("canary weight %d, timeout %q, annotations %v", w, timeout, rt.Annotations)
		return cond(w, timeout)
	})
	if err != nil {
		t.Fatalf("route %s: waiting for %s: %v; last: %s", route, what, err, last)
	}
}

// backendWeight is the weight of svc in the first rule that has it.
func backendWeight(rt *gatewayv1.HTTPRoute, svc string) (int32, bool) {
	for _, rule := range rt.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if string(b.Name) == svc && len(rule.BackendRefs) > 1 {
				return ptr.Deref(b.Weight, 1), true
			}
		}
	}
	return 0, false
}

func hasBackend(rule gatewayv1.HTTPRouteRule, svc string) bool {
	for _, b := range rule.BackendRefs {
		if string(b.Name) == svc {
			return true
		}
	}
	return false
}

// mentionsWeight reports whether a JSON body (an applied route or a patch of its rules) has a
// backendRef to svc with the given weight.
func mentionsWeight(body []byte, svc string, weight int32) bool {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			if w, ok := x["weight"].(float64); ok && x["name"] == svc && int32(w) == weight {
				return true
			}
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}
