package controllers_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/internal/traffic/gatewayapi"
)

// stubGates is a scriptable GateChecker (tests only): the verdict comes from a function of the
// Rollout, and every check is counted.
type stubGates struct {
	mu      sync.Mutex
	verdict func(*meshv1alpha1.Rollout) meshv1alpha1.Verdict
	checks  []meshv1alpha1.Verdict
}

func (g *stubGates) Check(_ context.Context, r *meshv1alpha1.Rollout) rollout.Check {
	g.mu.Lock()
	defer g.mu.Unlock()
	v := meshv1alpha1.VerdictPass
	if g.verdict != nil {
		v = g.verdict(r)
	}
	g.checks = append(g.checks, v)
	return rollout.Check{Verdict: v, Message: fmt.Sprintf("stub gate: %s at %d%%", v, r.Status.CanaryWeight),
		Gates: []meshv1alpha1.GateMetricVerdict{{Gate: "stub", MetricVerdict: meshv1alpha1.MetricVerdict{Name: "m", Verdict: v}}}}
}

// Deadline implements controllers.GateChecker.
func (g *stubGates) Deadline(context.Context, *meshv1alpha1.Rollout) time.Duration {
	return 10 * time.Second
}

func (g *stubGates) set(f func(*meshv1alpha1.Rollout) meshv1alpha1.Verdict) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.verdict = f
}

func (g *stubGates) count(v meshv1alpha1.Verdict) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, c := range g.checks {
		if c == v {
			n++
		}
	}
	return n
}

// manager runs the Rollout controller until stop is called; it can be stopped and started
// again, like a crashing operator pod.
type manager struct {
	t      testing.TB
	gates  *stubGates
	stopFn func() error
}

// startManager runs a Rollout manager that sees only namespace ns: tests share one API server,
// and a Rollout another test left behind must not be reconciled here.
func startManager(t testing.TB, ns string, g *stubGates) *manager {
	t.Helper()
	mgr := newRolloutManager(t, func(ctrl.Manager) controllers.GateChecker { return g }, ns)
	m := &manager{t: t, gates: g, stopFn: testenv.RunManager(mgr)}
	t.Cleanup(m.stop)
	return m
}

// newRolloutManager is a manager with the Rollout controller, whose gate checker gates makes,
// watching the given namespaces (all when none is given).
func newRolloutManager(t testing.TB, gates func(ctrl.Manager) controllers.GateChecker, namespaces ...string) ctrl.Manager {
	t.Helper()
	return newRolloutManagerWith(t, managerSetup{}, gates, namespaces...)
}

// managerSetup changes how a test manager talks to the API server.
type managerSetup struct {
	// config replaces env.Config (e.g. with a transport that counts requests).
	config *rest.Config
	// wrap wraps the reconciler's client (e.g. with an interceptor that fails or stalls writes).
	wrap func(client.Client) client.Client
	// noSecrets runs the manager with --track-secrets=false.
	noSecrets bool
}

func newRolloutManagerWith(t testing.TB, setup managerSetup, gates func(ctrl.Manager) controllers.GateChecker, namespaces ...string) ctrl.Manager {
	t.Helper()
	opts := ctrl.Options{
		Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Cache: controllers.CacheOptions(),
		// Each manager registers the same controller name; the registry is per process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	if len(namespaces) > 0 {
		opts.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	cfg := managerConfig(t)
	if setup.config != nil {
		cfg = setup.config
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := controllers.NewRolloutReconciler(mgr, gates(mgr), 1)
	r.TrackSecrets = !setup.noSecrets
	if setup.wrap != nil {
		r.Client = setup.wrap(r.Client)
		r.Router = gatewayapi.New(r.Client).WithGateways(mgr.GetAPIReader())
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	return mgr
}

func (m *manager) stop() {
	if m.stopFn == nil {
		return
	}
	if err := m.stopFn(); err != nil {
		m.t.Errorf("manager: %v", err)
	}
	m.stopFn = nil
}

// cluster plays the kubelet and the gateway for one namespace: Deployments become ready
// (unless held), HTTPRoutes are accepted by every parent at their current generation. It
// records every route split it sees, with the readiness of the slots at that moment.
type cluster struct {
	ns       string
	mu       sync.Mutex
	unready  map[string]bool // Deployment names kept unready
	held     bool            // the gateway does not accept route changes
	linger   bool            // replaced slot pods stay (and stay published) until released
	timeline []sample
	stop     context.CancelFunc
	done     chan struct{}
}

// sample is one observation of the route and the slots.
type sample struct {
	weights map[string]int32 // backend Service → weight, main rule
	ready   map[string]bool  // slot Service name → its Deployment ready
}

func newCluster(t testing.TB, prefix string) *cluster {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Pods need the namespace's default ServiceAccount (no controller-manager creates it here).
	if err := env.Client.Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: ns.Name}}); err != nil {
		t.Fatal(err)
	}
	c := &cluster{ns: ns.Name, unready: map[string]bool{}, stop: cancel, done: make(chan struct{})}
	go c.run(ctx)
	t.Cleanup(func() { c.stop(); <-c.done })
	return c
}

