// Package scenarios runs releases end to end on the local cluster: real demo-app processes
// behind Traefik, judged from Traefik's metrics in Prometheus, driven by the Sluice manager
// binary. Assertions are on the traffic the load generator saw, not only on object state.
package scenarios

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/cluster"
	"github.com/sluice-mesh/sluice/e2e/load"
	"github.com/sluice-mesh/sluice/e2e/stack"
)

var cl *cluster.Cluster

// TestMain starts one cluster for every scenario; each scenario has its own namespace and host.
func TestMain(m *testing.M) {
	// The HPA controller runs too (TestAutoscalingContinuesThroughACanary): idle without HPAs.
	c, err := cluster.Start(context.Background(), cluster.Options{Logf: log.Printf, Stack: stack.Options{HPA: &stack.HPA{}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the e2e cluster:", err)
		os.Exit(1)
	}
	cl = c
	code := m.Run()
	if code != 0 {
		fmt.Fprintln(os.Stderr, cl.LogTails(60))
	}
	_ = cl.Stop()
	os.Exit(code)
}

// app deploys the demo app v1 and its gate; releases change the version with setVersion.
func app(t testing.TB, ns string) {
	t.Helper()
	for _, o := range []client.Object{cluster.DemoApp(ns, "v1"), cl.SuccessRateGate(ns)} {
		if err := cl.Client.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
}

// canary is the demo Rollout.
func canary(ns string) *meshv1alpha1.Rollout { return cluster.DemoRollout(ns) }

// traffic starts the load generator on the scenario's host until the test ends.
func traffic(t testing.TB, ns string) *load.Generator {
	g := &load.Generator{URL: cl.GatewayURL + "/", Host: cluster.DemoHost(ns), RPS: 40, Workers: 8, Client: nil}
	g.Client = defaultClient()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

// setVersion changes the target's version: a new revision.
func setVersion(t testing.TB, ns, version string, args ...string) {
	t.Helper()
	if err := cl.SetVersion(context.Background(), ns, version, args...); err != nil {
		t.Fatal(err)
	}
}

func waitRollout(t testing.TB, ns, what string, timeout time.Duration, cond func(*meshv1alpha1.Rollout) bool) *meshv1alpha1.Rollout {
	t.Helper()
	r := &meshv1alpha1.Rollout{}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		return cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, r) == nil && cond(r), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: phase %s step %v weight %d analysis %+v conditions %+v", what, r.Status.Phase, r.Status.CurrentStep, r.Status.CanaryWeight, r.Status.Analysis, r.Status.Conditions)
	}
	return r
}

func waitTraffic(t testing.TB, g *load.Generator, what string, cond func(load.Counts) bool) load.Counts {
	t.Helper()
	var c load.Counts
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		c = g.Snapshot()
		return cond(c), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: traffic %+v", what, c)
	}
	return c
}

func healthy(r *meshv1alpha1.Rollout) bool {
	return r.Status.Phase == meshv1alpha1.PhaseHealthy && r.Status.ObservedGeneration == r.Generation && r.Status.CanaryRevision == ""
}

// A healthy v2 walks every step to promotion; the load generator sees v2 take over.
func TestSuccessfulCanary(t *testing.T) {
	ctx := context.Background()
	ns, err := cl.Namespace(ctx, "canary")
	if err != nil {
		t.Fatal(err)
	}
	app(t, ns)
	if err := cl.Client.Create(ctx, canary(ns)); err != nil {
		t.Fatal(err)
	}
	r := waitRollout(t, ns, "Healthy on v1", 60*time.Second, healthy)
	v1 := r.Status.StableRevision
	g := traffic(t, ns)
	warm := waitTraffic(t, g, "v1 answering through Traefik", func(c load.Counts) bool { return c.ByVersion["v1"] >= 40 })

	setVersion(t, ns, "v2")
	waitTraffic(t, g, "v2 receiving canary traffic", func(c load.Counts) bool { return c.ByVersion["v2"] >= 20 })
	r = waitRollout(t, ns, "promotion of v2", 3*time.Minute, func(r *meshv1alpha1.Rollout) bool { return healthy(r) && r.Status.StableRevision != v1 })
	if r.Status.StableSlot != meshv1alpha1.SlotB || r.Status.AbortReason != "" {
		t.Errorf("after promotion: stable %s abort %q", r.Status.StableSlot, r.Status.AbortReason)
	}
	afterPromotion(t, g, "v2")
	// Once traffic flows, a healthy release must not cost a single failed request: no 404 while
	// routes change, no 5xx, no connection error (weights move only once the data plane is
	// proven to serve the canary and the split, see TestWeightMovesOnlyWhenDataPlaneServesCanary).
	total := g.Snapshot()
	release := total.Since(warm)
	if failed := release.Total - release.ByCode[http.StatusOK]; failed > 0 {
		t.Errorf("during the release: codes %v, transport errors %d of %d requests", release.ByCode, release.Errors, release.Total)
	}
	t.Logf("served: %v, codes %v (during the release: %v)", total.ByVersion, total.ByCode, release.ByCode)
}

// A v3 answering 50%% 500s is rolled back: after the route's weight 0 for the canary, no
// request reaches v3 later than Traefik's apply delay.
func TestBadCanaryIsRolledBack(t *testing.T) {
	ctx := context.Background()
	ns, err := cl.Namespace(ctx, "rollback")
	if err != nil {
		t.Fatal(err)
	}
	app(t, ns)
	if err := cl.Client.Create(ctx, canary(ns)); err != nil {
		t.Fatal(err)
	}
	waitRollout(t, ns, "Healthy on v1", 60*time.Second, healthy)
	g := traffic(t, ns)
	waitTraffic(t, g, "v1 answering through Traefik", func(c load.Counts) bool { return c.ByVersion["v1"] >= 40 })

	zero := watchCanaryZero(t, ns)
	setVersion(t, ns, "v3", "--error-rate=0.5")
	waitTraffic(t, g, "v3 receiving canary traffic", func(c load.Counts) bool { return c.ByVersion["v3"] >= 10 })
	r := waitRollout(t, ns, "rollback of v3", 2*time.Minute, func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })
	if r.Status.AbortReason != "HealthGateFailed" {
		t.Errorf("abortReason %q", r.Status.AbortReason)
	}
	weightZero := <-zero
	// Judge the traffic after Traefik's apply delay: two seconds of requests first (the lag
	// itself is judged below, from the last answer of v3).
	rolled := g.Snapshot()
	waitTraffic(t, g, "two seconds of traffic after rollback", func(c load.Counts) bool { return c.Since(rolled).Total >= 80 })
	settled := g.Snapshot()
	waitTraffic(t, g, "traffic after rollback", func(c load.Counts) bool { return c.Since(settled).Total >= 80 })
	c := g.Snapshot()
	last := c.LastSeen["v3"]
	lag := last.Sub(weightZero)
	t.Logf("route weight 0 at %s; last v3 answer %s later; served %v", weightZero.Format(time.StampMilli), lag.Round(time.Millisecond), c.ByVersion)
	// Traefik applies a route change in 0.26–0.54 s with its 100 ms throttle (traefik.md).
	if lag > 2*time.Second {
		t.Errorf("v3 still answered %s after the route sent it nothing", lag)
	}
	if since := c.Since(settled); since.ByVersion["v3"] > 0 {
		t.Errorf("v3 answered after the rollback settled: %+v", since)
	}
}

// watchCanaryZero reports when the route first carries weight 0 for shop-b (the canary of a
// first release) after carrying more.
func watchCanaryZero(t testing.TB, ns string) <-chan time.Time {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return cl.WatchWeightZero(ctx, ns, "shop-b")
}

func defaultClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
}
