package scenarios

import (
	"context"
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/cluster"
	"github.com/sluice-mesh/sluice/e2e/load"
)

// start deploys v1 under the canary Rollout and starts traffic; it returns the v1 revision.
func start(t testing.TB, prefix string, mutate func(*meshv1alpha1.Rollout)) (string, *load.Generator, string) {
	t.Helper()
	ctx := context.Background()
	ns, err := cl.Namespace(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	app(t, ns)
	r := canary(ns)
	if mutate != nil {
		mutate(r)
	}
	if err := cl.Client.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	v1 := waitRollout(t, ns, "Healthy on v1", 60*time.Second, healthy).Status.StableRevision
	g := traffic(t, ns)
	waitTraffic(t, g, "v1 answering through Traefik", func(c load.Counts) bool { return c.ByVersion["v1"] >= 40 })
	return ns, g, v1
}

// afterPromotion asserts that, once promoted, only version answers. Traefik reports the route
// Accepted a few hundred milliseconds before its data plane switches (traefik.md: 0.26–0.54 s),
// so the traffic of the first two seconds after promotion (more under CI load) is not judged.
func afterPromotion(t testing.TB, g *load.Generator, version string) {
	t.Helper()
	promoted := g.Snapshot()
	waitTraffic(t, g, "two seconds of traffic after promotion", func(c load.Counts) bool { return c.Since(promoted).Total >= 80 })
	settled := g.Snapshot()
	after := waitTraffic(t, g, "traffic after promotion", func(c load.Counts) bool { return c.Since(settled).Total >= 80 }).Since(settled)
	if after.Share(version) < 1 {
		t.Errorf("after promotion %s serves %.2f of the traffic: %+v", version, after.Share(version), after)
	}
}

// The manager is killed mid-release and started again: the release resumes where it was and
// ends promoted, with traffic following.
func TestManagerKilledMidReleaseResumes(t *testing.T) {
	ns, g, v1 := start(t, "killed", nil)
	setVersion(t, ns, "v2")
	waitRollout(t, ns, "the release at 20%", 60*time.Second, func(r *meshv1alpha1.Rollout) bool {
		return r.Status.CanaryWeight == 20 && r.Status.Phase == meshv1alpha1.PhaseProgressing
	})
	// The status says 20% once the route is Accepted; Traefik's data plane follows a moment
	// later (longer under load), so the split is judged only once v2 answers.
	at20 := g.Snapshot()
	waitTraffic(t, g, "v2 answering at 20%", func(c load.Counts) bool { return c.Since(at20).ByVersion["v2"] >= 1 })
	if err := cl.Kill(cluster.Manager); err != nil {
		t.Fatal(err)
	}
	killed := g.Snapshot()
	// While no manager runs, the data plane keeps serving the last split.
	waitTraffic(t, g, "traffic without a manager", func(c load.Counts) bool { return c.Since(killed).Total >= 80 })
	if d := g.Snapshot().Since(killed); d.ByVersion["v2"] == 0 || d.ByVersion["v1"] == 0 {
		t.Errorf("without a manager the split changed: %+v", d)
	}
	if err := cl.Restart(context.Background(), cluster.Manager); err != nil {
		t.Fatal(err)
	}
	r := waitRollout(t, ns, "promotion after the restart", 3*time.Minute, func(r *meshv1alpha1.Rollout) bool { return healthy(r) && r.Status.StableRevision != v1 })
	if r.Status.AbortReason != "" {
		t.Errorf("abortReason %q after a restart", r.Status.AbortReason)
	}
	afterPromotion(t, g, "v2")
}

// Prometheus stops mid-release: the Rollout holds its weight (no promotion, no rollback) and
// resumes when Prometheus is back.
func TestPrometheusStoppedMidReleaseHoldsThenResumes(t *testing.T) {
	ns, g, v1 := start(t, "promstop", nil)
	setVersion(t, ns, "v2")
	waitRollout(t, ns, "a passing check at 20%", 60*time.Second, func(r *meshv1alpha1.Rollout) bool {
		return r.Status.CanaryWeight == 20 && r.Status.Analysis != nil && r.Status.Analysis.Passed >= 1
	})
	if err := cl.Kill(cluster.Prometheus); err != nil {
		t.Fatal(err)
	}
	r := waitRollout(t, ns, "Holding", 60*time.Second, func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseHolding })
	if r.Status.CanaryWeight != 20 || r.Status.Analysis.Failed != 0 {
		t.Errorf("while Prometheus is down: weight %d, failed checks %d", r.Status.CanaryWeight, r.Status.Analysis.Failed)
	}
	held := g.Snapshot()
	waitTraffic(t, g, "traffic while holding", func(c load.Counts) bool { return c.Since(held).Total >= 80 })
	if share := g.Snapshot().Since(held).Share("v2"); share < 0.10 || share > 0.30 {
		t.Errorf("while holding v2 serves %.2f of the traffic, want about 0.20", share)
	}
	if err := cl.Restart(context.Background(), cluster.Prometheus); err != nil {
		t.Fatal(err)
	}
	waitRollout(t, ns, "promotion after Prometheus is back", 3*time.Minute, func(r *meshv1alpha1.Rollout) bool { return healthy(r) && r.Status.StableRevision != v1 })
	afterPromotion(t, g, "v2")
}