func (c *cluster) hold(deployment string, unready bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unready[deployment] = unready
}

// lingerPods keeps (or stops keeping) the pods a slot replaces, and their endpoints in its
// Service's EndpointSlice, as after a kube-apiserver restart the EndpointSlice controller lags
// for tens of seconds behind pod deletions.
func (c *cluster) lingerPods(linger bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.linger = linger
}

// holdRoutes stops (or resumes) the gateway's acceptance of route changes: a new generation
// stays unaccepted, as when the data plane lags or is down.
func (c *cluster) holdRoutes(held bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.held = held
}

func (c *cluster) run(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			c.step(ctx)
		}
	}
}

func (c *cluster) step(ctx context.Context) {
	var deps appsv1.DeploymentList
	if err := env.Client.List(ctx, &deps, client.InNamespace(c.ns)); err != nil {
		return
	}
	ready := map[string]bool{}
	for i := range deps.Items {
		d := &deps.Items[i]
		n := ptr.Deref(d.Spec.Replicas, 1)
		c.mu.Lock()
		held := c.unready[d.Name]
		c.mu.Unlock()
		want := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
		if held {
			want.ReadyReplicas, want.AvailableReplicas = 0, 0
		}
		if d.Status.ObservedGeneration != want.ObservedGeneration || d.Status.Replicas != want.Replicas || d.Status.ReadyReplicas != want.ReadyReplicas ||
			d.Status.UpdatedReplicas != want.UpdatedReplicas || d.Status.AvailableReplicas != want.AvailableReplicas {
			d.Status = want
			_ = env.Client.Status().Update(ctx, d)
		}
		if svc := d.Labels[rollout.LabelSlot]; svc != "" {
			ready[d.Name] = !held && n > 0 && d.Status.ObservedGeneration == d.Generation
			// Publish the slot's endpoints as the EndpointSlice controller would (the slot
			// Service is named like the slot Deployment in these tests).
			c.runSlot(ctx, d, map[bool]int32{true: n, false: 0}[ready[d.Name]])
		} else if !held && n > 0 {
			// A target Deployment: its pods behind the apex Service (named like it), which
			// selects them once a deleted Rollout handed traffic back.
			c.runTarget(ctx, d, n)
			c.publishPods(ctx, d.Name, d.Name, n)
		}
	}
	c.reapOrphans(ctx, deps.Items)
	var routes gatewayv1.HTTPRouteList
	if err := env.Client.List(ctx, &routes, client.InNamespace(c.ns)); err != nil {
		return
	}
	c.mu.Lock()
	held := c.held
	c.mu.Unlock()
	for i := range routes.Items {
		rt := &routes.Items[i]
		if !held {
			c.accept(ctx, rt)
		}
		c.record(rt, ready)
	}
}

// accept sets every parent Accepted=True at the route's generation.
func (c *cluster) accept(ctx context.Context, rt *gatewayv1.HTTPRoute) {
	changed := len(rt.Status.Parents) != len(rt.Spec.ParentRefs)
	var parents []gatewayv1.RouteParentStatus
	for _, p := range rt.Spec.ParentRefs {
		cond := metav1.Condition{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: rt.Generation, LastTransitionTime: metav1.Now()}
		parents = append(parents, gatewayv1.RouteParentStatus{ParentRef: p, ControllerName: "example.com/test-gateway", Conditions: []metav1.Condition{cond}})
	}
	for _, p := range rt.Status.Parents {
		if c := meta.FindStatusCondition(p.Conditions, "Accepted"); c == nil || c.ObservedGeneration != rt.Generation {
			changed = true
		}
	}
	if changed {
		rt.Status.Parents = parents
		_ = env.Client.Status().Update(ctx, rt)
	}
}

