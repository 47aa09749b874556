// Package gatewayapi implements traffic.Router with a Gateway API HTTPRoute (gateway.networking.k8s.io/v1).
//
// Two modes:
//   - Generated: Sluice owns the whole route and writes it with server-side apply (force, field
//     manager "sluice"); see generated.go.
//   - Existing: the user owns the route (often through GitOps). spec.rules and everything in it
//     are atomic lists in the CRD, so server-side apply cannot own a part of a rule; Sluice does a
//     read-modify-write of spec.rules guarded by the resourceVersion and changes only the
//     backendRefs of the Services it drives, its own mirror filter and its own A/B rules; see
//     existing.go.
//
// Weights are written as given (Split weights sum to 100); a backendRef's weight is relative to
// the other backendRefs of its rule, so a third Service with a non-zero weight in a driven rule
// takes its share before stable and canary split the rest.
package gatewayapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

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

// ManagedByLabel marks the routes Sluice generates.
const (
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "sluice"
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
	ErrRouteNotOwned = errors.New("HTTPRoute exists and is not owned by the Rollout")
)

// Router drives HTTPRoutes through a controller-runtime client. The client must be able to
// read and write gateway.networking.k8s.io/v1 HTTPRoutes (unstructured is enough: no scheme
// registration is needed).
type Router struct {
	c client.Client
}

var _ traffic.Router = (*Router)(nil)

// New returns a Router that uses c.
func New(c client.Client) *Router {
	return &Router{c: c}
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
		if s.Owner.UID == "" || s.Owner.Name == "" || s.Owner.Kind == "" {
			add("owner reference is incomplete (kind, name and uid are needed)")
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
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSplit, strings.Join(problems, "; "))
	}
	return nil
}

// routeGVK is what the unstructured reads and writes carry.
var routeGVK = schema.GroupVersionKind{Group: gwv1.GroupVersion.Group, Version: gwv1.GroupVersion.Version, Kind: "HTTPRoute"}

// route is an HTTPRoute read from the API server: typed for reading, and its rules as the
// server's JSON for writing back, so fields Sluice does not know (a newer CRD) survive.
type route struct {
	obj      *unstructured.Unstructured
	typed    gwv1.HTTPRoute
	rawRules []any
}

// getRoute reads the route; found is false when it does not exist.
func (r *Router) getRoute(ctx context.Context, namespace, name string) (rt *route, found bool, err error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(routeGVK)
	if err := r.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("reading HTTPRoute %s/%s: %w", namespace, name, err)
	}
	rt = &route{obj: u}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &rt.typed); err != nil {
		return nil, true, fmt.Errorf("decoding HTTPRoute %s/%s: %w", namespace, name, err)
	}
	rules, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
	if err != nil {
		return nil, true, fmt.Errorf("HTTPRoute %s/%s: spec.rules: %w", namespace, name, err)
	}
	if len(rules) != len(rt.typed.Spec.Rules) {
		return nil, true, fmt.Errorf("HTTPRoute %s/%s: spec.rules did not decode", namespace, name)
	}
	rt.rawRules = rules
	return rt, true, nil
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
	if ref.Group != nil && *ref.Group != "" {
		return ""
	}
	if ref.Kind != nil && *ref.Kind != "Service" {
		return ""
	}
	if ref.Namespace != nil && string(*ref.Namespace) != n.namespace {
		return ""
	}
	return string(ref.Name)
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

// jsonValue turns a typed value into the generic JSON form of unstructured objects.
func jsonValue(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(data, &out)
}

// sameJSON compares two generic JSON values (map keys are sorted by encoding/json, and int64
// and float64 numbers print alike).
func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// slotOrder lists the two slot backends by Service name (slot a, then b), not stable first:
// promotion only swaps which slot is stable, and must leave the route as it is.
func slotOrder(s traffic.Split) []traffic.Backend {
	if s.Canary.Service < s.Stable.Service {
		return []traffic.Backend{s.Canary, s.Stable}
	}
	return []traffic.Backend{s.Stable, s.Canary}
}