// A newer revision arriving mid-release restarts the release on it; the older canary
// disappears from the traffic and the newest is promoted.
func TestNewRevisionDuringRelease(t *testing.T) {
	ns, g, v1 := start(t, "newrev", nil)
	setVersion(t, ns, "v2")
	waitTraffic(t, g, "v2 receiving canary traffic", func(c load.Counts) bool { return c.ByVersion["v2"] >= 10 })
	setVersion(t, ns, "v3")
	r := waitRollout(t, ns, "promotion of v3", 3*time.Minute, func(r *meshv1alpha1.Rollout) bool { return healthy(r) && r.Status.StableRevision != v1 })
	if r.Status.AbortReason != "" {
		t.Errorf("abortReason %q", r.Status.AbortReason)
	}
	afterPromotion(t, g, "v3")
	if c := g.Snapshot(); c.ByVersion["v3"] == 0 || c.LastSeen["v2"].After(c.FirstSeen["v3"].Add(5*time.Second)) {
		t.Errorf("v2 kept serving long after v3 started: %+v", c)
	}
}

// A/B by header: requests with x-canary: always reach the canary only; the others stay on
// the stable version while the weights have not moved.
func TestABByHeader(t *testing.T) {
	ns, g, _ := start(t, "ab", func(r *meshv1alpha1.Rollout) {
		r.Spec.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{{SetWeight: ptrInt(0)}, {Pause: &meshv1alpha1.PauseStep{}}}
		r.Spec.Strategy.Canary.Match = []meshv1alpha1.RouteMatch{{Headers: []meshv1alpha1.ValueMatch{{Name: "x-canary", Value: "always"}}}}
	})
	setVersion(t, ns, "v2")
	waitRollout(t, ns, "the manual gate", 60*time.Second, func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhasePaused })

	testers := &load.Generator{URL: cl.GatewayURL + "/", Host: cluster.DemoHost(ns), Header: http.Header{"X-Canary": {"always"}}, RPS: 20, Workers: 4, Client: defaultClient()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { testers.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// Paused is in status before Traefik's data plane carries the A/B rule (the route is
	// written after the status, and Traefik follows a moment later): judge from the first
	// request the rule sent to v2.
	_ = wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return testers.Snapshot().ByVersion["v2"] >= 1, nil
	})
	matched := testers.Snapshot()
	var ab load.Counts
	_ = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		ab = testers.Snapshot().Since(matched)
		return ab.ByVersion["v2"] >= 40, nil
	})
	if ab.Share("v2") < 0.95 {
		t.Errorf("requests with the header: %+v, want all on v2", ab)
	}
	base := g.Snapshot()
	waitTraffic(t, g, "traffic without the header", func(c load.Counts) bool { return c.Since(base).Total >= 80 })
	if d := g.Snapshot().Since(base); d.ByVersion["v2"] > 0 {
		t.Errorf("requests without the header reached v2: %+v", d)
	}

	// Abort: the A/B rule goes away with the release.
	r := &meshv1alpha1.Rollout{}
	if err := cl.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "shop"}, r); err != nil {
		t.Fatal(err)
	}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"mesh.sluice.dev/action":"abort"}}}`))
	if err := cl.Client.Patch(context.Background(), r, patch); err != nil {
		t.Fatal(err)
	}
	waitRollout(t, ns, "RolledBack after abort", 60*time.Second, func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })
	aborted := testers.Snapshot()
	_ = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return testers.Snapshot().Since(aborted).ByVersion["v1"] >= 40, nil
	})
	if d := testers.Snapshot().Since(aborted); d.Share("v1") < 0.9 {
		t.Errorf("after abort, requests with the header: %+v, want v1", d)
	}
}

func ptrInt(v int32) *int32 { return &v }
