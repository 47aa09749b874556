// Package gatewayapi implements traffic.Router with a Gateway API HTTPRoute (gateway.networking.k8s.io/v1).
//
// Two modes:
//   - Generated: Sluice owns the whole route and writes it with server-side apply (force, field
//     manager "sluice"); see generated.go.
//   - Existing: the user owns the route (often through GitOps). spec.rules and everything in it
//     are atomic lists in the CRD, so server-side apply cannot own a part of a rule; Sluice does a
//     read-modify-write of spec.rules guarded by spec.rules as read (a JSON patch test) and changes
//     only the backendRefs of the Services it drives, its own mirror filter, its own A/B rules
//     and its probe rule; see existing.go.
//
// The data-plane probe's rule (internal/probe, named probe.RuleName) is Sluice's own in both: it
// is written with the split when the split asks for it and removed otherwise, is never a driven
// rule (its backend is a slot, but it carries no weight to move), and never gets a MeshPolicy's
// settings (a retry or a timeout would change what the probe proves).
//
// In both, the router is the only writer of the route's rules while the Rollout drives it: it
// composes the settings MeshPolicies publish on the route (internal/routerules) into every
// write, so a policy never writes those rules, and its publication never makes the router's
// write conflict.
//
// Weights are written as given (Split weights sum to 100); a backendRef's weight is relative to
// the other backendRefs of its rule, so a third Service with a non-zero weight in a driven rule
// takes its share before stable and canary split the rest.
package gatewayapi

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/probe"
	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// Rule names Sluice gives the rules it writes.
const (
	// SplitRuleName is the weighted rule of a generated route.
	SplitRuleName = "sluice-split"
	// MatchRulePrefix starts the names of the A/B rules (sluice-match-0, sluice-match-1, ...).
	// In an existing route, rules with this prefix are Sluice's: they are replaced on every Apply.
	MatchRulePrefix = "sluice-match-"
)

// Errors Apply wraps (test them with errors.Is). Each is a problem only a change of the Rollout or
// of the route fixes; API errors (conflict, invalid, forbidden) are wrapped as they come, so
// apierrors.IsConflict etc. work on Apply's error.
var (
	// ErrInvalidSplit: the Split breaks the contract of traffic.Split (a caller bug).
	ErrInvalidSplit = errors.New("invalid traffic split")
	// ErrRouteNotFound: the existing route named by the Split does not exist.
	ErrRouteNotFound = errors.New("HTTPRoute not found")
	// ErrNoDrivenRule: the existing route has no rule with a backendRef to the apex or a slot Service.
	ErrNoDrivenRule = errors.New("HTTPRoute has no rule Sluice can drive")
	// ErrRouteNotOwned: a route with the generated route's name exists and is not the Rollout's.
	ErrRouteNotOwned = errors.New("HTTPRoute exists and is not the Rollout's")
)

// Router drives HTTPRoutes through a controller-runtime client. The client must be able to
// read and write gateway.networking.k8s.io/v1 HTTPRoutes (unstructured is enough: no scheme
// registration is needed).
type Router struct {
	c client.Client
	// Gateways reads the Gateways a probe goes through (nil: c). A manager that watches only
	// some namespaces has no cache for the Gateways' (often another namespace): pass an
	// uncached reader.
	Gateways client.Reader
}

var _ traffic.Router = (*Router)(nil)

// New returns a Router that uses c.
func New(c client.Client) *Router {
	return &Router{c: c}
}

// WithGateways sets the reader of Gateways (see Router.Gateways).
func (r *Router) WithGateways(gateways client.Reader) *Router {
	r.Gateways = gateways
	return r
}

// Apply makes the route carry the split.
func (r *Router) Apply(ctx context.Context, s traffic.Split) error {
	if err := validate(s); err != nil {
		return err
	}
	if s.Generated != nil {
		return r.applyGenerated(ctx, s)
	}
	return r.applyExisting(ctx, s)
}

func validate(s traffic.Split) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if s.Namespace == "" {
		add("namespace is empty")
	}
	switch {
	case s.Generated != nil && s.Existing != "":
		add("both a generated and an existing route are set")
	case s.Generated == nil && s.Existing == "":
		add("neither a generated nor an existing route is set")
	case s.Generated != nil:
		if s.Generated.Name == "" {
			add("generated route has no name")
		}
		if len(s.Generated.ParentRefs) == 0 {
			add("generated route has no parentRefs")
		}
		if s.OwnerUID == "" || s.OwnerName == "" {
			add("owner is incomplete (name and uid are needed)")
		}
	}
	if s.Stable.Service == "" || s.Canary.Service == "" {
		add("stable and canary Services must be named")
	} else if s.Stable.Service == s.Canary.Service {
		add("stable and canary are the same Service %q", s.Stable.Service)
	}
	if s.Port < 1 || s.Port > 65535 {
		add("port %d is out of 1-65535", s.Port)
	}
	if s.Stable.Weight < 0 || s.Canary.Weight < 0 || s.Stable.Weight+s.Canary.Weight != 100 {
		add("weights %d/%d must be non-negative and sum to 100", s.Stable.Weight, s.Canary.Weight)
	}
	if s.MirrorPercent < 0 || s.MirrorPercent > 100 {
		add("mirror percent %d is out of 0-100", s.MirrorPercent)
	}
	if p := s.Probe; p != nil {
		if p.Service == "" {
			add("probe.service is empty")
		}
		if !strings.HasPrefix(p.Path, "/") {
			add("probe.path %q does not start with /", p.Path)
		}
		if p.Token == "" {
			add("probe.token is empty")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSplit, strings.Join(problems, "; "))
	}
	return nil
}

