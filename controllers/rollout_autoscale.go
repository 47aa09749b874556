package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=list;watch

// kedaScaledObjectLabel is the label KEDA puts on the HorizontalPodAutoscaler it makes for a
// ScaledObject: it names the ScaledObject, the object a user knows.
const kedaScaledObjectLabel = "scaledobject.keda.sh/name"

// autoscalers is what the HorizontalPodAutoscalers of the Rollout's namespace say about it.
type autoscalers struct {
	// name of the one whose scaleTargetRef is the Rollout ("" for none).
	name string
	// problem: one targets the target Deployment, which Sluice keeps at zero replicas (the
	// HPA then does nothing; KEDA's operator would scale it up and fight Sluice).
	problem string
}

// observeAutoscalers reads the namespace's HorizontalPodAutoscalers (KEDA makes one per
// ScaledObject) from the cache.
func (r *RolloutReconciler) observeAutoscalers(ctx context.Context, ro *meshv1alpha1.Rollout, w *world) error {
	var list autoscalingv2.HorizontalPodAutoscalerList
	if err := r.Client.List(ctx, &list, client.InNamespace(ro.Namespace)); err != nil {
		return fmt.Errorf("listing HorizontalPodAutoscalers: %w", err)
	}
	var ours, misdirected []string
	for _, hpa := range list.Items {
		ref := hpa.Spec.ScaleTargetRef
		group, _, _ := strings.Cut(ref.APIVersion, "/")
		switch {
		case ref.Kind == "Rollout" && group == meshv1alpha1.GroupVersion.Group && ref.Name == ro.Name:
			ours = append(ours, hpa.Name)
		case ref.Kind == "Deployment" && group == "apps" && ref.Name == ro.Spec.TargetRef.Name:
			misdirected = append(misdirected, describeAutoscaler(&hpa))
		}
	}
	sort.Strings(ours)
	sort.Strings(misdirected)
	if len(ours) > 0 {
		w.autoscaler.name = strings.Join(ours, ",")
	}
	if len(misdirected) > 0 {
		w.autoscaler.problem = fmt.Sprintf("%s targets Deployment %s, which Sluice keeps at zero replicas: it scales nothing. Set its scaleTargetRef to {apiVersion: %s, kind: Rollout, name: %s}",
			strings.Join(misdirected, " and "), ro.Spec.TargetRef.Name, meshv1alpha1.GroupVersion.String(), ro.Name)
	}
	return nil
}

func describeAutoscaler(hpa *autoscalingv2.HorizontalPodAutoscaler) string {
	if so := hpa.Labels[kedaScaledObjectLabel]; so != "" {
		return fmt.Sprintf("ScaledObject %s (through HorizontalPodAutoscaler %s)", so, hpa.Name)
	}
	return "HorizontalPodAutoscaler " + hpa.Name
}

// initReplicas sets spec.replicas, when an autoscaler targets the Rollout and it is unset, to
// the count the stable slot runs now: an autoscaler can't read the scale subresource without
// it. Written once (an optimistic lock: a value someone wrote meanwhile wins), under Sluice's
// field manager; Git need not hold the field.
func (r *RolloutReconciler) initReplicas(ctx context.Context, ro *meshv1alpha1.Rollout, w *world) error {
	if w.autoscaler.name == "" || ro.Spec.Replicas != nil {
		return nil
	}
	n := ro.Status.Replicas
	if n == 0 && w.target != nil && w.obs.Target.Replicas > 0 {
		n = w.obs.Target.Replicas
	}
	n = max(n, 1)
	before := ro.DeepCopy()
	ro.Spec.Replicas = &n
	if err := r.Client.Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), client.FieldOwner(traffic.FieldManager)); err != nil {
		return fmt.Errorf("setting spec.replicas for autoscaler %s: %w", w.autoscaler.name, err)
	}
	log.FromContext(ctx).Info("spec.replicas set for the autoscaler", "autoscaler", w.autoscaler.name, "replicas", n)
	return nil
}

// byAutoscaler maps a HorizontalPodAutoscaler to the Rollout it targets, or to the Rollouts
// of the Deployment it targets (to say it scales nothing).
func (r *RolloutReconciler) byAutoscaler(ctx context.Context, o client.Object) []ctrl.Request {
	hpa, ok := o.(*autoscalingv2.HorizontalPodAutoscaler)
	if !ok {
		return nil
	}
	ref := hpa.Spec.ScaleTargetRef
	if ref.Kind == "Rollout" {
		return []ctrl.Request{{NamespacedName: client.ObjectKey{Namespace: hpa.Namespace, Name: ref.Name}}}
	}
	if ref.Kind != "Deployment" {
		return nil
	}
	var list meshv1alpha1.RolloutList
	if err := r.Client.List(ctx, &list, client.InNamespace(hpa.Namespace)); err != nil {
		return nil
	}
	var out []ctrl.Request
	for _, ro := range list.Items {
		if ro.Spec.TargetRef.Name == ref.Name {
			out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&ro)})
		}
	}
	return out
}
