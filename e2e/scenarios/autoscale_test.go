package scenarios

import (
	"context"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	appsv1 "k8s.io/api/apps/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/cluster"
	"github.com/sluice-mesh/sluice/e2e/load"
	"github.com/sluice-mesh/sluice/e2e/metricsadapter"
)

// rateMeter is the request rate the load generators sent over the last few seconds: the
// external metric the HPA scales on (a stand-in for a Prometheus query through KEDA).
type rateMeter struct {
	mu      sync.Mutex
	gens    []*load.Generator
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	total int
}

func (m *rateMeter) add(g *load.Generator) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gens = append(m.gens, g)
}

func (m *rateMeter) run(ctx context.Context) {
	_ = wait.PollUntilContextCancel(ctx, 250*time.Millisecond, true, func(context.Context) (bool, error) {
		m.mu.Lock()
		defer m.mu.Unlock()
		total := 0
		for _, g := range m.gens {
			total += g.Snapshot().Total
		}
		m.samples = append(m.samples, rateSample{time.Now(), total})
		return false, nil
	})
}

// perSecond over the last 4 s.
func (m *rateMeter) perSecond() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.samples)
	if n < 2 {
		return 0
	}
	last, first := m.samples[n-1], m.samples[0]
	for i := n - 1; i >= 0; i-- {
		if last.at.Sub(m.samples[i].at) >= 4*time.Second {
			first = m.samples[i]
			break
		}
	}
	if d := last.at.Sub(first.at).Seconds(); d > 0 {
		return float64(last.total-first.total) / d
	}
	return 0
}

// The real HPA controller scales the Rollout on a load metric (requests per second, 10 per
// pod) before, during and after a canary: the load doubles while the canary holds 60%, both
// slots grow (the canary to its share), promotion keeps the count, and no request fails.
// The Rollout's replica count never changes direction while the load only grows (no fight
// between the HPA and Sluice).
func TestAutoscalingContinuesThroughACanary(t *testing.T) {
	ctx := context.Background()
	ns, err := cl.Namespace(ctx, "hpa")
	if err != nil {
		t.Fatal(err)
	}
	meter := &rateMeter{}
	mctx, stopMeter := context.WithCancel(ctx)
	t.Cleanup(stopMeter)
	go meter.run(mctx)
	metricsadapter.StartForTest(t, cl.Stack, metricsadapter.Options{Metrics: []string{"shop_requests_per_second"},
		Values: func(namespace, metric string, _ labels.Selector) (resource.Quantity, bool) {
			if namespace != ns || metric != "shop_requests_per_second" {
				return resource.Quantity{}, false
			}
			return *resource.NewMilliQuantity(int64(meter.perSecond()*1000), resource.DecimalSI), true
		}})

	ro := canary(ns)
	ro.Spec.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{
		{SetWeight: ptr.To(int32(20))}, {Analysis: &meshv1alpha1.AnalysisStep{Checks: 2}},
		{SetWeight: ptr.To(int32(60))}, {Pause: &meshv1alpha1.PauseStep{}},
	}
	hpa := &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}, Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
		ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: meshv1alpha1.GroupVersion.String(), Kind: "Rollout", Name: "shop"},
		MinReplicas:    ptr.To(int32(2)), MaxReplicas: 12,
		Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: "shop_requests_per_second"},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: ptr.To(resource.MustParse("10"))},
		}}},
		// As in production: no scale-down on a dip shorter than a minute.
		Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To(int32(60))}},
	}}
	for _, o := range []client.Object{cluster.DemoApp(ns, "v1"), cl.SuccessRateGate(ns), ro, hpa} {
		if err := cl.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	waitRollout(t, ns, "Healthy on v1", 60*time.Second, healthy)
	counts := watchSpecReplicas(t, ns)
	g := traffic(t, ns)
	meter.add(g)

	// 40 requests per second: about 4 pods.
	r := waitRollout(t, ns, "the HPA's count on the stable slot", 90*time.Second, func(r *meshv1alpha1.Rollout) bool {
		return r.Spec.Replicas != nil && *r.Spec.Replicas >= 4 && slotReady(ns, "shop-a") == *r.Spec.Replicas && r.Status.Autoscaler == "shop"
	})
	low := *r.Spec.Replicas
	t.Logf("40 rps: %d pods (metric %.1f/s)", low, meter.perSecond())

	setVersion(t, ns, "v2")
	r = waitRollout(t, ns, "the canary at 60%, waiting for promote", 2*time.Minute, func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhasePaused && r.Status.CanaryWeight == 60
	})
	if b := slotReplicas(ns, "shop-b"); b != share(*r.Spec.Replicas, 60) {
		t.Errorf("canary at 60%% of %d pods runs %d", *r.Spec.Replicas, b)
	}

	// The load doubles while the canary holds 60%.
	g2 := traffic(t, ns)
	meter.add(g2)
	doubled := time.Now()
	r = waitRollout(t, ns, "the HPA's higher count on both slots", 90*time.Second, func(r *meshv1alpha1.Rollout) bool {
		// The load fully doubled, and the count within the HPA's 10% tolerance of it.
		n, rate := ptr.Deref(r.Spec.Replicas, 0), meter.perSecond()
		return rate >= 75 && float64(n)*10 >= 0.9*rate && slotReady(ns, "shop-a") == n && slotReady(ns, "shop-b") == share(n, 60)
	})
	high := *r.Spec.Replicas
	t.Logf("80 rps: %d pods, canary %d (metric %.1f/s), both slots ready at the new count %s after the load doubled",
		high, share(high, 60), meter.perSecond(), time.Since(doubled).Round(100*time.Millisecond))
	if r.Status.Phase != meshv1alpha1.PhasePaused || r.Status.CanaryWeight != 60 {
		t.Errorf("scaling moved the release: phase %s weight %d", r.Status.Phase, r.Status.CanaryWeight)
	}

	annotateAction(t, ns, meshv1alpha1.ActionPromote)
	waitRollout(t, ns, "promotion", 90*time.Second, func(r *meshv1alpha1.Rollout) bool {
		return healthy(r) && r.Status.StableSlot == meshv1alpha1.SlotB
	})
	if b := slotReplicas(ns, "shop-b"); b < high {
		t.Errorf("promoted slot b runs %d pods, the HPA asked for %d", b, high)
	}
	afterPromotion(t, g, "v2")

	total := 0
	for _, gen := range []*load.Generator{g, g2} {
		c := gen.Snapshot()
		total += c.Total
		if failed := c.Total - c.ByCode[200]; failed > 0 {
			t.Errorf("%d of %d requests failed: codes %v, transport errors %d", failed, c.Total, c.ByCode, c.Errors)
		}
	}
	seen := counts()
	t.Logf("spec.replicas went through %v; %d requests", seen, total)
	for i := 2; i < len(seen); i++ {
		if (seen[i]-seen[i-1])*(seen[i-1]-seen[i-2]) < 0 {
			t.Errorf("spec.replicas changed direction while the load only grew: %v", seen)
			break
		}
	}
}

