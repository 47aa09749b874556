package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	discoveryv1ac "k8s.io/client-go/applyconfigurations/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/rollout"
	sluicescheme "github.com/sluice-mesh/sluice/internal/scheme"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// fieldManager is the harness's server-side apply identity.
const fieldManager = "sluice-scale-harness"

// fakeCluster plays what a real cluster would do for the objects Sluice writes, as
// controllers/rollout_harness_test.go does, but driven by watches so that it keeps up with
// thousands of objects: the kubelet and the Deployment controller (slot Deployments report
// ready, their pods exist with the template's labels), the EndpointSlice controller (each slot
// Service publishes its pods as ready endpoints) and the gateway (every HTTPRoute is Accepted
// by its parents at its generation).
type fakeCluster struct {
	client client.Client
	apply  kubernetes.Interface
	cache  cache.Cache
	queue  workqueue.TypedRateLimitingInterface[item]

	mu        sync.Mutex
	pods      map[types.NamespacedName][]string // the pods of each slot Deployment
	published map[types.NamespacedName]string   // the endpoints last published, to skip no-ops

	failures atomic.Int64 // requests that failed (a conflict is retried, not counted)
	lastErr  atomic.Value
}

// item is a queued object: a slot Deployment or an HTTPRoute.
type item struct {
	route bool
	key   types.NamespacedName
}

// newFakeCluster caches slot Deployments (by label, like the manager: targets and unrelated
// Deployments are not the harness's business), HTTPRoutes and Rollouts (for the tracker).
func newFakeCluster(cfg *rest.Config, c client.Client) (*fakeCluster, error) {
	slots, err := labels.NewRequirement(rollout.LabelSlot, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	ca, err := cache.New(cfg, cache.Options{
		Scheme:           sluicescheme.New(),
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject:         map[client.Object]cache.ByObject{&appsv1.Deployment{}: {Label: labels.NewSelector().Add(*slots)}},
	})
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &fakeCluster{
		client: c, apply: cs, cache: ca,
		queue:     workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[item]()),
		pods:      map[types.NamespacedName][]string{},
		published: map[types.NamespacedName]string{},
	}, nil
}

// start runs the cache and workers until ctx ends; it returns once the cache has synced.
func (f *fakeCluster) start(ctx context.Context, workers int) error {
	for obj, route := range map[client.Object]bool{&appsv1.Deployment{}: false, &gatewayv1.HTTPRoute{}: true} {
		inf, err := f.cache.GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		enqueue := func(o any) {
			if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			if m, ok := o.(client.Object); ok {
				f.queue.Add(item{route: route, key: client.ObjectKeyFromObject(m)})
			}
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
		}); err != nil {
			return err
		}
	}
	go func() { _ = f.cache.Start(ctx) }()
	go func() { <-ctx.Done(); f.queue.ShutDown() }()
	if !f.cache.WaitForCacheSync(ctx) {
		return fmt.Errorf("the harness's cache did not sync")
	}
	for range workers {
		go f.work(ctx)
	}
	return nil
}

func (f *fakeCluster) work(ctx context.Context) {
	for {
		it, shutdown := f.queue.Get()
		if shutdown {
			return
		}
		var err error
		if it.route {
			err = f.syncRoute(ctx, it.key)
		} else {
			err = f.syncSlot(ctx, it.key)
		}
		switch {
		case err == nil:
			f.queue.Forget(it)
		case apierrors.IsConflict(err) || ctx.Err() != nil:
			f.queue.AddRateLimited(it) // a newer version is on its way
		default:
			f.failures.Add(1)
			f.lastErr.Store(err.Error())
			f.queue.AddRateLimited(it)
		}
		f.queue.Done(it)
	}
}

// err says how many of the harness's requests failed, with the last error.
func (f *fakeCluster) err() error {
	if n := f.failures.Load(); n > 0 {
		return fmt.Errorf("%d requests of the harness's kubelet/gateway failed; last: %v", n, f.lastErr.Load())
	}
	return nil
}