// slotNames are the Service names whose backendRefs Sluice drives.
type slotNames struct {
	namespace            string
	apex, stable, canary string
}

func namesOf(s traffic.Split) slotNames {
	return slotNames{namespace: s.Namespace, apex: s.ApexService, stable: s.Stable.Service, canary: s.Canary.Service}
}

// localService is the name of the Service ref points at in the route's namespace, else "".
func (n slotNames) localService(ref gwv1.BackendObjectReference) string {
	return routerules.LocalService(n.namespace, ref)
}

// isDriven reports whether ref is one of the backendRefs Sluice replaces (apex, stable, canary).
func (n slotNames) isDriven(ref gwv1.BackendObjectReference) bool {
	name := n.localService(ref)
	return name != "" && (name == n.apex || name == n.stable || name == n.canary)
}

// isSluiceMirror reports whether f is Sluice's mirror filter. A mirror to either slot counts (not
// only to the canary): the slots swap roles at promotion, and the old mirror must still be found.
func (n slotNames) isSluiceMirror(f gwv1.HTTPRouteFilter) bool {
	if f.Type != gwv1.HTTPRouteFilterRequestMirror || f.RequestMirror == nil {
		return false
	}
	name := n.localService(f.RequestMirror.BackendRef)
	return name != "" && (name == n.stable || name == n.canary)
}

// isMatchRule reports whether the rule is one of Sluice's A/B rules.
func isMatchRule(rule gwv1.HTTPRouteRule) bool {
	return rule.Name != nil && strings.HasPrefix(string(*rule.Name), MatchRulePrefix)
}

// isSluiceRule reports whether the rule is one Sluice adds to an existing route (A/B, probe).
func isSluiceRule(rule gwv1.HTTPRouteRule) bool {
	return isMatchRule(rule) || probe.IsRule(rule)
}

// probeRule is the probe rule the split asks for; ok is false when it asks for none.
func probeRule(s traffic.Split) (rule gwv1.HTTPRouteRule, ok bool) {
	if s.Probe == nil {
		return rule, false
	}
	return probe.Rule(s.Probe.Service, s.Port, s.Probe.Path, s.Probe.Token, s.Probe.Split), true
}

func matchRuleName(i int) gwv1.SectionName {
	return gwv1.SectionName(fmt.Sprintf("%s%d", MatchRulePrefix, i))
}

// serviceRef is a backendRef to a Service of the route's namespace, with the defaults the CRD
// would fill spelled out, so what Sluice writes compares equal to what it reads back.
func serviceRef(name string, port, weight int32) gwv1.HTTPBackendRef {
	return gwv1.HTTPBackendRef{BackendRef: gwv1.BackendRef{
		BackendObjectReference: serviceObjectRef(name, port),
		Weight:                 ptr.To(weight),
	}}
}

func serviceObjectRef(name string, port int32) gwv1.BackendObjectReference {
	return gwv1.BackendObjectReference{
		Group: ptr.To(gwv1.Group("")),
		Kind:  ptr.To(gwv1.Kind("Service")),
		Name:  gwv1.ObjectName(name),
		Port:  ptr.To(port),
	}
}

// mirrorFilter shadows percent of the requests to the canary.
func mirrorFilter(s traffic.Split) gwv1.HTTPRouteFilter {
	return gwv1.HTTPRouteFilter{
		Type: gwv1.HTTPRouteFilterRequestMirror,
		RequestMirror: &gwv1.HTTPRequestMirrorFilter{
			BackendRef: serviceObjectRef(s.Canary.Service, s.Port),
			Percent:    ptr.To(s.MirrorPercent),
		},
	}
}

// mirrorPercent is the share a mirror filter shadows: percent, else fraction, else all (the
// Gateway API default when neither is set).
func mirrorPercent(f gwv1.HTTPRouteFilter) int32 {
	m := f.RequestMirror
	switch {
	case m.Percent != nil:
		return *m.Percent
	case m.Fraction != nil:
		den := int32(100)
		if m.Fraction.Denominator != nil && *m.Fraction.Denominator > 0 {
			den = *m.Fraction.Denominator
		}
		return m.Fraction.Numerator * 100 / den
	default:
		return 100
	}
}

// slotOrder lists the two slot backends by Service name (slot a, then b), not stable first:
// promotion only swaps which slot is stable, and must leave the route as it is.
func slotOrder(s traffic.Split) []traffic.Backend {
	if s.Canary.Service < s.Stable.Service {
		return []traffic.Backend{s.Canary, s.Stable}
	}
	return []traffic.Backend{s.Stable, s.Canary}
}
