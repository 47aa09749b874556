package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	sluicescheme "github.com/sluice-mesh/sluice/internal/scheme"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// serviceRange is the API server's Service IP range: envtest's default /24 runs out at about
// 80 Rollouts (3 ClusterIPs each), long before anything this harness measures.
const serviceRange = "10.96.0.0/12"

// startAPIServer starts kube-apiserver and etcd with Sluice's CRDs and the Gateway API CRDs, as
// internal/testenv does, but with a Service range that holds tens of thousands of Services.
func startAPIServer() (*envtest.Environment, *rest.Config, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: the scale harness needs kube-apiserver and etcd built from Go modules; run: %s", testenv.BuildHint)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, nil, fmt.Errorf("%s missing in KUBEBUILDER_ASSETS=%s; run: %s", bin, assets, testenv.BuildHint)
		}
	}
	gw, err := testenv.GatewayAPICRDs()
	if err != nil {
		return nil, nil, err
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(testenv.RepoRoot(), "config", "crd", "bases"), gw},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                sluicescheme.New(),
	}
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", serviceRange)
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, nil, fmt.Errorf("starting the API server: %w", err)
	}
	// The harness creates tens of thousands of objects: no client-side rate limit (the
	// manager keeps its own, which is what is measured).
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0
	return env, cfg, nil
}

// names of the harness's objects.
func namespace(i int) string        { return fmt.Sprintf("scale-%02d", i) }
func rolloutName(i int) string      { return fmt.Sprintf("app-%05d", i) }
func unrelatedName(i int) string    { return fmt.Sprintf("other-%05d", i) }
func nsOf(i, namespaces int) string { return namespace(i % namespaces) }

// createNamespaces creates the namespaces the objects are spread across.
func createNamespaces(ctx context.Context, c client.Client, n int) error {
	for i := range n {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace(i)}}); err != nil {
			return err
		}
	}
	return nil
}

// createRollouts creates, for each of n Rollouts, its target Deployment (image v1), a HealthGate
// (not referenced by the steps: the wave needs no Prometheus) and the Rollout: a canary through
// a generated HTTPRoute with the data-plane probe disabled, setWeight 50 → pause → 100.
func createRollouts(ctx context.Context, c client.Client, cfg config) error {
	return parallel(ctx, cfg.Rollouts, cfg.Workers, func(i int) error {
		ns, name := nsOf(i, cfg.Namespaces), rolloutName(i)
		for _, obj := range []client.Object{
			deployment(ns, name, cfg.Replicas, "demo:v1"),
			healthGate(ns, name),
			rolloutObject(ns, name, cfg.Pause),
		} {
			if err := c.Create(ctx, obj); err != nil {
				return fmt.Errorf("creating %T %s/%s: %w", obj, ns, name, err)
			}
		}
		return nil
	})
}

// createUnrelated creates n Deployment/Service pairs no Rollout refers to.
func createUnrelated(ctx context.Context, c client.Client, cfg config) error {
	return parallel(ctx, cfg.Unrelated, cfg.Workers, func(i int) error {
		ns, name := nsOf(i, cfg.Namespaces), unrelatedName(i)
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		}}
		for _, obj := range []client.Object{deployment(ns, name, 1, "other:v1"), svc} {
			if err := c.Create(ctx, obj); err != nil {
				return fmt.Errorf("creating %T %s/%s: %w", obj, ns, name, err)
			}
		}
		return nil
	})
}

// setImages changes the image of the first n targets at once: a release wave.
func setImages(ctx context.Context, c client.Client, cfg config, n int, image string) error {
	return parallel(ctx, n, cfg.Workers, func(i int) error {
		key := client.ObjectKey{Namespace: nsOf(i, cfg.Namespaces), Name: rolloutName(i)}
		// The manager scales the same Deployment: retry on conflict.
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			d := &appsv1.Deployment{}
			if err := c.Get(ctx, key, d); err != nil {
				return err
			}
			d.Spec.Template.Spec.Containers[0].Image = image
			return c.Update(ctx, d)
		})
	})
}

func deployment(ns, name string, replicas int32, image string) *appsv1.Deployment {
	ctr := corev1.Container{Name: "app", Image: image, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(replicas),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{ctr}},
		},
	}}
}

func healthGate(ns, name string) *meshv1alpha1.HealthGate {
	return &meshv1alpha1.HealthGate{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: meshv1alpha1.HealthGateSpec{
		// Never queried: no Rollout step analyses and the gate has no target.
		Prometheus: meshv1alpha1.PrometheusSource{Addresses: []string{"http://127.0.0.1:9"}},
		Metrics: []meshv1alpha1.HealthMetric{{
			Name: "success-rate", Query: `sum(rate(http_requests_total{code!~"5.."}[{{ .Window }}])) / sum(rate(http_requests_total[{{ .Window }}]))`,
			ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.99)},
		}},
	}}
}

func rolloutObject(ns, name string, pause time.Duration) *meshv1alpha1.Rollout {
	return &meshv1alpha1.Rollout{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: meshv1alpha1.RolloutSpec{
		TargetRef: meshv1alpha1.TargetReference{Name: name},
		Service:   meshv1alpha1.ServiceSpec{Port: 80, TargetPort: ptr.To(intstr.FromString("http"))},
		TrafficRouting: meshv1alpha1.TrafficRouting{GatewayAPI: meshv1alpha1.GatewayAPIRouting{
			ParentRefs: []meshv1alpha1.ParentReference{{Name: "edge", Namespace: "gateways"}},
			Hostnames:  []meshv1alpha1.Hostname{meshv1alpha1.Hostname(name + ".example.com")},
			Probe:      &meshv1alpha1.DataPlaneProbe{Mode: meshv1alpha1.ProbeDisabled},
		}},
		Strategy: meshv1alpha1.RolloutStrategy{Canary: &meshv1alpha1.CanaryStrategy{
			Steps: []meshv1alpha1.CanaryStep{
				{SetWeight: ptr.To(int32(50))},
				{Pause: &meshv1alpha1.PauseStep{Duration: &metav1.Duration{Duration: pause}}},
				{SetWeight: ptr.To(int32(100))},
			},
		}},
	}}
}

// parallel runs f(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, min(workers, n)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					cancel(err)
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}