// syncSlot makes a slot Deployment ready with n pods of its current revision, and publishes
// them in its Service's EndpointSlice.
func (f *fakeCluster) syncSlot(ctx context.Context, key types.NamespacedName) error {
	d := &appsv1.Deployment{}
	if err := f.cache.Get(ctx, key, d); apierrors.IsNotFound(err) {
		return f.runPods(ctx, key, nil, nil, "")
	} else if err != nil {
		return err
	}
	n := ptr.Deref(d.Spec.Replicas, 1)
	want := appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	if d.Status.ObservedGeneration != want.ObservedGeneration || d.Status.Replicas != n || d.Status.UpdatedReplicas != n ||
		d.Status.ReadyReplicas != n || d.Status.AvailableReplicas != n {
		d.Status = want
		if err := f.client.Status().Update(ctx, d); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
	rev := d.Spec.Template.Labels[rollout.LabelRevision]
	names := make([]string, 0, n)
	for i := range n {
		names = append(names, fmt.Sprintf("%s-%s-%d", d.Name, rev, i))
	}
	return f.runPods(ctx, key, d, names, d.Labels[rollout.LabelRollout])
}

// runPods makes exactly the named pods of slot key exist (the manager reads the pods behind
// each endpoint) and publishes them.
func (f *fakeCluster) runPods(ctx context.Context, key types.NamespacedName, d *appsv1.Deployment, names []string, rolloutName string) error {
	f.mu.Lock()
	have := f.pods[key]
	f.mu.Unlock()
	for _, name := range have {
		if !slices.Contains(names, name) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: key.Namespace}}
			if err := f.client.Delete(ctx, p, client.GracePeriodSeconds(0)); client.IgnoreNotFound(err) != nil {
				return err
			}
		}
	}
	for _, name := range names {
		if slices.Contains(have, name) {
			continue
		}
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: key.Namespace, Labels: d.Spec.Template.Labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: d.Spec.Template.Spec.Containers[0].Image}}}}
		if err := f.client.Create(ctx, p); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	f.mu.Lock()
	f.pods[key] = names
	f.mu.Unlock()
	if d == nil {
		return nil // the Deployment is gone; its Service and slice go with the Rollout
	}
	return f.publish(ctx, key, names, rolloutName)
}

// publish server-side applies EndpointSlice <svc>-sim with the pods as ready endpoints, labelled
// as the EndpointSlice controller labels the slices of Sluice's Services (the slot Service is
// named like the slot Deployment when spec.service.name is unset, as here).
func (f *fakeCluster) publish(ctx context.Context, key types.NamespacedName, pods []string, rolloutName string) error {
	sig := strings.Join(pods, ",")
	f.mu.Lock()
	last, seen := f.published[key]
	f.mu.Unlock()
	if seen && last == sig {
		return nil
	}
	sl := discoveryv1ac.EndpointSlice(key.Name+"-sim", key.Namespace).
		WithLabels(map[string]string{discoveryv1.LabelServiceName: key.Name, traffic.LabelManagedBy: traffic.ManagedByValue, rollout.LabelRollout: rolloutName}).
		WithAddressType(discoveryv1.AddressTypeIPv4)
	for i, name := range pods {
		sl.WithEndpoints(discoveryv1ac.Endpoint().WithAddresses(fmt.Sprintf("10.244.%d.%d", i/250, i%250+1)).
			WithConditions(discoveryv1ac.EndpointConditions().WithReady(true)).
			WithTargetRef(corev1ac.ObjectReference().WithKind("Pod").WithNamespace(key.Namespace).WithName(name)))
	}
	if _, err := f.apply.DiscoveryV1().EndpointSlices(key.Namespace).Apply(ctx, sl, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return err
	}
	f.mu.Lock()
	f.published[key] = sig
	f.mu.Unlock()
	return nil
}

// syncRoute sets every parent of the route Accepted at the route's generation.
func (f *fakeCluster) syncRoute(ctx context.Context, key types.NamespacedName) error {
	rt := &gatewayv1.HTTPRoute{}
	if err := f.cache.Get(ctx, key, rt); err != nil {
		return client.IgnoreNotFound(err)
	}
	changed := len(rt.Status.Parents) != len(rt.Spec.ParentRefs)
	for _, p := range rt.Status.Parents {
		if c := meta.FindStatusCondition(p.Conditions, "Accepted"); c == nil || c.ObservedGeneration != rt.Generation {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	rt.Status.Parents = nil
	for _, p := range rt.Spec.ParentRefs {
		cond := metav1.Condition{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: rt.Generation, LastTransitionTime: metav1.Now()}
		rt.Status.Parents = append(rt.Status.Parents, gatewayv1.RouteParentStatus{ParentRef: p, ControllerName: "example.com/scale-gateway", Conditions: []metav1.Condition{cond}})
	}
	return client.IgnoreNotFound(f.client.Status().Update(ctx, rt))
}
