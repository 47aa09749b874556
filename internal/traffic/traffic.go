// Package traffic moves a Rollout's requests between its two slot Services. The Router
// interface is what the Rollout controller uses; implementations live in sub-packages
// (gatewayapi: a Gateway API HTTPRoute, generated or existing).
package traffic

import (
	"context"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/probe"
)

// FieldManager is the server-side apply field manager of everything Sluice writes.
const FieldManager = "sluice"

// Labels of a route Sluice generates for a Rollout. It has no ownerReference to the Rollout:
// under foreground deletion (Argo CD prunes that way) the garbage collector would delete it with
// the Rollout before the Rollout's finalizer hands its traffic back.
const (
	// LabelManagedBy (value ManagedByValue) marks every route Sluice generated, released or not.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	ManagedByValue = "sluice"
	// LabelRollout is the name of the Rollout the route was generated for (set when the name fits
	// a label value, 63 characters). It stays when the route is released.
	LabelRollout = "mesh.sluice.dev/rollout"
	// LabelRolloutUID is the UID of the Rollout whose route it is now; a released route has none.
	LabelRolloutUID = "mesh.sluice.dev/rollout-uid"
)

// LabelWatched (value WatchedValue) marks the Services the manager caches: those a Rollout
// makes, and the targets of MeshPolicies (labelled when a policy first reads them). Other
// Services of the cluster stay out of the manager's memory.
const (
	LabelWatched = "mesh.sluice.dev/watched"
	WatchedValue = "true"
)

// Backend is one slot Service and its percent of the traffic.
type Backend struct {
	Service string
	Weight  int32
}

// Split is the traffic a Rollout wants on its route.
type Split struct {
	// Namespace of the Rollout, its Services and its route.
	Namespace string
	// OwnerName and OwnerUID are the Rollout's; a generated route carries them in its labels
	// (LabelRollout, LabelRolloutUID), and one labelled for another UID is never taken over.
	OwnerName string
	OwnerUID  types.UID
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
	// Probe is the data-plane probe's rule to write with the split (nil: none, and an old one
	// is removed).
	Probe *ProbeRule
}

// RolloutOf is the UID of the Rollout whose generated route obj is now: its LabelRolloutUID or,
// on a route generated before that label, its controller ownerReference to a Rollout (the next
// apply replaces it with the labels). "" for any other route, a released one included.
func RolloutOf(obj metav1.Object) types.UID {
	if uid := obj.GetLabels()[LabelRolloutUID]; uid != "" {
		return types.UID(uid)
	}
	if ref := metav1.GetControllerOf(obj); ref != nil && ref.Kind == "Rollout" && strings.HasPrefix(ref.APIVersion, meshv1alpha1.GroupVersion.Group+"/") {
		return ref.UID
	}
	return ""
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
	// Reaches tells, by Service name, whether a rule Sluice drives can still send the Service
	// requests: a weight above 0 in a driven rule, a backend of a Sluice A/B rule, or the target
	// of Sluice's mirror filter. A Service it does not list gets nothing from the route's spec.
	Reaches map[string]bool
	// Accepted is true when every parent reports Accepted=True for the route's current
	// generation (the split is in force, not merely stored).
	Accepted bool
	// Message explains what is missing when not Found or not Accepted.
	Message string
	// Probe is the data-plane probe's rule the route carries now (nil: none, or a rule under the
	// probe's name that is not exactly as Apply writes it, which the next Apply replaces). Its
	// backend counts in Reaches.
	Probe *ProbeRule
}

// ProbeRule is the data-plane probe's rule (see internal/probe): matched only by a request for
// Path with Sluice's probe header set to Token, routed only to Service, answered with Token and
// Split (the version of the split written with it) in response headers. It carries no filter of
// the user's and no policy settings.
type ProbeRule struct {
	Service string
	Path    string
	Token   string
	Split   string
}

// Router applies and observes a Split.
type Router interface {
	// Apply makes the route carry the split. Idempotent; never touches what Sluice does not own.
	Apply(ctx context.Context, s Split) error
	// Observe reads the route and its parents' status.
	Observe(ctx context.Context, s Split) (Status, error)
	// Release hands the route back for a deleted Rollout: an existing route's driven rules point
	// at the apex Service again (Sluice's own rules and mirror removed, everything else kept); a
	// generated route sends everything to the apex Service and stops being the Rollout's (it
	// stays, serving, until the user deletes it). It reads the split's route, owner, ApexService,
	// Port and slot Service names (Stable.Service, Canary.Service: the backendRefs it replaces);
	// weights, matches, mirror and probe are ignored (Sluice's A/B and probe rules and its mirror
	// are removed). Idempotent; a missing route is not an error.
	Release(ctx context.Context, s Split) error
	// ProbeTargets are where to send a probe of the split's route: one per parent. Where no
	// probe is possible (an east-west parent, a Gateway without a usable address) unprobeable
	// says why and targets is empty. A non-empty override (scheme://host:port) replaces every
	// Gateway's address.
	ProbeTargets(ctx context.Context, s Split, override string) (targets []probe.Target, unprobeable string, err error)
}
