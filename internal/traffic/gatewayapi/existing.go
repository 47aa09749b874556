package gatewayapi

import (
	"context"
	"fmt"
	"maps"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// applyExisting rewrites the driven parts of a route the user owns. spec.rules is an atomic
// list, so server-side apply could only take the whole list (force) or conflict with its owner;
// instead Sluice reads the route, edits its own parts in the server's JSON (every other byte is
// carried over), composes the MeshPolicy settings published on the route, and writes spec.rules
// back guarded by spec.rules as read. A concurrent change of the rules (a GitOps tool) makes the
// write fail with a Conflict (apierrors.IsConflict) and the caller retries with a fresh read; a
// concurrent change elsewhere in the route (a policy's publication, the status) does not.
// Nothing is written when the rules are already right.
func (r *Router) applyExisting(ctx context.Context, s traffic.Split) error {
	rt, found, err := routerules.Get(ctx, r.c, s.Namespace, s.Existing)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("%w: HTTPRoute %s/%s (named by httpRouteRef) does not exist", ErrRouteNotFound, s.Namespace, s.Existing)
	}
	rules, err := planExisting(s, rt)
	if err != nil {
		return err
	}
	return r.writeExisting(ctx, rt, rules)
}

// writeExisting composes the published MeshPolicy settings into rules and writes them when
// they differ from the route's, then drops the tombstones it composed.
func (r *Router) writeExisting(ctx context.Context, rt *routerules.Route, rules []any) error {
	rules, err := routerules.Compose(rt.Obj.GetNamespace(), rt.Obj.GetAnnotations(), rules)
	if err != nil {
		return fmt.Errorf("HTTPRoute %s/%s: %w", rt.Obj.GetNamespace(), rt.Obj.GetName(), err)
	}
	if !routerules.Same(rules, rt.Rules) {
		if err := routerules.WriteRules(ctx, r.c, rt, rules, traffic.FieldManager); err != nil {
			return err
		}
	}
	// Best effort: a tombstone left now is dropped with the next write, and composes the same.
	_ = routerules.DropTombstones(ctx, r.c, rt, traffic.FieldManager)
	return nil
}

// planExisting returns the route's rules with the split applied: Sluice's old A/B and probe
// rules dropped, every driven rule rewritten, the new probe rule and A/B rules inserted (in that
// order) before the first driven rule. Rules it does not drive are the same JSON values as read.
func planExisting(s traffic.Split, rt *routerules.Route) ([]any, error) {
	n := namesOf(s)
	typed := rt.Typed.Spec.Rules
	var out []any
	first, firstAt := -1, -1
	for i, rule := range typed {
		if isSluiceRule(rule) {
			continue
		}
		raw, ok := rt.Rules[i].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("HTTPRoute %s/%s: spec.rules[%d] is not an object", s.Namespace, s.Existing, i)
		}
		if !hasDrivenRef(n, rule) {
			out = append(out, raw)
			continue
		}
		driven, err := rewriteRule(s, n, rule, raw, slotOrder(s), s.MirrorPercent > 0)
		if err != nil {
			return nil, err
		}
		if first < 0 {
			first, firstAt = i, len(out)
		}
		out = append(out, driven)
	}
	if first < 0 {
		return nil, noDrivenRule(s)
	}
	raw, _ := rt.Rules[first].(map[string]any) // checked in the loop above
	own, err := existingMatchRules(s, n, typed[first], raw)
	if err != nil {
		return nil, err
	}
	if p, ok := probeRule(s); ok {
		v, err := routerules.Value(p)
		if err != nil {
			return nil, err
		}
		own = append([]any{v}, own...)
	}
	withOwn := make([]any, 0, len(out)+len(own))
	withOwn = append(withOwn, out[:firstAt]...)
	withOwn = append(withOwn, own...)
	return append(withOwn, out[firstAt:]...), nil
}

func noDrivenRule(s traffic.Split) error {
	var names []string
	for _, name := range []string{s.ApexService, s.Stable.Service, s.Canary.Service} {
		if name != "" {
			names = append(names, name)
		}
	}
	return fmt.Errorf("%w: HTTPRoute %s/%s has no rule with a backendRef to Service %s (kind Service, namespace %s); point a rule at the apex Service",
		ErrNoDrivenRule, s.Namespace, s.Existing, strings.Join(names, " or "), s.Namespace)
}

// hasDrivenRef reports whether the rule routes to the apex or a slot Service.
func hasDrivenRef(n slotNames, rule gwv1.HTTPRouteRule) bool {
	for _, ref := range rule.BackendRefs {
		if n.isDriven(ref.BackendObjectReference) {
			return true
		}
	}
	return false
}

