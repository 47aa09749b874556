package scenarios

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/cluster"
	"github.com/sluice-mesh/sluice/e2e/load"
)

// A ConfigMap change that breaks the app (the demo app takes its error rate from it) is
// released like a new version and rolled back by its gate. Throughout, the stable pods keep
// the old configuration: every failed request was answered by a canary pod, and the canary
// got no more than its weight's share of the traffic.
func TestConfigChangeThatBreaksTheAppIsRolledBack(t *testing.T) {
	ctx := context.Background()
	ns, err := cl.Namespace(ctx, "config")
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "shop-config", Namespace: ns}, Data: map[string]string{"ERROR_RATE": "0"}}
	app := cluster.DemoApp(ns, "v1")
	app.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "ERROR_RATE", ValueFrom: &corev1.EnvVarSource{
		ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "shop-config"}, Key: "ERROR_RATE"}}}}
	ro := canary(ns)
	ro.Spec.ConfigTracking = &meshv1alpha1.ConfigTracking{Enabled: true}
	for _, o := range []client.Object{cm, app, cl.SuccessRateGate(ns), ro} {
		if err := cl.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	r := waitRollout(t, ns, "Healthy on v1 with its config copy", 60*time.Second, healthy)
	stableCopy := configCopy(r, r.Status.StableSlot)
	if !strings.HasPrefix(stableCopy, "shop-config-") {
		t.Fatalf("the stable slot runs config %q, want a copy of shop-config (status.slots %+v)", stableCopy, r.Status.Slots)
	}
	keep := keptTraffic(t, ns)
	waitTraffic(t, keep, "v1 answering through Traefik", func(c load.Counts) bool { return c.ByVersion["v1"] >= 40 })
	before := len(keep.Results())

	// The change: half of the requests fail on pods that read it.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := &corev1.ConfigMap{}
		if err := cl.Client.Get(ctx, client.ObjectKeyFromObject(cm), cur); err != nil {
			return err
		}
		cur.Data["ERROR_RATE"] = "0.5"
		return cl.Client.Update(ctx, cur)
	})
	if err != nil {
		t.Fatal(err)
	}
	r = waitRollout(t, ns, "rollback of the config change", 2*time.Minute, func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhaseRolledBack
	})
	if r.Status.AbortReason != "HealthGateFailed" {
		t.Errorf("abortReason %q, want HealthGateFailed", r.Status.AbortReason)
	}
	if got := configCopy(r, r.Status.StableSlot); got != stableCopy {
		t.Errorf("the stable slot runs config %q after the rollback, want %q throughout", got, stableCopy)
	}
	// Two seconds after the rollback (Traefik's apply delay), then judge everything since
	// the change.
	rolled := keep.Snapshot()
	waitTraffic(t, keep, "traffic after the rollback", func(c load.Counts) bool { return c.Since(rolled).Total >= 80 })

	canaryPods := r.GetSlotDeploymentName(r.Status.StableSlot.Other()) + "-"
	results := keep.Results()[before:]
	var failed, toCanary, other int
	for _, res := range results {
		onCanary := res.App != nil && strings.HasPrefix(res.App.Pod, canaryPods)
		if onCanary {
			toCanary++
		}
		if !res.Failed() {
			continue
		}
		failed++
		if !onCanary {
			other++
			if other <= 5 {
				t.Errorf("a request failed outside the canary: %s (code %d, %v)", res.Cause(), res.Code, res.App)
			}
		}
	}
	// The canary's share: its first step is 20%; with n requests, 3 standard deviations above.
	n := float64(len(results))
	limit := 0.2*n + 3*math.Sqrt(n*0.2*0.8)
	t.Logf("since the change: %d requests, %d answered by the canary (limit %.0f), %d failed (%d outside the canary)", len(results), toCanary, limit, failed, other)
	if float64(toCanary) > limit {
		t.Errorf("the canary answered %d of %d requests: more than its 20%% share", toCanary, len(results))
	}
	if failed == 0 {
		t.Error("no request failed: the canary never ran the changed config")
	}
}

// keptTraffic is the load generator of traffic, recording every request.
func keptTraffic(t testing.TB, ns string) *load.Generator {
	g := &load.Generator{URL: cl.GatewayURL + "/", Host: cluster.DemoHost(ns), RPS: 40, Workers: 8, Keep: true, Client: defaultClient()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

// configCopy is the ConfigMap copy slot s runs (status.slots).
func configCopy(r *meshv1alpha1.Rollout, s meshv1alpha1.Slot) string {
	for _, st := range r.Status.Slots {
		if st.Slot != s {
			continue
		}
		for _, c := range st.Config {
			if c.Kind == "ConfigMap" && c.Name == "shop-config" {
				return c.Copy
			}
		}
	}
	return ""
}
