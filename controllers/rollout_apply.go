package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/slots"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// apply makes the decision true: Services, then the route (a rollback's weight change goes out
// before anything else can fail), then the slots, then the target's scale.
func (r *RolloutReconciler) apply(ctx context.Context, ro *meshv1alpha1.Rollout, d rollout.Decision, w *world) error {
	stable := d.Status.StableSlot
	owned := []client.Object{slots.SlotService(ro, meshv1alpha1.SlotA), slots.SlotService(ro, meshv1alpha1.SlotB), slots.ApexService(ro, stable)}
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil && bg.PreviewService != "" {
		owned = append(owned, slots.PreviewService(ro, bg.PreviewService, stable.Other()))
	}
	for _, o := range owned {
		// Not forced: a Service someone else owns (e.g. in Git) is a conflict to report.
		if err := r.applyOwned(ctx, ro, o, false); err != nil {
			return err
		}
	}
	if d.Traffic != nil {
		split := r.split(ro, stable, d.Traffic)
		if err := r.Router.Apply(ctx, split); err != nil {
			if apierrors.IsConflict(err) {
				return fmt.Errorf("route %s: %w: %w", split.RouteName(), errRouteChanged, err)
			}
			return fmt.Errorf("route %s: %w", split.RouteName(), err)
		}
	}
	for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
		if err := r.applySlot(ctx, ro, s, d.Slots[s], w); err != nil {
			return err
		}
	}
	if d.ScaleTargetToZero && w.target != nil && ptr.Deref(w.target.Spec.Replicas, 1) != 0 {
		patch := client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"replicas":0}}`))
		if err := r.Client.Patch(ctx, w.target, patch, client.FieldOwner(traffic.FieldManager)); err != nil {
			return fmt.Errorf("scaling target Deployment %s to zero: %w", w.target.Name, err)
		}
	}
	return nil
}

// applySlot applies one slot Deployment: a new template (copied from the target) only when the
// decision asks for the target's revision; otherwise its current template, so that only the
// replica count can change.
func (r *RolloutReconciler) applySlot(ctx context.Context, ro *meshv1alpha1.Rollout, s meshv1alpha1.Slot, in rollout.SlotIntent, w *world) error {
	cur := w.slots[s]
	var dep *appsv1.Deployment
	var err error
	switch {
	case in.Revision != "" && (cur == nil || cur.Annotations[rollout.AnnotationRevision] != in.Revision):
		if w.target == nil || rollout.Revision(&w.target.Spec.Template) != in.Revision {
			return fmt.Errorf("slot %s: revision %s is no longer the target's template", s, in.Revision)
		}
		dep, err = slots.Deployment(ro, s, w.target, &w.target.Spec.Template, in.Revision, in.Replicas)
	case cur != nil:
		dep, err = slots.Deployment(ro, s, cur, &cur.Spec.Template, cur.Annotations[rollout.AnnotationRevision], in.Replicas)
	default:
		return nil // nothing to run in it yet
	}
	if err != nil {
		return err
	}
	return r.applyOwned(ctx, ro, dep, true)
}

// applyOwned server-side applies obj as field manager sluice, controlled by the Rollout.
func (r *RolloutReconciler) applyOwned(ctx context.Context, ro *meshv1alpha1.Rollout, obj client.Object, force bool) error {
	if err := controllerutil.SetControllerReference(ro, obj, r.Client.Scheme()); err != nil {
		return err
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	opts := []client.ApplyOption{client.FieldOwner(traffic.FieldManager)}
	if force {
		opts = append(opts, client.ForceOwnership)
	}
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), opts...); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("%s %s is managed by someone else: remove it from Git or rename spec.service: %w", u.GetKind(), u.GetName(), err)
		}
		return fmt.Errorf("applying %s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return nil
}

// errRouteChanged: the route changed between read and write (its writes are guarded by the
// resourceVersion read; a MeshPolicy writes rule settings into it too).
var errRouteChanged = errors.New("the route changed while it was being written")

// finalize gives the target Deployment its replicas back before the slots go away with the
// Rollout, so deleting a Rollout does not take the service down.
func (r *RolloutReconciler) finalize(ctx context.Context, ro *meshv1alpha1.Rollout) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ro, finalizer) {
		return ctrl.Result{}, nil
	}
	t := &appsv1.Deployment{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ro.Spec.TargetRef.Name}, t)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return ctrl.Result{}, err
	default:
		if ptr.Deref(t.Spec.Replicas, 1) == 0 && ro.Status.Replicas > 0 {
			patch := client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, ro.Status.Replicas)))
			if err := r.Client.Patch(ctx, t, patch, client.FieldOwner(traffic.FieldManager)); err != nil {
				return ctrl.Result{}, err
			}
		}
		// Wait for the target to serve, but never hold the deletion longer than progressDeadline.
		waited := r.Now().Sub(ro.DeletionTimestamp.Time)
		if !deploymentReady(t) && waited < ro.Spec.GetProgressDeadline() {
			return ctrl.Result{RequeueAfter: 2 * time.Second}, nil
		}
	}
	forgetMetrics(ro)
	controllerutil.RemoveFinalizer(ro, finalizer)
	return ctrl.Result{}, r.Client.Update(ctx, ro)
}

func condition(typ string, status bool, reason, msg string, gen int64) metav1.Condition {
	s := metav1.ConditionFalse
	if status {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen}
}