// rewriteRule returns a copy of the rule whose driven backendRefs are replaced, where the first
// of them was, by backends (each inheriting that ref's per-backend filters), and whose filters
// end with Sluice's mirror when mirror is set.
func rewriteRule(s traffic.Split, n slotNames, rule gwv1.HTTPRouteRule, raw map[string]any, backends []traffic.Backend, mirror bool) (map[string]any, error) {
	out := maps.Clone(raw)
	rawRefs, _ := raw["backendRefs"].([]any)
	if len(rawRefs) != len(rule.BackendRefs) {
		return nil, fmt.Errorf("HTTPRoute %s/%s: a rule's backendRefs did not decode", s.Namespace, s.Existing)
	}
	var refs []any
	placed := false
	for j, ref := range rule.BackendRefs {
		if !n.isDriven(ref.BackendObjectReference) {
			refs = append(refs, rawRefs[j])
			continue
		}
		if placed {
			continue
		}
		placed = true
		filters := refFilters(rawRefs[j])
		for _, b := range backends {
			ref, err := backendRefJSON(b.Service, s.Port, b.Weight, runtime.DeepCopyJSONValue(filters))
			if err != nil {
				return nil, err
			}
			refs = append(refs, ref)
		}
	}
	out["backendRefs"] = refs

	filters, err := userFilters(n, rule, raw)
	if err != nil {
		return nil, err
	}
	if mirror {
		f, err := routerules.Value(mirrorFilter(s))
		if err != nil {
			return nil, err
		}
		filters = append(filters, f)
	}
	if len(filters) > 0 {
		out["filters"] = filters
	} else {
		delete(out, "filters")
	}
	return out, nil
}

// userFilters are the rule's filters except Sluice's mirror, as read.
func userFilters(n slotNames, rule gwv1.HTTPRouteRule, raw map[string]any) ([]any, error) {
	rawFilters, _ := raw["filters"].([]any)
	if len(rawFilters) != len(rule.Filters) {
		return nil, fmt.Errorf("a rule's filters did not decode")
	}
	var out []any
	for j, f := range rule.Filters {
		if !n.isSluiceMirror(f) {
			out = append(out, rawFilters[j])
		}
	}
	return out, nil
}

// refFilters are the per-backend filters of a backendRef, as read (nil if none). The slot refs
// that replace a ref inherit them, so replacing the apex does not drop its per-backend behaviour.
func refFilters(rawRef any) any {
	m, _ := rawRef.(map[string]any)
	if f, ok := m["filters"]; ok {
		return runtime.DeepCopyJSONValue(f)
	}
	return nil
}

func backendRefJSON(service string, port, weight int32, filters any) (map[string]any, error) {
	v, err := routerules.Value(serviceRef(service, port, weight))
	if err != nil {
		return nil, err
	}
	m := v.(map[string]any)
	if filters != nil {
		m["filters"] = filters
	}
	return m, nil
}

// existingMatchRules are the A/B rules for a route whose first driven rule is rule. Each is that
// rule narrowed to the A/B conditions and sent to the canary only: it keeps the rule's path
// matches (so it does not widen the route to other paths), its filters other than Sluice's
// mirror (a rewrite, header change or auth must not be skipped for A/B requests), its timeouts
// and retry. The rule's header, query and method conditions are not copied.
func existingMatchRules(s traffic.Split, n slotNames, rule gwv1.HTTPRouteRule, raw map[string]any) ([]any, error) {
	if len(s.Matches) == 0 {
		return nil, nil
	}
	paths := rulePaths(rule)
	filters, err := userFilters(n, rule, raw)
	if err != nil {
		return nil, err
	}
	var inherited any
	rawRefs, _ := raw["backendRefs"].([]any)
	for j, ref := range rule.BackendRefs {
		if n.isDriven(ref.BackendObjectReference) && j < len(rawRefs) {
			inherited = refFilters(rawRefs[j])
			break
		}
	}
	var out []any
	for i, m := range s.Matches {
		matches, err := abMatches(m, paths)
		if err != nil {
			return nil, fmt.Errorf("%w: match %d: %w", ErrInvalidSplit, i, err)
		}
		matchesJSON, err := routerules.Value(matches)
		if err != nil {
			return nil, err
		}
		canary, err := backendRefJSON(s.Canary.Service, s.Port, 1, runtime.DeepCopyJSONValue(inherited))
		if err != nil {
			return nil, err
		}
		ab := map[string]any{
			"name":        string(matchRuleName(i)),
			"matches":     matchesJSON,
			"backendRefs": []any{canary},
		}
		if len(filters) > 0 {
			ab["filters"] = runtime.DeepCopyJSONValue(filters)
		}
		for _, key := range []string{"timeouts", "retry"} {
			if v, ok := raw[key]; ok {
				ab[key] = runtime.DeepCopyJSONValue(v)
			}
		}
		out = append(out, ab)
	}
	return out, nil
}

// rulePaths are the distinct path matches of a rule, in order; a match without a path (or a
// rule without matches) stands for the Gateway API default, prefix "/".
func rulePaths(rule gwv1.HTTPRouteRule) []*gwv1.HTTPPathMatch {
	var paths []*gwv1.HTTPPathMatch
	add := func(p *gwv1.HTTPPathMatch) {
		for _, q := range paths {
			if routerules.Same(p, q) {
				return
			}
		}
		paths = append(paths, p)
	}
	for _, m := range rule.Matches {
		if m.Path == nil {
			add(rootPath())
		} else {
			add(m.Path.DeepCopy())
		}
	}
	if len(paths) == 0 {
		add(rootPath())
	}
	return paths
}
