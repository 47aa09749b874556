// Package controllers holds Sluice's reconcilers. They are thin: they gather observations,
// let the pure logic of internal/ decide, apply the actions and patch status once.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/traffic"
	"github.com/sluice-mesh/sluice/internal/traffic/gatewayapi"
)

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes,verbs=get;list;watch;create;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// finalizer holds a Rollout's deletion until its target Deployment serves again.
const finalizer = "mesh.sluice.dev/rollout"

// Index keys for the watches from targets and existing routes back to Rollouts.
const (
	indexTarget = "spec.targetRef.name"
	indexRoute  = "spec.trafficRouting.gatewayAPI.httpRouteRef.name"
)

// GateChecker runs one check of a Rollout's HealthGates for its current release.
type GateChecker interface {
	Check(ctx context.Context, r *meshv1alpha1.Rollout) rollout.Check
}

// RolloutReconciler releases Rollouts: slots, Services, route, target scale, status.
type RolloutReconciler struct {
	Client client.Client
	// APIReader reads the Rollout uncached (see Reconcile).
	APIReader client.Reader
	Recorder  events.EventRecorder
	Router    traffic.Router
	Gates     GateChecker
	// Now is the clock (tests may move it).
	Now func() time.Time
}

// SetupRolloutController registers the Rollout controller with the given gate checker.
func SetupRolloutController(mgr ctrl.Manager, gates GateChecker) error {
	r := &RolloutReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("sluice-rollout"),
		Router: gatewayapi.New(mgr.GetClient()), Gates: gates, Now: time.Now,
	}
	return r.SetupWithManager(mgr)
}

// SetupWithManager registers the watches: owned slots, Services and routes, the target
// Deployment and an existing route (through indexes).
func (r *RolloutReconciler) SetupWithManager(mgr ctrl.Manager) error {
	ctx := context.Background()
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &meshv1alpha1.Rollout{}, indexTarget, func(o client.Object) []string {
		return []string{o.(*meshv1alpha1.Rollout).Spec.TargetRef.Name}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &meshv1alpha1.Rollout{}, indexRoute, func(o client.Object) []string {
		if ref := o.(*meshv1alpha1.Rollout).Spec.TrafficRouting.GatewayAPI.HTTPRouteRef; ref != nil {
			return []string{ref.Name}
		}
		return nil
	}); err != nil {
		return err
	}
	b := ctrl.NewControllerManagedBy(mgr).Named("rollout").
		For(&meshv1alpha1.Rollout{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexTarget)))
	// Without the Gateway API CRDs the controller still runs (and says so in status).
	if _, err := mgr.GetRESTMapper().RESTMapping(schema.GroupKind{Group: gatewayv1.GroupVersion.Group, Kind: "HTTPRoute"}, "v1"); err == nil {
		b = b.Owns(&gatewayv1.HTTPRoute{}).
			Watches(&gatewayv1.HTTPRoute{}, handler.EnqueueRequestsFromMapFunc(r.byIndex(indexRoute)))
	} else {
		mgr.GetLogger().Info("Gateway API HTTPRoute CRD not installed: Rollouts cannot route traffic until it is", "error", err.Error())
	}
	return b.Complete(r)
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

// Reconcile gathers observations, lets the state machine decide, persists the decision, then
// acts on it.
//
// Order matters for safety. The Rollout is read from the API server, not the cache: a stale
// status would replay an old step (after a rollback, push weight back to the canary). The
// decided status is written, with optimistic locking, before anything is applied: a decision
// made on an outdated object never reaches the route, and a manager that dies between the two
// finds the same intent in status and applies it again (everything applied is desired state).
func (r *RolloutReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ro := &meshv1alpha1.Rollout{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, ro); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ro.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, ro)
	}
	if controllerutil.AddFinalizer(ro, finalizer) {
		if err := r.Client.Update(ctx, ro); err != nil {
			return ctrl.Result{}, err
		}
	}

	// The action is taken off the object first: if the manager dies before acting, the action
	// is lost (and visibly not in status.lastAction), never applied twice.
	action, present, actionErr := takeAction(ro)
	if present {
		if err := r.removeAction(ctx, ro); err != nil {
			return ctrl.Result{}, err
		}
	}
	if actionErr != nil {
		r.Recorder.Eventf(ro, nil, corev1.EventTypeWarning, "InvalidAction", "Action", actionErr.Error())
	}

	w, err := r.observe(ctx, ro)
	if err != nil {
		return ctrl.Result{}, err
	}
	w.obs.Action = action
	if rollout.CheckDue(&ro.Spec, &ro.Status, w.obs) {
		c := r.Gates.Check(ctx, ro)
		w.obs.Check = &c
	}
	d := rollout.Next(&ro.Spec, &ro.Status, w.obs)

	before := ro.DeepCopy()
	ro.Status = d.Status
	if err := r.Client.Status().Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
		return ctrl.Result{}, err // a conflict: decide again on the fresh object
	}
	r.emit(ro, d.Events)
	recordMetrics(before, ro, w.obs.Now)

	if err := r.apply(ctx, ro, d, w); err != nil {
		if ctx.Err() != nil {
			return ctrl.Result{}, ctx.Err() // shutting down: the next manager applies it
		}
		if errors.Is(err, errRouteChanged) {
			// Not a failure to show: read the route again and apply.
			return ctrl.Result{RequeueAfter: 50 * time.Millisecond}, nil
		}
		log.FromContext(ctx).Error(err, "applying the decision")
		applied := ro.DeepCopy()
		reportApplyFailure(ro, err)
		_ = r.Client.Status().Patch(ctx, ro, client.MergeFrom(applied))
		return ctrl.Result{}, err
	}
	after := d.RequeueAfter
	if w.endpointsLag && (after == 0 || after > endpointsPoll) {
		after = endpointsPoll // EndpointSlices are not watched: look again soon
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// endpointsPoll is how soon a reconcile looks again while a slot's endpoints lag its pods.
const endpointsPoll = 500 * time.Millisecond

// takeAction reads the action annotation: whether it is present, and the action it asks for.
// An unknown value is an error to report; either way the caller removes the annotation.
func takeAction(ro *meshv1alpha1.Rollout) (meshv1alpha1.RolloutAction, bool, error) {
	v, ok := ro.Annotations[meshv1alpha1.ActionAnnotation]
	if !ok {
		return "", false, nil
	}
	switch a := meshv1alpha1.RolloutAction(v); a {
	case meshv1alpha1.ActionPromote, meshv1alpha1.ActionAbort, meshv1alpha1.ActionRetry, meshv1alpha1.ActionPause, meshv1alpha1.ActionResume:
		return a, true, nil
	}
	return "", true, fmt.Errorf("annotation %s=%q ignored: allowed values are promote, abort, retry, pause, resume", meshv1alpha1.ActionAnnotation, v)
}

// removeAction deletes the annotation from exactly the version read (optimistic lock), so a
// newer action written meanwhile is not lost unseen.
func (r *RolloutReconciler) removeAction(ctx context.Context, ro *meshv1alpha1.Rollout) error {
	before := ro.DeepCopy()
	delete(ro.Annotations, meshv1alpha1.ActionAnnotation)
	return r.Client.Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
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

// reportApplyFailure puts an apply failure (a Service owned by someone else, an immutable
// selector) on the Ready condition, where people look.
func reportApplyFailure(ro *meshv1alpha1.Rollout, err error) {
	c := ro.GetConditions()
	meta.SetStatusCondition(&c, condition(meshv1alpha1.ConditionReady, false, "ApplyFailed", err.Error(), ro.Generation))
	ro.SetConditions(c)
}
