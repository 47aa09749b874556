package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/slots"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// world is what a reconcile observed: the state machine's input plus the objects it came from.
type world struct {
	obs rollout.Observations
	// endpointsLag: a slot's pods are ready but its Service does not publish them yet.
	endpointsLag bool
	target       *appsv1.Deployment // nil when missing
	// release is what a slot taking the target's revision runs (set when target is).
	release release
	// autoscaler is what the Rollout's autoscalers say (see observeAutoscalers).
	autoscaler autoscalers
	slots      map[meshv1alpha1.Slot]*appsv1.Deployment
	// foreignSlots are Deployments under a slot's name that are not the Rollout's.
	foreignSlots map[meshv1alpha1.Slot]*appsv1.Deployment
	// services are the Services under the names the Rollout writes, as the cache has them.
	services map[string]*corev1.Service
	// routeProbe is the probe rule the route carries (nil: none); probe is the same once the
	// probe is on (see observeProbe).
	routeProbe, probe *traffic.ProbeRule
}

func (r *RolloutReconciler) observe(ctx context.Context, ro *meshv1alpha1.Rollout) (*world, error) {
	w := &world{slots: map[meshv1alpha1.Slot]*appsv1.Deployment{}, foreignSlots: map[meshv1alpha1.Slot]*appsv1.Deployment{}, services: map[string]*corev1.Service{}}
	w.obs.Now = r.Now()
	w.obs.Generation = ro.Generation
	w.obs.Slots = map[meshv1alpha1.Slot]rollout.SlotState{}

	switch t, found, err := r.readTarget(ctx, ro, true); {
	case err != nil:
		return nil, err
	case found:
		w.target = t
		rel, problem, err := r.releaseOf(ctx, ro, t)
		if err != nil {
			return nil, err
		}
		w.release = rel
		if p := targetProblem(ro, t); p != "" {
			problem = p
		}
		w.obs.Target = rollout.TargetState{Found: true, Revision: rollout.Revision(rel.template), Replicas: ptr.Deref(t.Spec.Replicas, 1),
			Problem: problem}
	}
	if err := r.observeAutoscalers(ctx, ro, w); err != nil {
		return nil, err
	}
	for _, name := range serviceNames(ro) {
		svc := &corev1.Service{}
		switch err := r.Client.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: name}, svc); {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, err
		default:
			w.services[name] = svc
		}
	}

	for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
		d := &appsv1.Deployment{}
		switch err := r.Client.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ro.GetSlotDeploymentName(s)}, d); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, err
		}
		if !slots.Ours(d, ro) {
			w.foreignSlots[s] = d // not ours: apply reports it
			continue
		}
		w.slots[s] = d
		// Ready pods are not yet reachable: the data plane routes to what the slot Service's
		// EndpointSlices publish, which lags behind (more so on a busy node, tens of seconds
		// after an API server restart) and may still list the pods of the revision the slot
		// ran before.
		revision := d.Annotations[rollout.AnnotationRevision]
		eps, err := r.slotEndpoints(ctx, ro.Namespace, ro.GetSlotServiceName(s), revision)
		if err != nil {
			return nil, err
		}
		replicas := ptr.Deref(d.Spec.Replicas, 1)
		ready := deploymentReady(d)
		if ready {
			ready = eps.current >= replicas && eps.other == 0
			w.endpointsLag = w.endpointsLag || !ready
		}
		available := eps.current
		if eps.other > 0 {
			available = 0 // the Service may still send requests to pods of another revision
		}
		w.obs.Slots[s] = rollout.SlotState{Revision: revision, Replicas: replicas, Ready: ready, Available: available}
		w.obs.Report.Slots = append(w.obs.Report.Slots, meshv1alpha1.SlotStatus{Slot: s, Revision: revision, Replicas: replicas,
			ReadyReplicas: eps.current, Config: parseConfig(d.Annotations[slots.AnnotationConfig])})
		if s == ro.Status.StableSlot || (ro.Status.StableSlot == "" && s == meshv1alpha1.SlotA) {
			// Only the stable slot's pods: an HPA that finds its metric within tolerance
			// keeps the scale's status count; counting the canary's pods too would grow
			// spec.replicas by them, and the canary's share with it.
			w.obs.Report.CurrentReplicas = d.Status.Replicas
		}
	}
	w.obs.Report.Selector = rollout.LabelRollout + "=" + ro.Name
	w.obs.Report.Autoscaler, w.obs.Report.AutoscalerProblem = w.autoscaler.name, w.autoscaler.problem

	stable := ro.Status.StableSlot
	if stable == "" {
		stable = meshv1alpha1.SlotA
	}
	split := r.split(ro, stable, &rollout.TrafficIntent{Matches: true}, "")
	st, err := r.Router.Observe(ctx, split)
	if err != nil {
		// No route API, no permission: nothing is in force; say why.
		w.obs.Traffic = rollout.TrafficState{Message: err.Error()}
		return w, nil
	}
	w.obs.Traffic = rollout.TrafficState{
		Found: st.Found, Accepted: st.Accepted, Message: st.Message, MirrorPercent: st.MirrorPercent,
		Matches: st.MatchesApplied && len(split.Matches) > 0,
		Weights: map[meshv1alpha1.Slot]int32{}, Reaches: map[meshv1alpha1.Slot]bool{},
	}
	w.routeProbe = st.Probe
	for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
		w.obs.Traffic.Weights[s] = st.Weights[ro.GetSlotServiceName(s)]
		w.obs.Traffic.Reaches[s] = st.Reaches[ro.GetSlotServiceName(s)]
	}
	return w, nil
}

