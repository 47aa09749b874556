package controllers

import (
	"context"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// targetMissingRecheck is how often a Rollout whose target does not exist looks again: a
// Deployment created later carries no rollout label yet, so the cache (see CacheOptions)
// does not see it arrive.
const targetMissingRecheck = 15 * time.Second

// readTarget reads the Rollout's target Deployment; found is false only when the API server
// says it does not exist. The manager caches only Deployments that carry the rollout label
// (the slots', and targets once labelled): a target missing from the cache is read from the
// API server, and labelled when label is set, so that its next change reaches the cache and
// wakes the Rollout. The label is metadata only, under Sluice's field manager: GitOps tools
// that did not set it leave it alone.
func (r *RolloutReconciler) readTarget(ctx context.Context, ro *meshv1alpha1.Rollout, label bool) (*appsv1.Deployment, bool, error) {
	t := &appsv1.Deployment{}
	found, err := readThrough(ctx, r.Client, r.APIReader, client.ObjectKey{Namespace: ro.Namespace, Name: ro.Spec.TargetRef.Name}, t)
	if err != nil || !found {
		return nil, false, err
	}
	if label && t.Labels[rollout.LabelRollout] == "" {
		// A refused label (a policy engine, RBAC) must not stop the Rollout's decisions (a
		// rollback among them): it goes on with what it read, and looks again on a timer
		// (targetUnwatched) instead of the watch.
		if err := r.Client.Patch(ctx, t, labelPatch(rollout.LabelRollout, ro.Name), client.FieldOwner(traffic.FieldManager)); err != nil {
			log.FromContext(ctx).Info("target Deployment not labelled for the cache; looking again on a timer", "deployment", t.Name, "error", err.Error())
		}
	}
	return t, true, nil
}

// targetUnwatched: the target is missing or lacks the rollout label, so no change of it
// reaches the Rollout through the cache.
func targetUnwatched(w *world) bool {
	return w.target == nil || w.target.Labels[rollout.LabelRollout] == ""
}

// unlabelTarget removes the rollout label from a target the Rollout labelled, once it is
// handed back: the manager stops caching it.
func (r *RolloutReconciler) unlabelTarget(ctx context.Context, ro *meshv1alpha1.Rollout, t *appsv1.Deployment) error {
	if t.Labels[rollout.LabelRollout] != ro.Name {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Patch(ctx, t, labelPatch(rollout.LabelRollout, ""), client.FieldOwner(traffic.FieldManager)))
}