func (c *cluster) record(rt *gatewayv1.HTTPRoute, deployReady map[string]bool) {
	s := sample{weights: map[string]int32{}, ready: map[string]bool{}}
	for _, rule := range rt.Spec.Rules {
		if rule.Name == nil || string(*rule.Name) != "sluice-split" {
			continue
		}
		for _, b := range rule.BackendRefs {
			s.weights[string(b.Name)] = ptr.Deref(b.Weight, 1)
		}
	}
	for dep, ok := range deployReady {
		s.ready[dep] = ok
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.timeline); n == 0 || fmt.Sprint(c.timeline[n-1].weights) != fmt.Sprint(s.weights) {
		c.timeline = append(c.timeline, s)
	}
}

// splits are the distinct main-rule splits the route went through, as "svc=w,svc=w".
func (c *cluster) splits() []map[string]int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]int32
	for _, s := range c.timeline {
		out = append(out, s.weights)
	}
	return out
}

// target creates the Deployment the user owns, at demo:v1, with 3 replicas.
func (c *cluster) target(t testing.TB, name string) {
	t.Helper()
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.ns}, Spec: appsv1.DeploymentSpec{
		Replicas: ptr.To(int32(3)),
		Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "demo:v1", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
		},
	}}
	if err := env.Client.Create(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

// setImage changes the target's image: a new revision (retried on conflict, since the
// controller scales the same Deployment).
func (c *cluster) setImage(t testing.TB, name, image string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := &appsv1.Deployment{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: name}, d); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = image
		return env.Client.Update(context.Background(), d)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitRollout polls the Rollout until cond holds (30 s).
func (c *cluster) waitRollout(t testing.TB, name, what string, cond func(*meshv1alpha1.Rollout) bool) *meshv1alpha1.Rollout {
	t.Helper()
	var last *meshv1alpha1.Rollout
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		r := &meshv1alpha1.Rollout{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: c.ns, Name: name}, r); err != nil {
			return false, nil
		}
		last = r
		return cond(r), nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; last status: phase %s step %v weight %d conditions %+v", what, err, last.Status.Phase, last.Status.CurrentStep, last.Status.CanaryWeight, last.Status.Conditions)
	}
	return last
}

func (c *cluster) route(t testing.TB, name string) *gatewayv1.HTTPRoute {
	t.Helper()
	rt := &gatewayv1.HTTPRoute{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: name}, rt); err != nil {
		t.Fatal(err)
	}
	return rt
}

func (c *cluster) deployment(t testing.TB, name string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: name}, d); err != nil {
		t.Fatal(err)
	}
	return d
}

func condIs(r *meshv1alpha1.Rollout, typ, reason string) bool {
	c := meta.FindStatusCondition(r.Status.Conditions, typ)
	return c != nil && c.Status == metav1.ConditionTrue && (reason == "" || c.Reason == reason)
}

// pollFor polls cond every 20ms for at most d.
func pollFor(d time.Duration, cond func() bool) error {
	return wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, d, true, func(context.Context) (bool, error) { return cond(), nil })
}

