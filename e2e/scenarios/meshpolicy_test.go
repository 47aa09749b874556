package scenarios

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/cluster"
	"github.com/sluice-mesh/sluice/e2e/load"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// A MeshPolicy on the demo Service changes real traffic through Traefik. A third pod joins the
// stable slot's endpoints but refuses connections on the Service's port (its process listens
// on another one): Traefik answers the requests it sends there 502. Retries (provider auto:
// the stack has Traefik's CRDs and no mesh; retryOn defaults to connect-failure) send them on
// to a healthy pod; a rate limit turns what exceeds it into 429; deleting the policy brings
// the raw behaviour back and its Middlewares go.
func TestMeshPolicyRetriesAndRateLimitThroughTraefik(t *testing.T) {
	ctx := context.Background()
	ns, err := cl.Namespace(ctx, "policy")
	if err != nil {
		t.Fatal(err)
	}
	app(t, ns)
	if err := cl.Client.Create(ctx, canary(ns)); err != nil {
		t.Fatal(err)
	}
	r := waitRollout(t, ns, "Healthy on v1", 60*time.Second, healthy)
	if err := cl.Client.Create(ctx, refusingPod(ns, r)); err != nil {
		t.Fatal(err)
	}
	g := traffic(t, ns)

	// Without a policy about a third of the requests fail (round robin over 3 endpoints).
	raw, _ := settle(t, g, 120, func(c load.Counts) bool { return c.ByCode[502]+c.Errors > 0 })
	if failed := raw.ByCode[502] + raw.Errors; failed < raw.Total/6 {
		t.Fatalf("without a policy only %d of %d requests failed: %+v; the refusing endpoint is not in use", failed, raw.Total, raw)
	}

	p := &meshv1alpha1.MeshPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: meshv1alpha1.MeshPolicySpec{
			TargetRefs: []meshv1alpha1.PolicyTargetReference{{Kind: "Service", Name: "shop"}},
			Retries:    &meshv1alpha1.Retries{Attempts: 3},
		},
	}
	if err := cl.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	p = waitPolicyReady(t, ns, "retries applied")
	if p.Status.Provider != meshv1alpha1.ProviderTraefik {
		t.Errorf("provider auto chose %q, want traefik", p.Status.Provider)
	}
	// Round robin hands a retry the next endpoint; only when other requests take the healthy
	// ones in between can a retry meet the refusing pod again, four times in a row for one
	// request to fail. One in the window is tolerated (CI load), against about 50 without.
	retried, _ := settle(t, g, 160, func(c load.Counts) bool { return c.ByCode[502]+c.Errors == 0 })
	if failed := retried.Total - retried.ByCode[200]; failed > 1 {
		t.Errorf("with retries %d of %d requests failed: %+v", failed, retried.Total, retried)
	}
	t.Logf("refused connections: %d of %d failed without a policy, %d of %d with retries", raw.ByCode[502]+raw.Errors, raw.Total, retried.Total-retried.ByCode[200], retried.Total)

	// Rate limit: 10 per second (burst 10) under 40 per second of load.
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"rateLimit":{"requestsPerSecond":10,"burst":10}}}`))
	if err := cl.Client.Patch(ctx, p, patch); err != nil {
		t.Fatal(err)
	}
	waitPolicyReady(t, ns, "rate limit applied")
	limited, took := settle(t, g, 200, func(c load.Counts) bool { return c.ByCode[429] > c.Total/2 })
	// The bucket starts full (10) and refills at 10/s: ok ≈ 10 + 10/s × the window.
	if ok, want := float64(limited.ByCode[200]), 10*took.Seconds(); ok > want+15 || ok < want-10 {
		t.Errorf("with a limit of 10/s, %d answered 200 in %s (want about %.0f): %+v", limited.ByCode[200], took, want, limited)
	}
	t.Logf("rate limit 10/s: %d answered 200 and %d got 429 in %s", limited.ByCode[200], limited.ByCode[429], took.Round(time.Millisecond))
	if limited.ByCode[502]+limited.Errors != 0 {
		t.Errorf("with retries and a rate limit some requests still failed: %+v", limited)
	}

	// Deleting the policy takes it out of the route: no more 429, and refused connections
	// fail again.
	if err := cl.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	after, _ := settle(t, g, 120, func(c load.Counts) bool { return c.ByCode[429] == 0 })
	if after.ByCode[502]+after.Errors == 0 {
		t.Errorf("after the policy was deleted no request failed: %+v (still retried?)", after)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return middlewares(t, ns) == 0, nil
	})
	if err != nil {
		t.Errorf("the policy's Middlewares outlived it")
	}
}

// waitPolicyReady waits for MeshPolicy ns/shop to be Ready at its generation.
func waitPolicyReady(t *testing.T, ns, what string) *meshv1alpha1.MeshPolicy {
	t.Helper()
	p := &meshv1alpha1.MeshPolicy{}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := cl.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, p); err != nil {
			return false, nil
		}
		return p.Status.ObservedGeneration == p.Generation && meta.IsStatusConditionTrue(p.Status.Conditions, meshv1alpha1.ConditionReady), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: status %+v", what, p.Status)
	}
	return p
}

// settle waits until a window of n/4 requests satisfies cond (the data plane picks a change up
// a moment after the API accepts it), then returns the next n requests, which are judged, and
// how long they took.
func settle(t *testing.T, g *load.Generator, n int, cond func(load.Counts) bool) (load.Counts, time.Duration) {
	t.Helper()
	var window load.Counts
	start := g.Snapshot()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		window = g.Snapshot().Since(start)
		if window.Total < n/4 {
			return false, nil
		}
		if cond(window) {
			return true, nil
		}
		start = g.Snapshot() // a window that failed: start the next one
		return false, nil
	})
	if err != nil {
		t.Fatalf("the data plane did not follow: last window %+v", window)
	}
	start, began := g.Snapshot(), time.Now()
	judged := waitTraffic(t, g, "a judged window", func(c load.Counts) bool { return c.Since(start).Total >= n }).Since(start)
	return judged, time.Since(began)
}

// refusingPod joins the Rollout's stable slot (its Service selects the rollout and slot labels)
// and is Ready (probed on 9090, where it listens), but nothing listens on its port "http"
// (8080), the one the slot Service's EndpointSlice publishes: every connection is refused.
func refusingPod(ns string, r *meshv1alpha1.Rollout) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "refusing", Namespace: ns, Labels: map[string]string{
			rollout.LabelRollout: r.Name, rollout.LabelSlot: string(r.Status.StableSlot),
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: cluster.DemoImage, Args: []string{"--version=refusing", "--listen=:9090"},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
			ReadinessProbe: &corev1.Probe{
				ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromInt32(9090)}},
				PeriodSeconds: 1,
			},
		}}},
	}
}

// Generated objects carry the policy as controlling owner, so Kubernetes' garbage collector
// (the real one, in kube-controller-manager) deletes them with the policy even when Sluice is
// not there to: here the manager is down and the policy's finalizer removed by hand.
func TestMeshPolicyObjectsAreGarbageCollected(t *testing.T) {
	ctx := context.Background()
	ns, err := cl.Namespace(ctx, "policygc")
	if err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "solo", Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "solo"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	p := &meshv1alpha1.MeshPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns},
		Spec: meshv1alpha1.MeshPolicySpec{
			TargetRefs: []meshv1alpha1.PolicyTargetReference{{Kind: "Service", Name: "solo"}},
			RateLimit:  &meshv1alpha1.RateLimit{RequestsPerSecond: 5},
		},
	}
	for _, o := range []client.Object{svc, p} {
		if err := cl.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	p = waitPolicyReady(t, ns, "the rate limit applied")
	if n := middlewares(t, ns); n != 1 {
		t.Fatalf("%d Middlewares, want 1: status %+v", n, p.Status)
	}

	if err := cl.Kill(cluster.Manager); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := cl.Restart(ctx, cluster.Manager); err != nil {
			t.Fatal(err)
		}
	}()
	patch := client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"finalizers":null}}`))
	if err := cl.Client.Patch(ctx, p, patch); err != nil {
		t.Fatal(err)
	}
	if err := cl.Client.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		return middlewares(t, ns) == 0, nil
	})
	if err != nil {
		t.Errorf("the garbage collector left %d Middlewares of the deleted policy", middlewares(t, ns))
	}
	t.Logf("the garbage collector deleted the policy's Middleware %s after the policy (manager down)", time.Since(deleted).Round(time.Millisecond))
}

// middlewares counts the Traefik Middlewares in ns.
func middlewares(t *testing.T, ns string) int {
	t.Helper()
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: "traefik.io", Version: "v1alpha1", Kind: "MiddlewareList"})
	if err := cl.Client.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}
