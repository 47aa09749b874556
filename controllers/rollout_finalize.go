package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/slots"
	"github.com/sluice-mesh/sluice/internal/traffic"
	"github.com/sluice-mesh/sluice/internal/traffic/gatewayapi"
)

// handBackGrace is how long the slots keep serving after the gateway accepted the route that
// no longer sends them anything: the data plane applies an accepted route a moment later
// (Traefik: 0.2-1.5 s, see docs/benchmarks.md).
const handBackGrace = 5 * time.Second

// Condition reasons while a deleted Rollout hands traffic back.
const (
	reasonHandingBack = "HandingBack"
	reasonHandedBack  = "HandedBack"
)

// finalize hands traffic back before anything of the Rollout goes, so that deleting it (a
// GitOps prune, moving off Sluice) never takes the service down:
//
//  1. the target Deployment gets its replicas back and must serve (ready) again;
//  2. the apex Service selects the target's pods and stops being the Rollout's;
//  3. the route sends everything to the apex Service (an existing route keeps the rest of its
//     rules; a generated route stays, serving, no longer the Rollout's), accepted by every
//     parent at its current generation, plus handBackGrace for the data plane;
//  4. then the slot Deployments and Services are deleted and the finalizer removed.
//
// Nothing the Rollout made carries an ownerReference to it, so the garbage collector (with
// foreground propagation, Argo CD's default, it deletes dependents at once) can't take the
// slots away first. If the target is gone too, the app is being removed: nothing is handed
// back and everything the Rollout made goes.
func (r *RolloutReconciler) finalize(ctx context.Context, ro *meshv1alpha1.Rollout) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(ro, finalizer) {
		return ctrl.Result{}, nil
	}
	// Only the API server may say the target is gone: that deletes everything.
	t, found, err := r.readTarget(ctx, ro, false)
	switch {
	case err == nil && !found:
		if err := r.releaseRoute(ctx, ro); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.deleteOurs(ctx, ro, true); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.deleteCopies(ctx, ro); err != nil {
			return ctrl.Result{}, err
		}
	case err != nil:
		return ctrl.Result{}, err
	default:
		wait, err := r.handBack(ctx, ro, t)
		if err != nil || wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, err
		}
		if err := r.deleteOurs(ctx, ro, false); err != nil {
			return ctrl.Result{}, err
		}
		if n, err := r.slotPodsLeft(ctx, ro); err != nil || n > 0 {
			if err == nil {
				err = r.reportHandBack(ctx, ro, false, fmt.Sprintf("deleting: waiting for the slots' last %d pods to go", n))
			}
			return ctrl.Result{RequeueAfter: time.Second}, err
		}
		// The slots are gone: the apex Service gets its final selector, the target's (the
		// same pods: the hash only kept the slots' pods out while they ran).
		final, err := slots.HandedBackService(ro, t, "")
		if err != nil {
			return ctrl.Result{}, err
		}
		if err := r.applyHandedBack(ctx, ro, final, nil); err != nil {
			return ctrl.Result{}, err
		}
		if err := r.unlabelTarget(ctx, ro, t); err != nil {
			return ctrl.Result{}, err
		}
		// The slots' pods are gone, and with them the last users of the config copies.
		if err := r.deleteCopies(ctx, ro); err != nil {
			return ctrl.Result{}, err
		}
	}
	forgetMetrics(ro)
	r.applied.forget(ro.Namespace, ro.Name)
	controllerutil.RemoveFinalizer(ro, finalizer)
	return ctrl.Result{}, r.Client.Update(ctx, ro)
}