// share mirrors the canary's pod count for weight percent of n (internal/rollout).
func share(n, weight int32) int32 {
	return min(max((n*weight+99)/100, 1), n)
}

func slotReplicas(ns, name string) int32 {
	d := &appsv1.Deployment{}
	if err := cl.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return -1
	}
	return ptr.Deref(d.Spec.Replicas, 1)
}

// slotReady is the Deployment's ready pods when it has as many as it asks for, else -1.
func slotReady(ns, name string) int32 {
	d := &appsv1.Deployment{}
	if err := cl.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return -1
	}
	if d.Status.ReadyReplicas != ptr.Deref(d.Spec.Replicas, 1) {
		return -1
	}
	return d.Status.ReadyReplicas
}

// watchSpecReplicas records every spec.replicas the Rollout takes until the returned func is
// called.
func watchSpecReplicas(t testing.TB, ns string) func() []int32 {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var seen []int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			r := &meshv1alpha1.Rollout{}
			if cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, r) == nil && r.Spec.Replicas != nil {
				mu.Lock()
				if len(seen) == 0 || seen[len(seen)-1] != *r.Spec.Replicas {
					seen = append(seen, *r.Spec.Replicas)
				}
				mu.Unlock()
			}
			return false, nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() []int32 {
		mu.Lock()
		defer mu.Unlock()
		return append([]int32(nil), seen...)
	}
}

// annotateAction asks the Rollout shop for a manual action, as `kubectl sluice` does.
func annotateAction(t testing.TB, ns string, action meshv1alpha1.RolloutAction) {
	t.Helper()
	r := &meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"}}
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"annotations":{"`+meshv1alpha1.ActionAnnotation+`":"`+string(action)+`"}}}`))
	if err := cl.Client.Patch(context.Background(), r, patch); err != nil {
		t.Fatal(err)
	}
}
