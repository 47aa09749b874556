// Package controllers holds Sluice's reconcilers. They are thin: they gather observations,
// let the pure logic of internal/ decide, apply the actions and patch status once.
package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/checks"
	"github.com/sluice-mesh/sluice/internal/probe"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/traffic"
	"github.com/sluice-mesh/sluice/internal/traffic/gatewayapi"
)

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts/status,verbs=patch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=gateways,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// finalizer holds a Rollout's deletion until traffic is handed back (see finalize).
const finalizer = "mesh.sluice.dev/rollout"

// indexRoutes indexes each Rollout under the HTTPRoute it drives (generated or existing): an
// existing route is the user's and carries no label of the Rollout. Deployments and Services
// need no index: the cache holds only those carrying the Rollout's label (RolloutCacheOptions),
// and the label names the Rollout. (Indexes were 23% of the live heap at 5,000 Rollouts:
// every name of every Rollout, once per namespace and once cluster-wide, each a set.)
const indexRoutes = "rollout.routes"

// GateChecker runs one check of a Rollout's HealthGates for its current release. Check runs
// off the reconcile workers, on a snapshot of the Rollout, and must return by its context's
// deadline; Deadline bounds it.
type GateChecker interface {
	Check(ctx context.Context, r *meshv1alpha1.Rollout) rollout.Check
	Deadline(ctx context.Context, r *meshv1alpha1.Rollout) time.Duration
}

// RolloutReconciler releases Rollouts: slots, Services, route, target scale, status.
type RolloutReconciler struct {
	Client client.Client
	// APIReader reads what the cache may not hold or may hold stale (readRollout).
	APIReader client.Reader
	Recorder  events.EventRecorder
	Router    traffic.Router
	Gates     GateChecker
	// Checks runs gate checks off the workers, one per Rollout at a time.
	Checks *checks.Runner[rollout.Check]
	// Prober sends data-plane probes; Probes runs them off the workers, one per Rollout.
	Prober probe.Prober
	Probes *checks.Runner[rollout.Proof]
	// MaxConcurrentReconciles is the number of workers (default 1).
	MaxConcurrentReconciles int
	// Now is the clock (tests may move it).
	Now func() time.Time
	// TrackSecrets: config tracking copies Secrets too (else they stay referenced as they
	// are, and the manager never lists or watches Secrets).
	TrackSecrets bool

	applied       appliedObjects
	endpointsPoll endpointsBackoff
	seen          seenVersions
}

// NewRolloutReconciler is the Rollout controller of mgr with the given gate checker.
func NewRolloutReconciler(mgr ctrl.Manager, gates GateChecker, workers int) *RolloutReconciler {
	return &RolloutReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("sluice-rollout"),
		Router: gatewayapi.New(mgr.GetClient()).WithGateways(mgr.GetAPIReader()), Gates: gates, Checks: &checks.Runner[rollout.Check]{},
		Prober: &probe.HTTPProber{}, Probes: &checks.Runner[rollout.Proof]{},
		MaxConcurrentReconciles: workers, Now: time.Now, TrackSecrets: true,
	}
}

// CacheOptions are the manager's cache settings: the per-kind restrictions below, and no
// managedFields in any cached object (nothing reads them; they are often a third of an
// object's size).
func CacheOptions() cache.Options {
	return cache.Options{ByObject: RolloutCacheOptions(), DefaultTransform: cache.TransformStripManagedFields()}
}