// handBack runs steps 1-3; it returns how long to wait before looking again (0: done).
func (r *RolloutReconciler) handBack(ctx context.Context, ro *meshv1alpha1.Rollout, t *appsv1.Deployment) (time.Duration, error) {
	if ptr.Deref(t.Spec.Replicas, 1) == 0 {
		n := max(ro.Status.Replicas, 1)
		patch := client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)))
		if err := r.Client.Patch(ctx, t, patch, client.FieldOwner(traffic.FieldManager)); err != nil {
			return 0, err
		}
	}
	if !deploymentReady(t) {
		// The slots keep serving for as long as it takes: a target that never serves again
		// is for a person to fix (or delete, which removes the app).
		stalled := ro.DeletionTimestamp != nil && r.Now().Sub(ro.DeletionTimestamp.Time) > ro.Spec.GetProgressDeadline()
		return 2 * time.Second, r.reportHandBack(ctx, ro, stalled, fmt.Sprintf(
			"deleting: waiting for the target Deployment %s to serve again (%d of %d ready); the slots keep serving until it does",
			t.Name, t.Status.ReadyReplicas, ptr.Deref(t.Spec.Replicas, 1)))
	}
	hash, err := r.targetPodTemplateHash(ctx, t)
	if err != nil {
		return 0, err
	}
	if hash == "" {
		return time.Second, r.reportHandBack(ctx, ro, false, fmt.Sprintf("deleting: waiting for the pods of the target Deployment %s to carry one pod-template-hash", t.Name))
	}
	apex, err := slots.HandedBackService(ro, t, hash)
	if err != nil {
		return 0, r.reportHandBack(ctx, ro, true, "deleting: "+err.Error())
	}
	// Uncached: a Service that is not the Rollout's must be seen to be left alone.
	cur := &corev1.Service{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(apex), cur); err != nil && !apierrors.IsNotFound(err) {
		return 0, err
	} else if err != nil {
		cur = nil
	}
	if err := r.applyHandedBack(ctx, ro, apex, cur); err != nil {
		return 0, r.reportHandBack(ctx, ro, true, "deleting: "+err.Error())
	}
	if n, err := r.targetEndpoints(ctx, ro, t); err != nil {
		return 0, err
	} else if n < ptr.Deref(t.Spec.Replicas, 1) {
		return time.Second, r.reportHandBack(ctx, ro, false, fmt.Sprintf("deleting: waiting for Service %s to publish the target's pods (%d ready)", apex.Name, n))
	}
	accepted, why, err := r.handBackRoute(ctx, ro)
	if err != nil {
		return 0, err
	}
	if !accepted {
		return time.Second, r.reportHandBack(ctx, ro, false, "deleting: waiting for the route to carry all traffic to Service "+apex.Name+": "+why)
	}
	since := r.handedBackSince(ro)
	if since.IsZero() {
		return handBackGrace, r.markHandedBack(ctx, ro)
	}
	if left := handBackGrace - r.Now().Sub(since); left > 0 {
		return left, nil
	}
	return 0, nil
}

// applyHandedBack writes the apex Service as handed back: not forced, and only over the
// Rollout's own Service (or none).
func (r *RolloutReconciler) applyHandedBack(ctx context.Context, ro *meshv1alpha1.Rollout, svc *corev1.Service, cur *corev1.Service) error {
	if cur != nil && cur.Labels[traffic.LabelRolloutUID] == "" && !metav1.IsControlledBy(cur, ro) {
		if _, handed := cur.Labels[rollout.LabelRollout]; !handed && !equality.Semantic.DeepEqual(cur.Spec.Selector, svc.Spec.Selector) {
			return fmt.Errorf("the apex Service %s %w", svc.Name, errNotOurs)
		}
	}
	obj, err := toApply(svc)
	if err != nil {
		return err
	}
	return r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(traffic.FieldManager))
}

// slotPodsLeft counts the pods of the Rollout's slots that still exist (from the cache, which
// holds the slots' pods).
func (r *RolloutReconciler) slotPodsLeft(ctx context.Context, ro *meshv1alpha1.Rollout) (int, error) {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(ro.Namespace), client.MatchingLabels{rollout.LabelRollout: ro.Name}); err != nil {
		return 0, err
	}
	n := 0
	for _, p := range pods.Items {
		if p.Labels[rollout.LabelSlot] != "" {
			n++
		}
	}
	return n, nil
}

// targetPodTemplateHash is the pod-template-hash all of the ready target's pods share ("" while
// they don't). Read uncached: the manager caches only the slots' pods.
func (r *RolloutReconciler) targetPodTemplateHash(ctx context.Context, t *appsv1.Deployment) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(t.Spec.Selector)
	if err != nil {
		return "", fmt.Errorf("target Deployment %s: selector: %w", t.Name, err)
	}
	var pods corev1.PodList
	if err := r.APIReader.List(ctx, &pods, client.InNamespace(t.Namespace), client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return "", err
	}
	hash := ""
	for _, p := range pods.Items {
		if p.Labels[rollout.LabelRollout] != "" {
			continue // a slot's pod
		}
		h := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
		if h == "" || (hash != "" && h != hash) {
			return "", nil
		}
		hash = h
	}
	return hash, nil
}

