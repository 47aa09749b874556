package controllers_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// hangingPrometheus accepts connections and never answers, like a Prometheus behind a link
// that dropped mid-request. It returns its URL.
func hangingPrometheus(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }() // read the request, never answer
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// gate is a one-metric success-rate HealthGate (builtin, Traefik) on the given Prometheus.
func gate(ns, name, prometheus string, timeout time.Duration) *meshv1alpha1.HealthGate {
	g := successRateGate(ns, prometheus, nil)
	g.Name = name
	g.Spec.Prometheus.Timeout = &metav1.Duration{Duration: timeout}
	g.Spec.Window = &metav1.Duration{Duration: 2 * time.Second}
	g.Spec.Interval = nil
	return g
}

// canaryWeight is the weight the route's split rule gives svc now (-1: no route yet).
func (c *cluster) canaryWeight(name, svc string) int32 {
	rt := &gatewayv1.HTTPRoute{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: name}, rt); err != nil {
		return -1
	}
	for _, rule := range rt.Spec.Rules {
		if rule.Name == nil || *rule.Name != "sluice-split" {
			continue
		}
		for _, b := range rule.BackendRefs {
			if string(b.Name) == svc {
				return ptr.Deref(b.Weight, 1)
			}
		}
	}
	return -1
}

// rollbackLatency releases a bad version of Rollout name and measures, on the route, from the
// canary's weight reaching 20 to weight 0.
func (c *cluster) rollbackLatency(t *testing.T, name, image string) time.Duration {
	t.Helper()
	c.setImage(t, name, image)
	canary := name + "-b"
	var at20 time.Time
	if err := pollFor(60*time.Second, func() bool { return c.canaryWeight(name, canary) == 20 }); err != nil {
		t.Fatalf("%s never reached 20%%: %v", name, err)
	}
	at20 = time.Now()
	if err := wait10ms(90*time.Second, func() bool { return c.canaryWeight(name, canary) == 0 }); err != nil {
		r := c.rolloutNow(t, name)
		t.Fatalf("%s: no rollback to weight 0 within 90s; status %+v", name, r.Status)
	}
	return time.Since(at20)
}

func wait10ms(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return context.DeadlineExceeded
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// 1. Analysis never blocks anyone else. Three Rollouts' gates read a Prometheus that accepts
// connections and never answers (20 s query timeout); a fourth Rollout's bad release (50% of
// its requests fail, read from a real Prometheus) must still reach weight 0 as fast as it does
// without them, on a manager with a single worker. The stuck Rollouts go Unreachable → Hold →
// Stalled after maxHold, their weight frozen.
func TestAnalysisNeverBlocksAnyoneElse(t *testing.T) {
	c := newCluster(t, "analysis")
	exp := testenv.StartExporter(t)
	prom := testenv.StartPrometheus(t, exp.Addr())
	hung := hangingPrometheus(t)
	mgr := newRolloutManager(t, func(m ctrl.Manager) controllers.GateChecker {
		return &controllers.RolloutGates{Client: m.GetClient(), Evaluator: &controllers.PrometheusEvaluator{Reader: m.GetAPIReader()}}
	}, c.ns)
	stop := testenv.RunManager(mgr)
	t.Cleanup(func() { _ = stop() })

	exp.Set(c.ns, "bad-b", 40, 0.5, 10*time.Millisecond) // the canary slot of "bad" answers half its requests with 500
	create(t, gate(c.ns, "prom", prom.URL(), 2*time.Second))
	create(t, gate(c.ns, "hung", hung, 20*time.Second))
	stuck := []string{"stuck1", "stuck2", "stuck3"}
	for _, name := range append([]string{"bad"}, stuck...) {
		c.target(t, name)
		ro := canaryRollout(c.ns, name)
		ro.Spec.Analysis.HealthGates = []meshv1alpha1.LocalObjectReference{{Name: "prom"}}
		if name != "bad" {
			ro.Spec.Analysis.HealthGates = []meshv1alpha1.LocalObjectReference{{Name: "hung"}}
			ro.Spec.Analysis.MaxHold = &metav1.Duration{Duration: 3 * time.Second}
		}
		create(t, ro)
	}
	for _, name := range append([]string{"bad"}, stuck...) {
		c.healthyOn(t, name, meshv1alpha1.SlotA)
	}

	normal := c.rollbackLatency(t, "bad", "demo:bad-1")
	c.waitRollout(t, "bad", "RolledBack", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })

	// The stuck Rollouts start releases whose every check hangs on the dead Prometheus.
	for _, name := range stuck {
		c.setImage(t, name, "demo:v2")
	}
	for _, name := range stuck {
		c.waitRollout(t, name, "20% with its gate check hanging", func(r *meshv1alpha1.Rollout) bool {
			return r.Status.CanaryWeight == 20 && r.Status.StepStartTime != nil
		})
	}
	blocked := c.rollbackLatency(t, "bad", "demo:bad-2")
	t.Logf("bad release to weight 0: %s alone, %s with three Rollouts hanging on a dead Prometheus", normal.Round(time.Millisecond), blocked.Round(time.Millisecond))
	if limit := 2*normal + 2*time.Second; blocked > limit {
		t.Errorf("with three gate checks hanging the rollback took %s, more than %s (normal %s): a hung check held up another Rollout", blocked, limit, normal)
	}

	for _, name := range stuck {
		waitLong(t, c, name, "Holding on Unreachable", func(r *meshv1alpha1.Rollout) bool {
			return r.Status.Phase == meshv1alpha1.PhaseHolding && r.Status.Analysis != nil && r.Status.Analysis.Verdict == meshv1alpha1.VerdictUnreachable
		})
		r := waitLong(t, c, name, "Stalled after maxHold", func(r *meshv1alpha1.Rollout) bool { return condIs(r, meshv1alpha1.ConditionStalled, "MaxHoldExceeded") })
		if r.Status.CanaryWeight != 20 || r.Status.Analysis.Failed != 0 || r.Status.AbortReason != "" {
			t.Errorf("%s while Prometheus hangs: weight %d failed %d abort %q, want frozen at 20%%", name, r.Status.CanaryWeight, r.Status.Analysis.Failed, r.Status.AbortReason)
		}
	}
}

// waitLong is waitRollout with a 90 s deadline (hung checks take their full query timeout).
func waitLong(t *testing.T, c *cluster, name, what string, cond func(*meshv1alpha1.Rollout) bool) *meshv1alpha1.Rollout {
	t.Helper()
	var r *meshv1alpha1.Rollout
	if err := pollFor(90*time.Second, func() bool { r = c.rolloutNow(t, name); return cond(r) }); err != nil {
		t.Fatalf("%s: waiting for %s: %v; status %+v", name, what, err, r.Status)
	}
	return r
}