// RolloutCacheOptions restricts the manager's EndpointSlice cache to the slices of Services
// Sluice manages (the EndpointSlice controller copies a Service's labels onto its slices), its
// Pod cache to the slots' pods, its Deployment cache to the slots and the targets of Rollouts
// (readTarget labels them), and its Service cache to the Services Rollouts make and MeshPolicy
// targets (traffic.LabelWatched): cluster-wide informers would cost every edge cluster memory
// for objects Sluice never reads.
func RolloutCacheOptions() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&discoveryv1.EndpointSlice{}: {Label: labels.SelectorFromSet(labels.Set{traffic.LabelManagedBy: traffic.ManagedByValue})},
		&corev1.Pod{}:                {Label: rolloutLabelled, Transform: podMetadataOnly},
		&appsv1.Deployment{}:         {Label: rolloutLabelled},
		&corev1.Service{}:            {Label: labels.SelectorFromSet(labels.Set{traffic.LabelWatched: traffic.WatchedValue})},
		&corev1.ConfigMap{}:          {Label: configLabelled, Transform: stripCopyData},
		&corev1.Secret{}:             {Label: configLabelled, Transform: stripCopyData},
	}
}

// WithPolicyCache adds the policy namespace's labelled ConfigMaps (PolicyCacheOptions) to
// opts, whose DefaultNamespaces must be final: the ConfigMap cache then holds the policy
// ConfigMaps in that namespace and config tracking's everywhere else it watches. (A Rollout
// in the policy namespace still tracks config, read from the API server; only its sources'
// changes are noticed late, at its next reconcile.)
func WithPolicyCache(opts *cache.Options, policyNS string) {
	for k, cm := range opts.ByObject {
		if _, ok := k.(*corev1.ConfigMap); !ok {
			continue
		}
		ns := map[string]cache.Config{}
		if len(opts.DefaultNamespaces) == 0 {
			ns[cache.AllNamespaces] = cache.Config{LabelSelector: configLabelled}
		}
		for n := range opts.DefaultNamespaces {
			ns[n] = cache.Config{LabelSelector: configLabelled}
		}
		ns[policyNS] = cache.Config{LabelSelector: policySelector()}
		cm.Namespaces, cm.Label = ns, nil
		opts.ByObject[k] = cm
	}
}

// SetupWithManager registers the watches: the target, slot Deployments, Services,
// EndpointSlices and pods by the Rollout's label, routes by name (an index), and finished
// gate checks.
func (r *RolloutReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &meshv1alpha1.Rollout{}, indexRoutes, func(o client.Object) []string {
		if ref := o.(*meshv1alpha1.Rollout).Spec.TrafficRouting.GatewayAPI.HTTPRouteRef; ref != nil {
			return []string{ref.Name}
		}
		return []string{o.GetName()}
	}); err != nil {
		return err
	}
	if r.Checks == nil {
		r.Checks = &checks.Runner[rollout.Check]{}
	}
	if r.Probes == nil {
		r.Probes = &checks.Runner[rollout.Proof]{}
	}
	if r.Prober == nil {
		r.Prober = &probe.HTTPProber{}
	}
	b := ctrl.NewControllerManagedBy(mgr).Named("rollout").
		For(&meshv1alpha1.Rollout{}, builder.WithPredicates(notStatusOnly)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.MaxConcurrentReconciles, 1), RateLimiter: rolloutRateLimiter()}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.byRolloutLabel)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.byRolloutLabel)).
		Watches(&discoveryv1.EndpointSlice{}, handler.EnqueueRequestsFromMapFunc(r.byRolloutLabel)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.byRolloutLabel)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.byConfig)).
		Watches(&autoscalingv2.HorizontalPodAutoscaler{}, handler.EnqueueRequestsFromMapFunc(r.byAutoscaler)).
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			// A finished gate check or probe queues its Rollout: the next reconcile takes it.
			wake := func(key types.NamespacedName) { q.Add(reconcile.Request{NamespacedName: key}) }
			r.Checks.Wake, r.Probes.Wake = wake, wake
			return nil
		}))
	if r.TrackSecrets {
		b = b.Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.byConfig))
	}
	// Without the Gateway API CRDs the controller still runs (and says so in status).
	if _, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: gatewayv1.GroupVersion.Group, Kind: "HTTPRoute"}, "v1"); err == nil {
		b = b.Watches(&gatewayv1.HTTPRoute{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexRoutes)))
	} else {
		mgr.GetLogger().Info("Gateway API HTTPRoute CRD not installed: Rollouts cannot route traffic until it is", "error", err.Error())
	}
	return b.Complete(r)
}