// targetProblem names a misconfiguration of the target only a person can fix: a named
// targetPort no container of its pods declares (the slot Services could never reach them).
func targetProblem(ro *meshv1alpha1.Rollout, t *appsv1.Deployment) string {
	port := ro.Spec.Service.GetTargetPort()
	if port.Type != intstr.String {
		return ""
	}
	for _, c := range t.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == port.StrVal {
				return ""
			}
		}
	}
	return fmt.Sprintf("spec.service.targetPort %q: no container of the target Deployment %s declares a port with that name", port.StrVal, t.Name)
}

// endpoints sums up what a slot Service's EndpointSlices publish.
type endpoints struct {
	// current: ready endpoints of live pods of the slot's revision.
	current int32
	// other: endpoints the data plane may still pick that are not the current revision's:
	// a pod of another revision, a pod being deleted or gone, an endpoint without its pod.
	other int32
}

// slotEndpoints reads the slot Service's EndpointSlices and the pods behind them, from the
// cache: it holds only the slices of Sluice's Services and the pods of Rollouts
// (RolloutCacheOptions), and their changes wake the Rollout.
func (r *RolloutReconciler) slotEndpoints(ctx context.Context, ns, svc, revision string) (endpoints, error) {
	var list discoveryv1.EndpointSliceList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: svc}); err != nil {
		return endpoints{}, err
	}
	var out endpoints
	for _, sl := range list.Items {
		for _, ep := range sl.Endpoints {
			// A nil ready condition means ready (EndpointSlice API); a terminating endpoint
			// that still serves is picked by some data planes too.
			serving := ep.Conditions.Ready == nil || *ep.Conditions.Ready || (ep.Conditions.Serving != nil && *ep.Conditions.Serving)
			if !serving {
				continue
			}
			if ep.TargetRef == nil || ep.TargetRef.Kind != "Pod" {
				out.other++
				continue
			}
			pod := &corev1.Pod{}
			err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: ep.TargetRef.Name}, pod)
			switch {
			case apierrors.IsNotFound(err):
				out.other++ // gone, and still published
			case err != nil:
				return endpoints{}, err
			case pod.DeletionTimestamp != nil || pod.Labels[rollout.LabelRevision] != revision || (ep.Conditions.Ready != nil && !*ep.Conditions.Ready):
				out.other++
			default:
				out.current++
			}
		}
	}
	return out, nil
}

// deploymentReady: the Deployment observed its spec and every replica is updated, ready and
// available, with no old pod left.
func deploymentReady(d *appsv1.Deployment) bool {
	n := ptr.Deref(d.Spec.Replicas, 1)
	s := d.Status
	return n > 0 && s.ObservedGeneration >= d.Generation && s.UpdatedReplicas == n && s.ReadyReplicas == n && s.AvailableReplicas == n && s.Replicas == n
}

// split is the traffic.Split of a Rollout for the given stable slot and intent.
func (r *RolloutReconciler) split(ro *meshv1alpha1.Rollout, stable meshv1alpha1.Slot, t *rollout.TrafficIntent, probePath string) traffic.Split {
	gw := ro.Spec.TrafficRouting.GatewayAPI
	s := traffic.Split{
		Namespace: ro.Namespace, OwnerName: ro.Name, OwnerUID: ro.UID,
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
	s.Probe = r.probeRule(ro, s, t, probePath)
	return s
}
