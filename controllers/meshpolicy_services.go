package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// targetServiceRecheck is how often a policy whose target Service does not exist looks again:
// a Service created later is not labelled yet, so the cache does not see it arrive.
const targetServiceRecheck = 15 * time.Second

// service reads a Service a policy needs; found is false only when the API server says it
// does not exist. The manager caches only Services labelled traffic.LabelWatched (see
// CacheOptions): one missing from the cache is read from the API server and labelled, so its
// next change reaches the cache and wakes the namespace's policies. The label is metadata
// only, written by an update (not an apply) so that the policy's own applies of annotations
// never take it away.
func (r *MeshPolicyReconciler) service(ctx context.Context, namespace, name string) (*corev1.Service, bool, error) {
	s := &corev1.Service{}
	found, err := readThrough(ctx, r.Client, r.APIReader, client.ObjectKey{Namespace: namespace, Name: name}, s)
	if err != nil || !found {
		return nil, false, err
	}
	if s.Labels[traffic.LabelWatched] != traffic.WatchedValue {
		if err := r.Client.Patch(ctx, s, labelPatch(traffic.LabelWatched, traffic.WatchedValue), client.FieldOwner(policy.FieldManager)); err != nil {
			// The policy still applies; its changes reach it at the next resync instead.
			log.FromContext(ctx).Info("Service not labelled for the cache", "service", name, "error", err.Error())
		}
	}
	return s, true, nil
}