// notStatusOnly drops the update events that change only status (the manager's own status
// writes: at scale, half of all reconciles). Spec, action annotations, labels, finalizers and
// deletion still wake the Rollout; a decision that is not final asks for the next reconcile
// itself (see settled).
var notStatusOnly = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	o, n := e.ObjectOld, e.ObjectNew
	return o.GetGeneration() != n.GetGeneration() || !maps.Equal(o.GetAnnotations(), n.GetAnnotations()) ||
		!maps.Equal(o.GetLabels(), n.GetLabels()) || !slices.Equal(o.GetFinalizers(), n.GetFinalizers()) ||
		!o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp())
}}

// settled says whether deciding again on the status just written, with the same observations
// less the one-off inputs this reconcile consumed (a gate check, an action), changes nothing.
// Next is pure, so this costs no request.
func settled(ro *meshv1alpha1.Rollout, obs rollout.Observations) bool {
	obs.Check, obs.Action, obs.ActionID = nil, "", ""
	obs.ApplyError = rollout.ApplyErrorOf(&ro.Status)
	return equality.Semantic.DeepEqual(rollout.Next(&ro.Spec, &ro.Status, obs).Status, ro.Status)
}

// rolloutRateLimiter backs off failed reconciles from 50 ms to at most 5 s (controller-runtime's
// default grows to 16 minutes): a rollback whose write failed is retried within seconds.
func rolloutRateLimiter() workqueue.TypedRateLimiter[reconcile.Request] {
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](50*time.Millisecond, 5*time.Second),
		&workqueue.TypedBucketRateLimiter[reconcile.Request]{Limiter: rate.NewLimiter(rate.Limit(20), 200)},
	)
}

// podMetadataOnly keeps a cached pod's metadata (less managedFields): the controller reads a
// slot pod's labels and deletion only (readiness comes from EndpointSlices), and pods are the
// most numerous objects it caches.
func podMetadataOnly(o any) (any, error) {
	p, ok := o.(*corev1.Pod)
	if !ok {
		return o, nil
	}
	meta := p.ObjectMeta // p is a fresh decode, dropped after this
	meta.ManagedFields = nil
	return &corev1.Pod{TypeMeta: p.TypeMeta, ObjectMeta: meta}, nil
}

// rolloutLabelled selects what carries the rollout label: the slots' pods (their template
// has it), slot Deployments and Services, and labelled target Deployments.
var rolloutLabelled = func() labels.Selector {
	req, err := labels.NewRequirement(rollout.LabelRollout, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant, valid key
	}
	return labels.NewSelector().Add(*req)
}()

func serviceNames(ro *meshv1alpha1.Rollout) []string {
	out := []string{ro.GetServiceName(), ro.GetSlotServiceName(meshv1alpha1.SlotA), ro.GetSlotServiceName(meshv1alpha1.SlotB)}
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil && bg.PreviewService != "" {
		out = append(out, bg.PreviewService)
	}
	return out
}

func (r *RolloutReconciler) byIndex(key string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []ctrl.Request {
		var list meshv1alpha1.RolloutList
		if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{key: o.GetName()}); err != nil {
			return nil
		}
		reqs := make([]ctrl.Request, 0, len(list.Items))
		for _, ro := range list.Items {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&ro)})
		}
		return reqs
	}
}

// byRolloutLabel maps an object carrying the rollout label (the target, a slot, a Service the
// Rollout made, a slot Service's EndpointSlice, a slot's pod) to its Rollout.
func (r *RolloutReconciler) byRolloutLabel(_ context.Context, o client.Object) []ctrl.Request {
	name := o.GetLabels()[rollout.LabelRollout]
	if name == "" {
		return nil
	}
	return []ctrl.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}}}
}

