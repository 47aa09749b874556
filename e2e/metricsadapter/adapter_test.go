package metricsadapter_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/metrics/pkg/client/external_metrics"
	"k8s.io/utils/ptr"

	"github.com/sluice-mesh/sluice/e2e/metricsadapter"
	"github.com/sluice-mesh/sluice/e2e/stack"
)

const (
	ns     = "default"
	metric = "queue_depth"
	// perPod is the HPA's AverageValue target: desired replicas = ceil(value / perPod).
	perPod = 10
)

// TestClientReadsValues checks the wire format with the client the HPA controller uses, no
// cluster needed.
func TestClientReadsValues(t *testing.T) {
	srv := httptest.NewTLSServer(metricsadapter.Handler(metricsadapter.Options{
		Metrics: []string{metric},
		Values: func(namespace, name string, sel labels.Selector) (resource.Quantity, bool) {
			if namespace != ns || name != metric || sel.String() != "app=demo" {
				return resource.Quantity{}, false
			}
			return resource.MustParse("25"), true
		},
	}))
	defer srv.Close()
	c, err := external_metrics.NewForConfig(&rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.NamespacedMetrics(ns).List(metric, labels.SelectorFromSet(labels.Set{"app": "demo"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Value.Cmp(resource.MustParse("25")) != 0 || list.Items[0].MetricLabels["app"] != "demo" {
		t.Fatalf("got %+v; want one value 25 labelled app=demo", list.Items)
	}
	list, err = c.NamespacedMetrics("other").List(metric, labels.Everything())
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("unknown series: %+v, %v; want an empty list", list, err)
	}
}

// TestHPAScalesOnExternalMetric runs kube-controller-manager's HorizontalPodAutoscaler
// controller against an External metric the test sets: 1 -> 3 -> 1 replicas of the demo app.
func TestHPAScalesOnExternalMetric(t *testing.T) {
	begin := time.Now()
	s := stack.StartForTest(t, stack.Options{HPA: &stack.HPA{}})
	t.Logf("timing: stack with the HPA controller up in %v", time.Since(begin).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var depth atomic.Int64 // the metric's value: the test's "load"
	registered := time.Now()
	a := metricsadapter.StartForTest(t, s, metricsadapter.Options{
		Metrics: []string{metric},
		Values: func(namespace, name string, sel labels.Selector) (resource.Quantity, bool) {
			if namespace != ns || name != metric || !sel.Matches(labels.Set{"app": "demo"}) {
				return resource.Quantity{}, false
			}
			return *resource.NewQuantity(depth.Load(), resource.DecimalSI), true
		},
	})
	t.Logf("timing: adapter registered and its APIService Available in %v (%s)", time.Since(registered).Round(time.Millisecond), a.URL)

	c := s.Client
	// Discovery through the aggregator, as `kubectl get --raw /apis/external.metrics.k8s.io/v1beta1`.
	resources, err := c.Discovery().ServerResourcesForGroupVersion(metricsadapter.Group + "/" + metricsadapter.Version)
	if err != nil || len(resources.APIResources) != 1 || resources.APIResources[0].Name != metric {
		t.Fatalf("discovery of %s: %+v, %v; want %s", metricsadapter.APIServiceName, resources, err, metric)
	}
	if _, err := c.AppsV1().Deployments(ns).Create(ctx, stack.DemoDeployment(ns, "v1", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, ctx, c, 1)

	depth.Store(3 * perPod)
	start := time.Now()
	if _, err := c.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, demoHPA(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	decided, ready := waitReplicas(t, ctx, c, 3)
	t.Logf("timing: scale 1 -> 3 (metric %d, target %d per pod): HPA set replicas after %v, 3 pods ready after %v",
		3*perPod, perPod, decided.Sub(start).Round(time.Millisecond), ready.Sub(start).Round(time.Millisecond))

	depth.Store(perPod / 2)
	start = time.Now()
	decided, ready = waitReplicas(t, ctx, c, 1)
	t.Logf("timing: scale 3 -> 1 (metric %d): HPA set replicas after %v, 2 pods gone after %v",
		perPod/2, decided.Sub(start).Round(time.Millisecond), ready.Sub(start).Round(time.Millisecond))

	hpa, err := c.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "demo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(hpa.Status.CurrentMetrics) != 1 || hpa.Status.CurrentMetrics[0].External == nil {
		t.Fatalf("HPA status metrics %+v; want the external metric", hpa.Status.CurrentMetrics)
	}
	t.Logf("HPA status: desired %d, current metric %s per pod; the adapter served %d queries",
		hpa.Status.DesiredReplicas, hpa.Status.CurrentMetrics[0].External.Current.AverageValue, a.Queries())
}

// demoHPA scales the demo Deployment on queue_depth{app="demo"}, perPod per replica.
func demoHPA() *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "demo"},
			MinReplicas:    ptr.To[int32](1),
			MaxReplicas:    5,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ExternalMetricSourceType,
				External: &autoscalingv2.ExternalMetricSource{
					Metric: autoscalingv2.MetricIdentifier{
						Name:     metric,
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "demo"}},
					},
					Target: autoscalingv2.MetricTarget{
						Type:         autoscalingv2.AverageValueMetricType,
						AverageValue: resource.NewQuantity(perPod, resource.DecimalSI),
					},
				},
			}},
		},
	}
}

// waitReplicas waits until the Deployment wants n replicas and exactly n of its pods exist, all
// ready; it returns when each happened.
func waitReplicas(t *testing.T, ctx context.Context, c kubernetes.Interface, n int32) (decided, settled time.Time) {
	t.Helper()
	state := ""
	for {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, "demo", metav1.GetOptions{})
		if err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas == n {
			if decided.IsZero() {
				decided = time.Now()
			}
			pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=demo"})
			if err == nil {
				ready := 0
				for _, p := range pods.Items {
					for _, cond := range p.Status.Conditions {
						if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue && p.DeletionTimestamp == nil {
							ready++
						}
					}
				}
				if len(pods.Items) == int(n) && ready == int(n) {
					return decided, time.Now()
				}
				state = fmt.Sprintf("replicas %d, %d pods, %d ready", n, len(pods.Items), ready)
			}
		} else if err == nil {
			state = fmt.Sprintf("replicas %d", ptr.Deref(d.Spec.Replicas, -1))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d ready replicas (%s): %v\n%s", n, state, ctx.Err(), hpaState(c))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// hpaState is the HPA's status and conditions, for failure messages.
func hpaState(c kubernetes.Interface) string {
	hpa, err := c.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(context.Background(), "demo", metav1.GetOptions{})
	if err != nil {
		return "HPA: " + err.Error()
	}
	out := fmt.Sprintf("HPA: current %d desired %d", hpa.Status.CurrentReplicas, hpa.Status.DesiredReplicas)
	for _, cond := range hpa.Status.Conditions {
		out += fmt.Sprintf("\n  %s=%s %s: %s", cond.Type, cond.Status, cond.Reason, cond.Message)
	}
	return out
}
