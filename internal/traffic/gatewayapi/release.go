package gatewayapi

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// Release hands the route back for a deleted Rollout (see traffic.Router). MeshPolicy settings
// published on the route are composed in as in Apply, and stay: the route keeps what the policies
// want, and their controller writes its rules from now on.
func (r *Router) Release(ctx context.Context, s traffic.Split) error {
	if err := validateRelease(s); err != nil {
		return err
	}
	if s.Generated != nil {
		return r.releaseGenerated(ctx, s)
	}
	return r.releaseExisting(ctx, s)
}

func validateRelease(s traffic.Split) error {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if s.Namespace == "" {
		add("namespace is empty")
	}
	switch {
	case (s.Generated != nil) == (s.Existing != ""):
		add("exactly one of a generated and an existing route must be set")
	case s.Generated != nil && (s.Generated.Name == "" || s.OwnerName == "" || s.OwnerUID == ""):
		add("a generated route needs its name and the owner's name and uid")
	}
	if s.ApexService == "" || s.Stable.Service == "" || s.Canary.Service == "" {
		add("the apex and both slot Services must be named")
	}
	if s.Port < 1 || s.Port > 65535 {
		add("port %d is out of 1-65535", s.Port)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidSplit, strings.Join(problems, "; "))
	}
	return nil
}

// releaseExisting points every driven rule at the apex Service again (one backendRef, weight 1,
// with the per-backend filters of the ref it replaces) without Sluice's mirror, and drops
// Sluice's own rules (A/B, probes); every other byte stays. Guarded like applyExisting.
func (r *Router) releaseExisting(ctx context.Context, s traffic.Split) error {
	rt, found, err := routerules.Get(ctx, r.c, s.Namespace, s.Existing)
	if err != nil || !found {
		return err
	}
	n := namesOf(s)
	apex := []traffic.Backend{{Service: s.ApexService, Weight: 1}}
	rules := make([]any, 0, len(rt.Rules))
	for i, rule := range rt.Typed.Spec.Rules {
		if isSluiceRule(rule) {
			continue
		}
		raw, ok := rt.Rules[i].(map[string]any)
		if !ok {
			return fmt.Errorf("HTTPRoute %s/%s: spec.rules[%d] is not an object", s.Namespace, s.Existing, i)
		}
		if !hasDrivenRef(n, rule) {
			rules = append(rules, raw)
			continue
		}
		handed, err := rewriteRule(s, n, rule, raw, apex, false)
		if err != nil {
			return err
		}
		rules = append(rules, handed)
	}
	return r.writeExisting(ctx, rt, rules)
}

// releaseGenerated rewrites the Rollout's generated route to send everything to the apex
// Service, where it serves now (parentRefs and hostnames as they are), and takes the Rollout's
// UID label off: the route is no longer the Rollout's, and nothing garbage-collects it. A route
// that is not the Rollout's is left alone.
func (r *Router) releaseGenerated(ctx context.Context, s traffic.Split) error {
	rt, found, err := routerules.Get(ctx, r.c, s.Namespace, s.Generated.Name)
	if err != nil || !found || !ours(rt.Obj, s) {
		return err
	}
	desired := &gwv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Generated.Name, Namespace: s.Namespace, Labels: ownerLabels(s)},
	}
	desired.Spec.ParentRefs = rt.Typed.Spec.ParentRefs
	desired.Spec.Hostnames = rt.Typed.Spec.Hostnames
	rules := []gwv1.HTTPRouteRule{{
		Name:        ptr.To(gwv1.SectionName(SplitRuleName)),
		Matches:     []gwv1.HTTPRouteMatch{{Path: rootPath()}},
		BackendRefs: []gwv1.HTTPBackendRef{serviceRef(s.ApexService, s.Port, 1)},
	}}
	return r.applyRoute(ctx, rt, desired, rules)
}
