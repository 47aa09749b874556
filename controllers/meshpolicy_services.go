package controllers

import (
	"context"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
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

// namedTargetPorts resolves, per target Service, the ports whose targetPort is a name to the
// container port numbers its EndpointSlices publish (for providers that take pod ports by
// number only: Istio). Read uncached: the cache holds only the slices of Sluice's own
// Services, and a policy is translated seldom. unresolved: some such port has no endpoint yet
// (the policy looks again on a timer: endpoints appearing bring no event here).
func (r *MeshPolicyReconciler) namedTargetPorts(ctx context.Context, services []corev1.Service) (out map[string]map[string][]int32, unresolved bool, err error) {
	for i := range services {
		svc := &services[i]
		named := map[string]bool{}
		for _, p := range svc.Spec.Ports {
			if p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "" {
				named[p.Name] = true
			}
		}
		if len(named) == 0 {
			continue
		}
		var list discoveryv1.EndpointSliceList
		if err := r.APIReader.List(ctx, &list, client.InNamespace(svc.Namespace), client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name}); err != nil {
			return nil, false, err
		}
		ports := map[string][]int32{}
		for _, sl := range list.Items {
			if len(sl.Endpoints) == 0 {
				continue
			}
			for _, p := range sl.Ports {
				name := ptr.Deref(p.Name, "")
				if p.Port != nil && named[name] && !slices.Contains(ports[name], *p.Port) {
					ports[name] = append(ports[name], *p.Port)
				}
			}
		}
		for name := range named {
			if len(ports[name]) == 0 {
				unresolved = true
				continue
			}
			sort.Slice(ports[name], func(a, b int) bool { return ports[name][a] < ports[name][b] })
		}
		if out == nil {
			out = map[string]map[string][]int32{}
		}
		out[svc.Name] = ports
	}
	return out, unresolved, nil
}
