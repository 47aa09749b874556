package controllers_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// hpaFor is an autoscaling/v2 HorizontalPodAutoscaler whose scaleTargetRef is the Rollout (the
// one change a user makes to an HPA of the target Deployment), on an external metric: no HPA
// controller runs here, the test writes the scale as it would.
func hpaFor(ns, name, targetKind, targetAPIVersion, target string) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: targetAPIVersion, Kind: targetKind, Name: target},
			MinReplicas:    ptr.To(int32(2)), MaxReplicas: 40,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: "requests_per_second"},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("10"))},
			}}},
		},
	}
}

// scaleTo writes the scale subresource of Rollout checkout, as the HPA controller (or KEDA) does: read,
// then update with the resourceVersion read (a conflict is retried, as the HPA does at its
// next sync).
func scaleTo(t testing.TB, ns string, n int32) {
	t.Helper()
	const name = "checkout"
	ro := &meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sc := &autoscalingv1.Scale{}
		if err := env.Client.SubResource("scale").Get(context.Background(), ro, sc); err != nil {
			return err
		}
		sc.Spec.Replicas = n
		return env.Client.SubResource("scale").Update(context.Background(), ro, client.WithSubResourceBody(sc))
	})
	if err != nil {
		t.Fatalf("writing the scale of Rollout %s: %v", name, err)
	}
}

// replicaHistory records every spec.replicas a set of Deployments goes through.
type replicaHistory struct {
	c     *cluster
	names []string
	mu    sync.Mutex
	seen  map[string][]int32
	stop  context.CancelFunc
	done  chan struct{}
}

func watchReplicas(c *cluster, names ...string) *replicaHistory {
	ctx, cancel := context.WithCancel(context.Background())
	h := &replicaHistory{c: c, names: names, seen: map[string][]int32{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		_ = wait.PollUntilContextCancel(ctx, 10*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			h.sample(ctx)
			return false, nil
		})
	}()
	return h
}

func (h *replicaHistory) sample(ctx context.Context) {
	for _, n := range h.names {
		d := &appsv1.Deployment{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: h.c.ns, Name: n}, d); err != nil {
			continue
		}
		v := ptr.Deref(d.Spec.Replicas, 1)
		h.mu.Lock()
		if s := h.seen[n]; len(s) == 0 || s[len(s)-1] != v {
			h.seen[n] = append(s, v)
		}
		h.mu.Unlock()
	}
}

// of stops the recording (after a last look) and returns what name went through.
func (h *replicaHistory) of(name string) []int32 {
	h.stop()
	<-h.done
	h.sample(context.Background())
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen[name])
}

func slotReplicas(t testing.TB, c *cluster, name string) int32 {
	t.Helper()
	return ptr.Deref(c.deployment(t, name).Spec.Replicas, 1)
}

func waitSlotReplicas(t testing.TB, c *cluster, name string, n int32) {
	t.Helper()
	if err := pollFor(20*time.Second, func() bool { return slotReplicas(t, c, name) == n }); err != nil {
		t.Fatalf("slot %s: %d replicas, want %d", name, slotReplicas(t, c, name), n)
	}
}

