// Command demo is `make demo`: it starts the local cluster (its own network namespace with an
// API server, Traefik, Prometheus and the Sluice manager), deploys a demo app under a Rollout,
// releases a healthy v2 (promoted step by step) and a bad v3 (rolled back by itself), and
// shows what happens live. Ctrl-C tears everything down. Needs root (network namespaces).
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/cluster"
	"github.com/sluice-mesh/sluice/e2e/load"
	"github.com/sluice-mesh/sluice/internal/cli"
)

func main() {
	exit := flag.Bool("exit", false, "stop after the summary instead of waiting for Ctrl-C")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *exit); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1) //nolint:gocritic // stop() ran above
	}
}

func run(ctx context.Context, exit bool) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("make demo needs root: it creates a network namespace so that pods get real 10.244.x.y addresses")
	}
	say("Starting the local cluster: network namespace, etcd, kube-apiserver, kube-controller-manager,")
	say("a node agent that runs pods as local processes, Traefik (Gateway API), Prometheus, Sluice.")
	started := time.Now()
	cl, err := cluster.Start(ctx, cluster.Options{Logf: func(f string, a ...any) { say("  "+f, a...) }})
	if err != nil {
		return err
	}
	defer func() {
		say("Stopping the cluster…")
		_ = cl.Stop()
	}()
	say("Cluster up in %s. Logs: %s", time.Since(started).Round(100*time.Millisecond), cl.LogDir)

	ns, err := cl.Namespace(ctx, "demo")
	if err != nil {
		return err
	}
	for _, o := range []client.Object{cluster.DemoApp(ns, "v1"), cl.SuccessRateGate(ns), cluster.DemoRollout(ns)} {
		if err := cl.Client.Create(ctx, o); err != nil {
			return err
		}
	}
	say("")
	say("Deployed shop v1 (2 pods) under Rollout shop: 20%% → 2 checks → 60%% → 2 checks → promote,")
	say("judged by HealthGate success-rate (≥ 95%% of the canary's requests through Traefik, from Prometheus).")
	if _, err := waitRollout(ctx, cl, ns, healthy); err != nil {
		return err
	}
	g := &load.Generator{URL: cl.GatewayURL + "/", Host: cluster.DemoHost(ns), RPS: 40, Workers: 8, Client: &http.Client{Timeout: 5 * time.Second}}
	go g.Run(ctx)
	say("Sending 40 requests/s to http://%s through the Gateway.", cluster.DemoHost(ns))
	view := startView(ctx, cl, ns, g)
	defer view()

	// v2: healthy.
	sayHeader("Release v2 (healthy)")
	v1 := mustGet(ctx, cl, ns).Status.StableRevision
	before := g.Snapshot()
	t0 := time.Now()
	if err := cl.SetVersion(ctx, ns, "v2"); err != nil {
		return err
	}
	if _, err := waitRollout(ctx, cl, ns, func(r *meshv1alpha1.Rollout) bool { return healthy(r) && r.Status.StableRevision != v1 }); err != nil {
		return err
	}
	v2took := time.Since(t0)
	v2 := g.Snapshot().Since(before)

	// v3: 50% of its answers are 500.
	sayHeader("Release v3 (bad: half its answers are 500)")
	// The canary of this release runs in the slot that is not stable now.
	canarySvc := "shop-" + string(mustGet(ctx, cl, ns).Status.StableSlot.Other())
	zero := cl.WatchWeightZero(ctx, ns, canarySvc)
	if err := cl.SetVersion(ctx, ns, "v3", "--error-rate=0.5"); err != nil {
		return err
	}
	r, err := waitRollout(ctx, cl, ns, func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })
	if err != nil {
		return err
	}
	var weightZero time.Time
	select {
	case weightZero = <-zero:
	case <-ctx.Done():
		return ctx.Err()
	}
	// Let a second of traffic pass: the last v3 answer comes within Traefik's apply delay.
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return time.Since(weightZero) > 2*time.Second, nil
	})
	c := g.Snapshot()
	view()

	sayHeader("Summary")
	say("v2  promoted in %s; %d requests answered during the release, %d of them by v2, %d failed.",
		v2took.Round(100*time.Millisecond), v2.Total, v2.ByVersion["v2"], v2.Total-v2.ByCode[http.StatusOK])
	say("v1  from Healthy to the end: %d requests, %d failed other than v3's own 500s (the data plane is", c.Total, unexpectedFailures(c, "v3"))
	say("      proven to serve every split before a weight moves or time counts).")
	say("v3  rolled back (%s). From its first failed request:", r.Status.AbortReason)
	say("      to weight 0 on the route:      %s", weightZero.Sub(c.FirstFailure["v3"]).Round(10*time.Millisecond))
	say("      to its last answered request:  %s", c.LastSeen["v3"].Sub(c.FirstFailure["v3"]).Round(10*time.Millisecond))
	say("    v3 answered %d requests in all; v2, the stable version, serves everything again.", c.ByVersion["v3"])
	if exit {
		return nil
	}
	say("")
	say("The cluster stays up: KUBECONFIG=%s kubectl get sluice -A", cl.Kubeconfig)
	say("Press Ctrl-C to tear everything down.")
	<-ctx.Done()
	return nil
}

