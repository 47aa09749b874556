// Package traffic moves a Rollout's requests between its two slot Services. The Router
// interface is what the Rollout controller uses; implementations live in sub-packages
// (gatewayapi: a Gateway API HTTPRoute, generated or existing).
package traffic

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// FieldManager is the server-side apply field manager of everything Sluice writes.
const FieldManager = "sluice"

// Backend is one slot Service and its percent of the traffic.
type Backend struct {
	Service string
	Weight  int32
}

// Split is the traffic a Rollout wants on its route.
type Split struct {
	// Namespace of the Rollout, its Services and its route.
	Namespace string
	// Owner is the Rollout; a generated route is owned by it (garbage-collected with it).
	Owner metav1.OwnerReference
	// Generated is set when Sluice generates and owns the whole route; nil with Existing.
	Generated *GeneratedRoute
	// Existing names a route the user owns; only Sluice's backendRefs and rules change in it.
	Existing string
	// ApexService is the Service clients call. In an existing route, backendRefs to it (or to
	// a slot Service) mark the rules Sluice drives.
	ApexService string
	// Port of the slot Services (the backendRefs' port).
	Port int32
	// Stable and Canary are the two slot Services with their weights (summing to 100).
	Stable, Canary Backend
	// Matches send matching requests to the canary only (A/B), whatever the weights. Empty: none.
	Matches []meshv1alpha1.RouteMatch
	// MirrorPercent shadows this percent of the requests to the canary. 0: no mirror.
	MirrorPercent int32
}

// GeneratedRoute is a route Sluice creates, named after the Rollout.
type GeneratedRoute struct {
	Name       string
	ParentRefs []meshv1alpha1.ParentReference
	Hostnames  []meshv1alpha1.Hostname
}

// RouteName is the name of the route the split lives in.
func (s Split) RouteName() string {
	if s.Generated != nil {
		return s.Generated.Name
	}
	return s.Existing
}

// Status is what the data plane's API says about the route now.
type Status struct {
	// Found is false when the route does not exist.
	Found bool
	// Weights the route's Sluice-driven rules carry now, by Service name.
	Weights map[string]int32
	// Matches and MirrorPercent the route carries now.
	MatchesApplied bool
	MirrorPercent  int32
	// Accepted is true when every parent reports Accepted=True for the route's current
	// generation (the split is in force, not merely stored).
	Accepted bool
	// Message explains what is missing when not Found or not Accepted.
	Message string
}

// Router applies and observes a Split.
type Router interface {
	// Apply makes the route carry the split. Idempotent; never touches what Sluice does not own.
	Apply(ctx context.Context, s Split) error
	// Observe reads the route and its parents' status.
	Observe(ctx context.Context, s Split) (Status, error)
}