// An HPA pointed at the Rollout drives it through the scale subresource: Sluice sets
// spec.replicas once so the HPA can read the scale, the stable slot follows every count the
// HPA writes (and only those: no flapping), the canary runs its weight's share, and promotion
// scales the canary to the full count before it takes all traffic.
func TestHPAScalesTheRolloutThroughARelease(t *testing.T) {
	c := newCluster(t, "hpa")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	create(t, hpaFor(c.ns, "checkout", "Rollout", meshv1alpha1.GroupVersion.String(), "checkout"))
	r := c.waitRollout(t, "checkout", "spec.replicas set for the HPA and Autoscaling True", func(r *meshv1alpha1.Rollout) bool {
		return r.Spec.Replicas != nil && condIs(r, meshv1alpha1.ConditionAutoscaling, "Autoscaled") && r.Status.CurrentReplicas == 3
	})
	if *r.Spec.Replicas != 3 || r.Status.Autoscaler != "checkout" || r.Status.Selector != "mesh.sluice.dev/rollout=checkout" {
		t.Errorf("spec.replicas %d, autoscaler %q, selector %q: want 3 (the target's count), checkout, mesh.sluice.dev/rollout=checkout", *r.Spec.Replicas, r.Status.Autoscaler, r.Status.Selector)
	}
	sc := &autoscalingv1.Scale{}
	if err := env.Client.SubResource("scale").Get(context.Background(), r, sc); err != nil {
		t.Fatal(err)
	}
	if sc.Spec.Replicas != 3 || sc.Status.Replicas != 3 || sc.Status.Selector != "mesh.sluice.dev/rollout=checkout" {
		t.Errorf("scale %+v: want spec 3, status 3 and the slots' selector", sc)
	}

	hist := watchReplicas(c, "checkout-a", "checkout-b")
	scaleTo(t, c.ns, 10)
	waitSlotReplicas(t, c, "checkout-a", 10)

	c.setImage(t, "checkout", "demo:v2")
	r = c.waitRollout(t, "checkout", "paused at 60% waiting for promote", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhasePaused && r.Status.CanaryWeight == 60
	})
	if a, b := slotReplicas(t, c, "checkout-a"), slotReplicas(t, c, "checkout-b"); a != 10 || b != 6 {
		t.Errorf("at 60%%: stable %d, canary %d pods; want 10 and 6 (60%% of 10)", a, b)
	}
	// The HPA asks for more mid-release: both grow, the weight stays.
	scaleTo(t, c.ns, 20)
	waitSlotReplicas(t, c, "checkout-a", 20)
	waitSlotReplicas(t, c, "checkout-b", 12)
	if r := c.rolloutNow(t, "checkout"); r.Status.CanaryWeight != 60 || r.Status.Phase != meshv1alpha1.PhasePaused {
		t.Errorf("after the scale-up: phase %s weight %d, want Paused at 60", r.Status.Phase, r.Status.CanaryWeight)
	}

	annotate(t, r, meshv1alpha1.ActionPromote)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotB)
	waitSlotReplicas(t, c, "checkout-b", 20)
	scaleTo(t, c.ns, 4)
	waitSlotReplicas(t, c, "checkout-b", 4)

	// Every count the stable slot took was one the HPA asked for (or the share of one): no
	// value in between, none twice.
	a, b := hist.of("checkout-a"), hist.of("checkout-b")
	t.Logf("slot a replicas: %v; slot b replicas: %v", a, b)
	if !isPrefix([]int32{3, 10, 20}, a) {
		t.Errorf("slot a went through %v, want 3 → 10 → 20 (then down after promotion)", a)
	}
	wantB := []int32{2, 6, 12, 20, 4}
	if !slices.Equal(dropLeadingZero(b), wantB) {
		t.Errorf("slot b went through %v, want %v (20%% of 10, 60%% of 10, 60%% of 20, promoted at 20, then the HPA's 4)", b, wantB)
	}
	// (That promotion waits for the full count before the last weight is a state-machine rule:
	// internal/rollout TestAutoscaledSizing and the random-history invariants check it.)
}

func isPrefix(want, got []int32) bool {
	return len(got) >= len(want) && slices.Equal(got[:len(want)], want)
}

func dropLeadingZero(s []int32) []int32 {
	for len(s) > 0 && s[0] == 0 {
		s = s[1:]
	}
	return s
}