// targetEndpoints counts the ready endpoints of the apex Service that are the target's pods
// (not the slots', which it selects too until they go). Read uncached: the handed-back
// Service's slices no longer carry Sluice's label, and deletion is rare.
func (r *RolloutReconciler) targetEndpoints(ctx context.Context, ro *meshv1alpha1.Rollout, t *appsv1.Deployment) (int32, error) {
	var list discoveryv1.EndpointSliceList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(ro.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: ro.GetServiceName()}); err != nil {
		return 0, err
	}
	slotPrefixes := []string{ro.GetSlotDeploymentName(meshv1alpha1.SlotA) + "-", ro.GetSlotDeploymentName(meshv1alpha1.SlotB) + "-"}
	n := int32(0)
	for _, sl := range list.Items {
		for _, ep := range sl.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready || ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				continue
			}
			name := ep.TargetRef.Name
			// Pod names are <replicaset>-<suffix>, the ReplicaSet <deployment>-<hash>; a
			// hash has no dash, so a slot's pod can't pass for the target's.
			if strings.HasPrefix(name, t.Name+"-") && !strings.HasPrefix(name, slotPrefixes[0]) && !strings.HasPrefix(name, slotPrefixes[1]) {
				n++
			}
		}
	}
	return n, nil
}

// handBackRoute points the route at the apex Service and says whether every parent accepted
// that generation.
func (r *RolloutReconciler) handBackRoute(ctx context.Context, ro *meshv1alpha1.Rollout) (bool, string, error) {
	if err := r.releaseRoute(ctx, ro); err != nil {
		return false, "", err
	}
	split := r.split(ro, ro.Status.StableSlot, &rollout.TrafficIntent{Weights: map[meshv1alpha1.Slot]int32{ro.Status.StableSlot: 100}}, "")
	rt := &gatewayv1.HTTPRoute{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: split.RouteName()}, rt); err != nil {
		if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
			return true, "", nil // no route: nothing to hand back
		}
		return false, "", err
	}
	ok, why := gatewayapi.Accepted(rt)
	return ok, strings.Join(why, "; "), nil
}

// releaseRoute hands the route back (Router.Release); a missing route or route API is fine.
func (r *RolloutReconciler) releaseRoute(ctx context.Context, ro *meshv1alpha1.Rollout) error {
	stable := ro.Status.StableSlot
	if stable == "" {
		stable = meshv1alpha1.SlotA
	}
	split := r.split(ro, stable, &rollout.TrafficIntent{Weights: map[meshv1alpha1.Slot]int32{stable: 100}}, "")
	if err := r.Router.Release(ctx, split); err != nil && !meta.IsNoMatchError(err) {
		return fmt.Errorf("handing route %s back: %w", split.RouteName(), err)
	}
	return nil
}

// deleteOurs deletes the slot Deployments, slot and preview Services (and, with everything,
// the apex Service and a generated route too), only where they are the Rollout's.
func (r *RolloutReconciler) deleteOurs(ctx context.Context, ro *meshv1alpha1.Rollout, everything bool) error {
	var objs []client.Object
	for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
		objs = append(objs,
			&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: ro.GetSlotDeploymentName(s)}},
			&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: ro.GetSlotServiceName(s)}})
	}
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil && bg.PreviewService != "" {
		objs = append(objs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: bg.PreviewService}})
	}
	if everything {
		objs = append(objs, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: ro.GetServiceName()}})
		if ro.Spec.TrafficRouting.GatewayAPI.HTTPRouteRef == nil {
			objs = append(objs, &gatewayv1.HTTPRoute{ObjectMeta: metav1.ObjectMeta{Namespace: ro.Namespace, Name: ro.Name}})
		}
	}
	for _, o := range objs {
		// Uncached: what an older Sluice made may lack the label the cache selects by.
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
				continue
			}
			return err
		}
		if !slots.Ours(o, ro) {
			continue
		}
		if err := r.Client.Delete(ctx, o, client.Preconditions{UID: ptr.To(o.GetUID())}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// handedBackSince is when the route was seen handed back and accepted (zero: not yet).
func (r *RolloutReconciler) handedBackSince(ro *meshv1alpha1.Rollout) time.Time {
	c := meta.FindStatusCondition(ro.Status.Conditions, meshv1alpha1.ConditionTrafficApplied)
	if c == nil || c.Reason != reasonHandedBack {
		return time.Time{}
	}
	return c.LastTransitionTime.Time
}

func (r *RolloutReconciler) markHandedBack(ctx context.Context, ro *meshv1alpha1.Rollout) error {
	before := ro.DeepCopy()
	rollout.HandedBack(&ro.Status, reasonHandedBack, "the route sends all traffic to Service "+ro.GetServiceName()+"; the slots go after a grace period", r.Now())
	return r.Client.Status().Patch(ctx, ro, client.MergeFrom(before))
}

func (r *RolloutReconciler) reportHandBack(ctx context.Context, ro *meshv1alpha1.Rollout, stalled bool, msg string) error {
	before := ro.DeepCopy()
	rollout.HandingBack(&ro.Status, reasonHandingBack, msg, stalled)
	if equality.Semantic.DeepEqual(before.Status, ro.Status) {
		return nil
	}
	return r.Client.Status().Patch(ctx, ro, client.MergeFrom(before))
}