// Reconcile gathers observations, lets the state machine decide, persists the decision, then
// acts on it.
//
// Order matters for safety. The Rollout is never decided on from a copy older than one the
// manager has seen (readRollout): a stale status would replay an old step (after a rollback,
// push weight back to the canary). The
// decided status is written, with optimistic locking, before anything is applied: a decision
// made on an outdated object never reaches the route, and a manager that dies between the two
// finds the same intent in status and applies it again (everything applied is desired state).
// Nothing here waits on Prometheus: gate checks run off the worker (startCheck) and their
// results are taken by a later reconcile.
func (r *RolloutReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ro := &meshv1alpha1.Rollout{}
	res, err := r.reconcile(ctx, req, ro)
	// Every write of the Rollout below updates ro from the server's answer, so ro is the
	// newest version this manager knows; after a failure it may not be (a write that
	// conflicted): read from the API server next time.
	if err != nil {
		r.seen.set(req.NamespacedName, "")
	} else {
		r.seen.set(req.NamespacedName, ro.ResourceVersion)
	}
	return res, err
}

func (r *RolloutReconciler) reconcile(ctx context.Context, req ctrl.Request, ro *meshv1alpha1.Rollout) (ctrl.Result, error) {
	if err := r.readRollout(ctx, req.NamespacedName, ro); err != nil {
		if apierrors.IsNotFound(err) {
			r.Checks.Forget(req.NamespacedName)
			r.Probes.Forget(req.NamespacedName)
			r.applied.forget(req.Namespace, req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ro.DeletionTimestamp.IsZero() {
		r.Checks.Forget(req.NamespacedName)
		return r.finalize(ctx, ro)
	}
	if controllerutil.AddFinalizer(ro, finalizer) {
		if err := r.Client.Update(ctx, ro); err != nil {
			return ctrl.Result{}, err
		}
	}
	action, err := r.acceptAction(ctx, ro)
	if err != nil {
		return ctrl.Result{}, err
	}

	w, err := r.observe(ctx, ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.initReplicas(ctx, ro, w); err != nil {
		return ctrl.Result{}, err
	}
	if action != nil && !action.applied {
		w.obs.Action, w.obs.ActionID = action.action, action.id
	}
	w.obs.ApplyError = rollout.ApplyErrorOf(&ro.Status)
	r.observeProbe(ro, req.NamespacedName, w, w.routeProbe)
	ticket, counts := rollout.CheckTicket(&ro.Spec, &ro.Status)
	if c, ok := r.Checks.Take(req.NamespacedName, ticket); ok && counts {
		w.obs.Check = &c
	}
	d := rollout.Next(&ro.Spec, &ro.Status, w.obs)

	before := ro.DeepCopy()
	ro.Status = d.Status
	// observedGeneration says the generation is applied (or judged, when only a person can
	// make it apply: rollout.ApplyFailed): only after the apply's outcome is known.
	if before.Status.ObservedGeneration != ro.Generation {
		ro.Status.ObservedGeneration = before.Status.ObservedGeneration
	}
	if !equality.Semantic.DeepEqual(before.Status, ro.Status) {
		if err := r.Client.Status().Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, err // a conflict: decide again on the fresh object
		}
	}
	r.emit(ro, d.Events)
	recordMetrics(ro, d)
	recordAnalysisMetrics(&before.Status, ro)
	if action != nil {
		if err := r.confirmAction(ctx, ro); err != nil {
			log.FromContext(ctx).Info("the accepted action stays until the next reconcile removes it", "error", err.Error())
		}
	}
	r.startCheck(ctx, ro, w)
	r.startProbe(ro, w)

	if err := r.apply(ctx, ro, d, w); err != nil {
		return r.applyFailed(ctx, ro, err, jitter(d.RequeueAfter))
	}
	if err := r.recordApplied(ctx, ro, &before.Status, w.obs); err != nil {
		return ctrl.Result{}, err
	}
	if !settled(ro, w.obs) {
		return ctrl.Result{RequeueAfter: time.Millisecond}, nil // the status event would have
	}
	after := jitter(d.RequeueAfter)
	if targetUnwatched(w) && (after == 0 || after > targetMissingRecheck) {
		after = targetMissingRecheck // no change of it brings an event (readTarget)
	}
	if poll := r.endpointsPoll.next(req.NamespacedName, w.endpointsLag); poll > 0 && (after == 0 || poll < after) {
		after = poll
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// endpointsBackoff paces the look at a slot whose pods are ready while its Service does not
// publish them yet. EndpointSlice changes are watched, so this only covers a missed event:
// 500 ms, doubling to 8 s, and only while the lag lasts (pods coming up during a release).
type endpointsBackoff struct {
	mu   sync.Mutex
	wait map[types.NamespacedName]time.Duration
}

func (b *endpointsBackoff) next(key types.NamespacedName, lagging bool) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !lagging {
		delete(b.wait, key)
		return 0
	}
	if b.wait == nil {
		b.wait = map[types.NamespacedName]time.Duration{}
	}
	d := b.wait[key]
	switch {
	case d == 0:
		d = 500 * time.Millisecond
	case d < 8*time.Second:
		d *= 2
	}
	b.wait[key] = d
	return d
}

// recordApplied records a successful apply where status still says otherwise: the generation is now
// observed, and a failure the last attempt reported is gone. The same decision is made again
// without the failure (Next is pure: same inputs, same decision) to get its conditions.
func (r *RolloutReconciler) recordApplied(ctx context.Context, ro *meshv1alpha1.Rollout, decidedFrom *meshv1alpha1.RolloutStatus, obs rollout.Observations) error {
	if ro.Status.ObservedGeneration == ro.Generation && obs.ApplyError == nil {
		return nil
	}
	before := ro.DeepCopy()
	obs.ApplyError = nil
	ro.Status = rollout.Next(&ro.Spec, decidedFrom, obs).Status
	ro.Status.ObservedGeneration = ro.Generation
	if equality.Semantic.DeepEqual(before.Status, ro.Status) {
		return nil
	}
	return r.Client.Status().Patch(ctx, ro, client.MergeFrom(before))
}

// startCheck starts a gate check off the worker when one is due and none is running. It
// judges the decided status: a check started for a step is handed only to that step.
func (r *RolloutReconciler) startCheck(ctx context.Context, ro *meshv1alpha1.Rollout, w *world) {
	if !rollout.CheckDue(&ro.Spec, &ro.Status, w.obs) {
		return
	}
	ticket, ok := rollout.CheckTicket(&ro.Spec, &ro.Status)
	if !ok {
		return
	}
	snapshot := ro.DeepCopy()
	deadline := r.Gates.Deadline(ctx, snapshot)
	started := r.Now()
	r.Checks.Start(client.ObjectKeyFromObject(ro), ticket, deadline,
		func(ctx context.Context) rollout.Check {
			c := r.Gates.Check(ctx, snapshot)
			if c.Started.IsZero() {
				c.Started = started
			}
			return c
		},
		func() rollout.Check {
			return rollout.Check{Verdict: meshv1alpha1.VerdictUnreachable, Started: started,
				Message: fmt.Sprintf("the gate check did not finish within %s", deadline)}
		})
}

// jitter spreads steady requeues (10% on top, never earlier: a timer must not fire early).
func jitter(d time.Duration) time.Duration {
	if d < 5*time.Second {
		return d
	}
	return wait.Jitter(d, 0.1)
}

func (r *RolloutReconciler) emit(ro *meshv1alpha1.Rollout, evs []rollout.Event) {
	for _, e := range evs {
		typ := corev1.EventTypeNormal
		if e.Warning {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(ro, nil, typ, e.Reason, "Release", "%s", e.Message)
	}
}