// An HPA (or KEDA's, for a ScaledObject) left on the target Deployment scales nothing once
// Sluice keeps it at zero: status says so and how to fix it.
func TestAutoscalerOnTheTargetIsReported(t *testing.T) {
	c := newCluster(t, "hpa-misdirected")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	hpa := hpaFor(c.ns, "keda-hpa-checkout", "Deployment", "apps/v1", "checkout")
	hpa.Labels = map[string]string{"scaledobject.keda.sh/name": "checkout"}
	create(t, hpa)
	r := c.waitRollout(t, "checkout", "Autoscaling False", func(r *meshv1alpha1.Rollout) bool {
		cond := meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionAutoscaling)
		return cond != nil && cond.Status == metav1.ConditionFalse
	})
	msg := meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionAutoscaling).Message
	for _, want := range []string{"ScaledObject checkout", "keda-hpa-checkout", "scaleTargetRef", "kind: Rollout, name: checkout"} {
		if !strings.Contains(msg, want) {
			t.Errorf("condition message %q lacks %q", msg, want)
		}
	}
	if r.Spec.Replicas != nil {
		t.Errorf("spec.replicas set to %d for an autoscaler that does not target the Rollout", *r.Spec.Replicas)
	}
	if err := env.Client.Delete(context.Background(), hpa); err != nil {
		t.Fatal(err)
	}
	c.waitRollout(t, "checkout", "Autoscaling condition gone", func(r *meshv1alpha1.Rollout) bool {
		return meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionAutoscaling) == nil
	})
}

// KEDA: a ScaledObject whose scaleTargetRef is the Rollout is valid by KEDA's published
// schema; KEDA's operator (not running here) reads the scale subresource, makes an HPA for it
// and writes the scale, down to zero when idle: the Rollout takes the count, and keeps one pod
// serving at zero.
func TestKEDAScaledObjectScalesTheRollout(t *testing.T) {
	path, err := testenv.KEDACRDs()
	if err != nil {
		t.Fatal(err)
	}
	opts := envtest.CRDInstallOptions{Paths: []string{path}, MaxTime: time.Minute}
	if _, err := envtest.InstallCRDs(env.Config, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = envtest.UninstallCRDs(env.Config, opts) })

	c := newCluster(t, "keda")
	startManager(t, c.ns, &stubGates{})
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	so := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
		"metadata": map[string]any{"name": "checkout", "namespace": c.ns},
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"apiVersion": meshv1alpha1.GroupVersion.String(), "kind": "Rollout", "name": "checkout"},
			"minReplicaCount": int64(0), "maxReplicaCount": int64(30),
			"triggers": []any{map[string]any{"type": "prometheus", "metadata": map[string]any{
				"serverAddress": "http://prometheus.monitoring:9090", "query": `sum(rate(http_requests_total{service="checkout"}[1m]))`, "threshold": "10",
			}}},
		},
	}}
	if err := env.Client.Create(context.Background(), so); err != nil {
		t.Fatalf("KEDA's schema refused a ScaledObject targeting the Rollout: %v", err)
	}
	// What KEDA's operator does next: an HPA named keda-hpa-<ScaledObject>, labelled with it,
	// on the same scaleTargetRef.
	hpa := hpaFor(c.ns, "keda-hpa-checkout", "Rollout", meshv1alpha1.GroupVersion.String(), "checkout")
	hpa.Labels = map[string]string{"scaledobject.keda.sh/name": "checkout"}
	create(t, hpa)
	c.waitRollout(t, "checkout", "spec.replicas set for KEDA's HPA", func(r *meshv1alpha1.Rollout) bool {
		return r.Spec.Replicas != nil && condIs(r, meshv1alpha1.ConditionAutoscaling, "Autoscaled") && r.Status.Autoscaler == "keda-hpa-checkout"
	})
	scaleTo(t, c.ns, 7)
	waitSlotReplicas(t, c, "checkout-a", 7)
	// Idle: KEDA scales to zero. The Rollout accepts it and keeps one pod serving.
	scaleTo(t, c.ns, 0)
	waitSlotReplicas(t, c, "checkout-a", 1)
	if r := c.rolloutNow(t, "checkout"); r.Status.Phase != meshv1alpha1.PhaseHealthy {
		t.Errorf("phase %s at scale 0, want Healthy (one pod serving)", r.Status.Phase)
	}
}
