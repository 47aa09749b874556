package controllers

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// world is what a reconcile observed: the state machine's input plus the objects it came from.
type world struct {
	obs rollout.Observations
	// endpointsLag: a slot's pods are ready but its Service does not publish them yet.
	endpointsLag bool
	target       *appsv1.Deployment // nil when missing
	slots        map[meshv1alpha1.Slot]*appsv1.Deployment
}

func (r *RolloutReconciler) observe(ctx context.Context, ro *meshv1alpha1.Rollout) (*world, error) {
	w := &world{slots: map[meshv1alpha1.Slot]*appsv1.Deployment{}}
	w.obs.Now = r.Now()
	w.obs.Generation = ro.Generation
	w.obs.Slots = map[meshv1alpha1.Slot]rollout.SlotState{}

	t := &appsv1.Deployment{}
	switch err := r.Client.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ro.Spec.TargetRef.Name}, t); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return nil, err
	default:
		w.target = t
		w.obs.Target = rollout.TargetState{Found: true, Revision: rollout.Revision(&t.Spec.Template), Replicas: ptr.Deref(t.Spec.Replicas, 1)}
	}

	for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
		d := &appsv1.Deployment{}
		switch err := r.Client.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ro.GetSlotDeploymentName(s)}, d); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, err
		}
		if !metav1.IsControlledBy(d, ro) {
			continue // not ours: apply will report the conflict
		}
		w.slots[s] = d
		ready := deploymentReady(d)
		if ready {
			// Ready pods are not yet reachable: the data plane routes to what the slot
			// Service's EndpointSlices publish, which lags behind (more so on a busy node).
			n, err := r.readyEndpoints(ctx, ro.Namespace, ro.GetSlotServiceName(s))
			if err != nil {
				return nil, err
			}
			ready = n >= ptr.Deref(d.Spec.Replicas, 1)
			w.endpointsLag = w.endpointsLag || !ready
		}
		w.obs.Slots[s] = rollout.SlotState{Revision: d.Annotations[rollout.AnnotationRevision], Replicas: ptr.Deref(d.Spec.Replicas, 1), Ready: ready}
	}

	stable := ro.Status.StableSlot
	if stable == "" {
		stable = meshv1alpha1.SlotA
	}
	split := r.split(ro, stable, &rollout.TrafficIntent{Matches: true})
	st, err := r.Router.Observe(ctx, split)
	if err != nil {
		// No route API, no permission: nothing is in force; say why.
		w.obs.Traffic = rollout.TrafficState{Message: err.Error()}
		return w, nil
	}
	w.obs.Traffic = rollout.TrafficState{
		Found: st.Found, Accepted: st.Accepted, Message: st.Message, MirrorPercent: st.MirrorPercent,
		Matches: st.MatchesApplied && len(split.Matches) > 0,
		Weights: map[meshv1alpha1.Slot]int32{},
	}
	for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
		w.obs.Traffic.Weights[s] = st.Weights[ro.GetSlotServiceName(s)]
	}
	return w, nil
}

// readyEndpoints counts the ready endpoints the Service's EndpointSlices publish. Read uncached
// and by label: a cluster-wide EndpointSlice informer would cost every edge cluster memory.
func (r *RolloutReconciler) readyEndpoints(ctx context.Context, ns, svc string) (int32, error) {
	var list discoveryv1.EndpointSliceList
	if err := r.APIReader.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc}); err != nil {
		return 0, err
	}
	n := int32(0)
	for _, sl := range list.Items {
		for _, ep := range sl.Endpoints {
			// A nil ready condition means ready (EndpointSlice API).
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				n++
			}
		}
	}
	return n, nil
}

// deploymentReady: the Deployment observed its spec and every replica is updated, ready and
// available, with no old pod left.
func deploymentReady(d *appsv1.Deployment) bool {
	n := ptr.Deref(d.Spec.Replicas, 1)
	s := d.Status
	return n > 0 && s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == n && s.ReadyReplicas == n && s.AvailableReplicas == n && s.Replicas == n
}

// split is the traffic.Split of a Rollout for the given stable slot and intent.
func (r *RolloutReconciler) split(ro *meshv1alpha1.Rollout, stable meshv1alpha1.Slot, t *rollout.TrafficIntent) traffic.Split {
	gw := ro.Spec.TrafficRouting.GatewayAPI
	s := traffic.Split{
		Namespace: ro.Namespace, Owner: *metav1.NewControllerRef(ro, meshv1alpha1.GroupVersion.WithKind("Rollout")),
		ApexService: ro.GetServiceName(), Port: ro.Spec.Service.Port,
		Stable: traffic.Backend{Service: ro.GetSlotServiceName(stable), Weight: t.Weights[stable]},
		Canary: traffic.Backend{Service: ro.GetSlotServiceName(stable.Other()), Weight: t.Weights[stable.Other()]},
	}
	if gw.HTTPRouteRef != nil {
		s.Existing = gw.HTTPRouteRef.Name
	} else {
		s.Generated = &traffic.GeneratedRoute{Name: ro.Name, ParentRefs: gw.ParentRefs, Hostnames: gw.Hostnames}
	}
	if c := ro.Spec.Strategy.Canary; c != nil && t.Matches {
		s.Matches = c.Match
	}
	s.MirrorPercent = t.MirrorPercent
	return s
}
