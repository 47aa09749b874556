package cluster

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/probe"
)

// DemoImage is the image the node agent runs as the demo app.
const DemoImage = "sluice.dev/demo-app:latest"

// DemoApp is the Deployment "shop" of the demo app (2 replicas) at version, with extra args
// (e.g. --error-rate=0.5 for a bad version).
func DemoApp(ns, version string, args ...string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(int32(2)),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "shop"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{
				Name: "app", Image: DemoImage, Args: append([]string{"--version=" + version}, args...),
				Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("http")}}, PeriodSeconds: 1},
			}}},
		},
	}}
}

// SuccessRateGate is HealthGate "success-rate": at least 95% of the canary's requests through
// Traefik succeed, over a 5 s window, read from the cluster's Prometheus.
func (c *Cluster) SuccessRateGate(ns string) *meshv1alpha1.HealthGate {
	return &meshv1alpha1.HealthGate{ObjectMeta: metav1.ObjectMeta{Name: "success-rate", Namespace: ns}, Spec: meshv1alpha1.HealthGateSpec{
		Prometheus: meshv1alpha1.PrometheusSource{Addresses: []string{c.PrometheusURL}},
		DataPlane:  meshv1alpha1.DataPlaneTraefik,
		Metrics: []meshv1alpha1.HealthMetric{{Name: "success-rate", Builtin: meshv1alpha1.BuiltinRequestSuccessRate,
			ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.95)}}},
		Window: &metav1.Duration{Duration: 5 * time.Second},
	}}
}

// DemoRollout releases "shop" through Gateway gateways/edge on host <ns>.example.com:
// 20% → 2 passing checks → 60% → 2 passing checks → promotion; one failed check rolls back.
func DemoRollout(ns string) *meshv1alpha1.Rollout {
	return &meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}, Spec: meshv1alpha1.RolloutSpec{
		TargetRef: meshv1alpha1.TargetReference{Name: "shop"},
		Service:   meshv1alpha1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromString("http"))},
		TrafficRouting: meshv1alpha1.TrafficRouting{GatewayAPI: meshv1alpha1.GatewayAPIRouting{
			ParentRefs: []meshv1alpha1.ParentReference{{Name: "edge", Namespace: "gateways"}},
			Hostnames:  []meshv1alpha1.Hostname{meshv1alpha1.Hostname(DemoHost(ns))},
		}},
		Strategy: meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{
			Steps: []meshv1alpha1.CanaryStep{
				{SetWeight: ptr.To(int32(20))}, {Analysis: &meshv1alpha1.AnalysisStep{Checks: 2}},
				{SetWeight: ptr.To(int32(60))}, {Analysis: &meshv1alpha1.AnalysisStep{Checks: 2}},
			},
			ScaleDownDelay: &metav1.Duration{Duration: 5 * time.Second},
		}},
		Analysis: &meshv1alpha1.RolloutAnalysis{
			Interval: &metav1.Duration{Duration: 2 * time.Second}, FailureLimit: ptr.To(int32(0)), MinSamples: ptr.To(int32(10)),
			HealthGates: []meshv1alpha1.LocalObjectReference{{Name: "success-rate"}},
		},
	}}
}

// DemoHost is the Host header of the demo route in namespace ns.
func DemoHost(ns string) string { return ns + ".example.com" }

// SetVersion changes the demo app's version and args in its Deployment: a new revision.
func (c *Cluster) SetVersion(ctx context.Context, ns, version string, args ...string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := &appsv1.Deployment{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Args = append([]string{"--version=" + version}, args...)
		return c.Client.Update(ctx, d)
	})
}

// WatchWeightZero reports when route ns/shop first carries weight 0 for Service svc after
// carrying more: the moment a rollback reaches the API server. It stops with ctx.
func (c *Cluster) WatchWeightZero(ctx context.Context, ns, svc string) <-chan time.Time {
	out := make(chan time.Time, 1)
	go func() {
		seen := false
		_ = wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			rt := &gatewayv1.HTTPRoute{}
			if c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, rt) != nil {
				return false, nil
			}
			w := BackendWeight(rt, svc)
			if w > 0 {
				seen = true
			}
			if seen && w == 0 {
				out <- time.Now()
				return true, nil
			}
			return false, nil
		})
	}()
	return out
}

// BackendWeight is the weight a route gives Service svc (0 when it does not reference it). The
// data-plane probe's rule is not counted: it takes only Sluice's probe requests.
func BackendWeight(rt *gatewayv1.HTTPRoute, svc string) int32 {
	for _, rule := range rt.Spec.Rules {
		if probe.IsRule(rule) {
			continue
		}
		for _, b := range rule.BackendRefs {
			if string(b.Name) == svc {
				return ptr.Deref(b.Weight, 1)
			}
		}
	}
	return 0
}
