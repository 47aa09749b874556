package cli

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/traffic"
	"github.com/sluice-mesh/sluice/internal/traffic/gatewayapi"
)

// rolloutView is what the tree shows of one Rollout, read at one moment. Only the Rollout must
// be readable; what else can't be read (no permission, no Gateway API) is shown in its place.
type rolloutView struct {
	ro        *meshv1alpha1.Rollout
	target    *appsv1.Deployment // nil: missing or unreadable (targetErr)
	targetErr error
	slots     map[meshv1alpha1.Slot]*slotView
	route     routeView
	gates     map[string]*meshv1alpha1.HealthGate
	gateErrs  map[string]error
}

type slotView struct {
	deploy *appsv1.Deployment // nil: none (or err)
	err    error
	pods   []corev1.Pod
	podErr error
}

// routeView is the route as the manager reads it (gatewayapi.Router.Observe): the weights of
// the rules Sluice drives, by Service, and whether every parent accepted its generation.
type routeView struct {
	name string
	st   traffic.Status
	err  error
}

// revision is the slot Deployment's revision ("" without one).
func (s *slotView) revision() string {
	if s == nil || s.deploy == nil {
		return ""
	}
	return s.deploy.Annotations[rollout.AnnotationRevision]
}

// readRollout reads one Rollout and everything around it.
func readRollout(ctx context.Context, c client.Client, ns, name string) (*rolloutView, error) {
	ro := &meshv1alpha1.Rollout{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ro); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("Rollout %s/%s not found", ns, name) //nolint:staticcheck // a kind name starts the sentence
		}
		return nil, fmt.Errorf("reading Rollout %s/%s: %w", ns, name, err)
	}
	return around(ctx, c, ro), nil
}

// around reads what a Rollout refers to and owns.
func around(ctx context.Context, c client.Client, ro *meshv1alpha1.Rollout) *rolloutView {
	v := &rolloutView{ro: ro, slots: map[meshv1alpha1.Slot]*slotView{}, gates: map[string]*meshv1alpha1.HealthGate{}, gateErrs: map[string]error{}}
	t := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ro.Spec.TargetRef.Name}, t); err != nil {
		v.targetErr = err
	} else {
		v.target = t
	}
	for _, s := range []meshv1alpha1.Slot{meshv1alpha1.SlotA, meshv1alpha1.SlotB} {
		sv := &slotView{}
		v.slots[s] = sv
		d := &appsv1.Deployment{}
		switch err := c.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ro.GetSlotDeploymentName(s)}, d); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			sv.err = err
			continue
		}
		sv.deploy = d
		var pods corev1.PodList
		if err := c.List(ctx, &pods, client.InNamespace(ro.Namespace), client.MatchingLabels{rollout.LabelRollout: ro.Name, rollout.LabelSlot: string(s)}); err != nil {
			sv.podErr = err
			continue
		}
		sv.pods = pods.Items
		slices.SortFunc(sv.pods, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	}
	if a := ro.Spec.Analysis; a != nil {
		for _, ref := range a.HealthGates {
			g := &meshv1alpha1.HealthGate{}
			if err := c.Get(ctx, client.ObjectKey{Namespace: ro.Namespace, Name: ref.Name}, g); err != nil {
				v.gateErrs[ref.Name] = err
				continue
			}
			v.gates[ref.Name] = g
		}
	}
	split := splitOf(ro)
	v.route.name = split.RouteName()
	v.route.st, v.route.err = gatewayapi.New(c).Observe(ctx, split)
	return v
}

// splitOf names the route and Services of a Rollout as the manager does when it observes the
// route (controllers/rollout_observe.go): weights are read, not written, so none are set.
func splitOf(ro *meshv1alpha1.Rollout) traffic.Split {
	stable := stableSlot(ro)
	gw := ro.Spec.TrafficRouting.GatewayAPI
	s := traffic.Split{
		Namespace: ro.Namespace, OwnerName: ro.Name, OwnerUID: ro.UID,
		ApexService: ro.GetServiceName(), Port: ro.Spec.Service.Port,
		Stable: traffic.Backend{Service: ro.GetSlotServiceName(stable)},
		Canary: traffic.Backend{Service: ro.GetSlotServiceName(stable.Other())},
	}
	if gw.HTTPRouteRef != nil {
		s.Existing = gw.HTTPRouteRef.Name
	} else {
		s.Generated = &traffic.GeneratedRoute{Name: ro.Name, ParentRefs: gw.ParentRefs, Hostnames: gw.Hostnames}
	}
	if c := ro.Spec.Strategy.Canary; c != nil {
		s.Matches = c.Match
	}
	return s
}

// stableSlot is status.stableSlot; before the first reconcile the manager starts with a.
func stableSlot(ro *meshv1alpha1.Rollout) meshv1alpha1.Slot {
	if ro.Status.StableSlot == "" {
		return meshv1alpha1.SlotA
	}
	return ro.Status.StableSlot
}

// releaseActive: a canary revision is being released (the state machine's definition).
func releaseActive(st *meshv1alpha1.RolloutStatus) bool {
	if st.CanaryRevision == "" {
		return false
	}
	switch st.Phase {
	case meshv1alpha1.PhaseRollingBack, meshv1alpha1.PhaseRolledBack, meshv1alpha1.PhaseHealthy:
		return false
	}
	return true
}