// rolloutNow reads the Rollout as it is now.
func (c *cluster) rolloutNow(t testing.TB, name string) *meshv1alpha1.Rollout {
	t.Helper()
	r := &meshv1alpha1.Rollout{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: name}, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// reapOrphans deletes the pods of slot Deployments that are gone (the garbage collector's job).
func (c *cluster) reapOrphans(ctx context.Context, deps []appsv1.Deployment) {
	live := map[string]bool{}
	for _, d := range deps {
		live[d.Labels[rollout.LabelRollout]+"/"+d.Labels[rollout.LabelSlot]] = true
	}
	var pods corev1.PodList
	if err := env.Client.List(ctx, &pods, client.InNamespace(c.ns), client.HasLabels{rollout.LabelSlot}); err != nil {
		return
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if !live[p.Labels[rollout.LabelRollout]+"/"+p.Labels[rollout.LabelSlot]] {
			_ = env.Client.Delete(ctx, p, client.GracePeriodSeconds(0))
		}
	}
}

// targetHash is the pod-template-hash of the target's pods in these tests.
const targetHash = "7d4b9c6f8"

// runTarget makes the n pods of a target Deployment exist (named and labelled as its
// ReplicaSet would: <deployment>-<hash>-<i>, the template's labels plus pod-template-hash).
func (c *cluster) runTarget(ctx context.Context, d *appsv1.Deployment, n int32) {
	for i := range n {
		l := map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: targetHash}
		for k, v := range d.Spec.Template.Labels {
			l[k] = v
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%s-%05d", d.Name, targetHash, i), Namespace: c.ns, Labels: l},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: d.Spec.Template.Spec.Containers[0].Image}}}}
		_ = env.Client.Create(ctx, p) // AlreadyExists after the first time
	}
}

// publishPods makes EndpointSlice <svc>-pods list n ready endpoints of Deployment dep's pods
// (named like its ReplicaSet's pods) for Service svc.
func (c *cluster) publishPods(ctx context.Context, svc, dep string, n int32) {
	sl := &discoveryv1.EndpointSlice{}
	key := client.ObjectKey{Namespace: c.ns, Name: svc + "-pods"}
	err := env.Client.Get(ctx, key, sl)
	if err == nil && int32(len(sl.Endpoints)) == n {
		return
	}
	eps := make([]discoveryv1.Endpoint, 0, n)
	for i := range n {
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.0.1.%d", i+1)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: c.ns, Name: fmt.Sprintf("%s-%s-%05d", dep, targetHash, i)}})
	}
	if apierrors.IsNotFound(err) {
		sl = &discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: c.ns, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps}
		_ = env.Client.Create(ctx, sl)
		return
	}
	if err == nil {
		sl.Endpoints = eps
		_ = env.Client.Update(ctx, sl)
	}
}

// runSlot plays the kubelet and the EndpointSlice controller for a slot Deployment: n ready
// pods of its current template (named <deployment>-<revision>-<i>, labelled like the template),
// published in EndpointSlice <svc>-sim of its Service (named like the Deployment in these
// tests). Pods of an older template are deleted, unless lingering.
func (c *cluster) runSlot(ctx context.Context, d *appsv1.Deployment, n int32) {
	rev := d.Spec.Template.Labels[rollout.LabelRevision]
	want := map[string]bool{}
	for i := range n {
		want[fmt.Sprintf("%s-%s-%d", d.Name, rev, i)] = true
	}
	var pods corev1.PodList
	if err := env.Client.List(ctx, &pods, client.InNamespace(c.ns), client.MatchingLabels{rollout.LabelRollout: d.Labels[rollout.LabelRollout], rollout.LabelSlot: d.Labels[rollout.LabelSlot]}); err != nil {
		return
	}
	c.mu.Lock()
	linger := c.linger
	c.mu.Unlock()
	var published []string
	for i := range pods.Items {
		p := &pods.Items[i]
		switch {
		case want[p.Name]:
			delete(want, p.Name)
			published = append(published, p.Name)
		case linger:
			published = append(published, p.Name) // replaced, but still listed as ready
		default:
			_ = env.Client.Delete(ctx, p, client.GracePeriodSeconds(0))
		}
	}
	for name := range want {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: c.ns, Labels: d.Spec.Template.Labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: d.Spec.Template.Spec.Containers[0].Image}}}}
		if err := env.Client.Create(ctx, p); err == nil {
			published = append(published, name)
		}
	}
	sort.Strings(published)
	c.publish(ctx, d.Name, d.Labels[rollout.LabelRollout], published)
}

// publish makes EndpointSlice <svc>-sim list the given pods as ready endpoints of Service svc.
func (c *cluster) publish(ctx context.Context, svc, rolloutName string, pods []string) {
	sl := &discoveryv1.EndpointSlice{}
	key := client.ObjectKey{Namespace: c.ns, Name: svc + "-sim"}
	err := env.Client.Get(ctx, key, sl)
	eps := make([]discoveryv1.Endpoint, 0, len(pods))
	for i, name := range pods {
		eps = append(eps, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.0.0.%d", i+1)}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: c.ns, Name: name}})
	}
	if err == nil && equality.Semantic.DeepEqual(sl.Endpoints, eps) {
		return
	}
	if apierrors.IsNotFound(err) {
		// Labelled like the EndpointSlice controller does: the Service's labels (the manager
		// caches only Sluice's slices) and the Service name.
		sl = &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: c.ns, Labels: map[string]string{
				discoveryv1.LabelServiceName: svc, "app.kubernetes.io/managed-by": "sluice", rollout.LabelRollout: rolloutName}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: eps,
		}
		_ = env.Client.Create(ctx, sl)
		return
	}
	if err == nil {
		sl.Endpoints = eps
		_ = env.Client.Update(ctx, sl)
	}
}