func healthy(r *meshv1alpha1.Rollout) bool {
	return r.Status.Phase == meshv1alpha1.PhaseHealthy && r.Status.CanaryRevision == "" && r.Status.ObservedGeneration == r.Generation
}

func mustGet(ctx context.Context, cl *cluster.Cluster, ns string) *meshv1alpha1.Rollout {
	r := &meshv1alpha1.Rollout{}
	_ = cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, r)
	return r
}

func waitRollout(ctx context.Context, cl *cluster.Cluster, ns string, cond func(*meshv1alpha1.Rollout) bool) (*meshv1alpha1.Rollout, error) {
	var r *meshv1alpha1.Rollout
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		r = mustGet(ctx, cl, ns)
		return cond(r), nil
	})
	return r, err
}

// startView shows the release as users see it: `kubectl sluice get rollout` (the plugin's own
// code) whenever the phase, step, weights or a gate verdict change, and one line a second with
// the requests each version answered. The returned func stops it.
func startView(ctx context.Context, cl *cluster.Cluster, ns string, g *load.Generator) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := g.Snapshot()
		shown := ""
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			now := g.Snapshot()
			d := now.Since(last)
			last = now
			r := mustGet(ctx, cl, ns)
			if key := fmt.Sprintf("%s/%s/%d/%s", r.Status.Phase, step(r), r.Status.CanaryWeight, gate(r)); key != shown {
				shown = key
				var out bytes.Buffer
				cli.Main([]string{"get", "rollout", "shop", "-n", ns, "--kubeconfig", cl.Kubeconfig, "--no-color"}, &out, &out)
				say("  $ kubectl sluice get rollout shop -n %s", ns)
				for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
					say("  %s", line)
				}
			}
			say("  %s  last second: %s", time.Now().Format("15:04:05"), perVersion(d))
		}
	}()
	return func() { cancel(); <-done }
}

func step(r *meshv1alpha1.Rollout) string {
	if r.Status.CurrentStep == nil {
		return "-"
	}
	return fmt.Sprint(*r.Status.CurrentStep)
}

func gate(r *meshv1alpha1.Rollout) string {
	a := r.Status.Analysis
	if a == nil || len(a.Gates) == 0 {
		return "-"
	}
	m := a.Gates[0]
	return fmt.Sprintf("%s=%s (%s)", m.Name, short(m.Value), m.Verdict)
}

func short(v string) string {
	if len(v) > 6 {
		return v[:6]
	}
	return v
}

func perVersion(c load.Counts) string {
	var parts []string
	for _, v := range c.Versions() {
		parts = append(parts, fmt.Sprintf("%s %d", v, c.ByVersion[v]))
	}
	if failed := c.Total - c.ByCode[http.StatusOK]; failed > 0 {
		parts = append(parts, fmt.Sprintf("failed %d", failed))
	}
	if len(parts) == 0 {
		return "no answers"
	}
	return strings.Join(parts, ", ")
}

// unexpectedFailures counts the failed requests except the 500s the bad version answered on
// purpose.
func unexpectedFailures(c load.Counts, bad string) int {
	n := c.Total - c.ByCode[http.StatusOK]
	for _, f := range c.Failures {
		if f.Version == bad && f.Code == http.StatusInternalServerError {
			n--
		}
	}
	return n
}

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func sayHeader(s string) { say("\n== %s", s) }
