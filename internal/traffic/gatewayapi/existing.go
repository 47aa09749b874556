package gatewayapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/traffic"
)

// applyExisting rewrites the driven parts of a route the user owns. spec.rules is an atomic
// list, so server-side apply could only take the whole list (force) or conflict with its owner;
// instead Sluice reads the route, edits its own parts in the server's JSON (every other byte is
// carried over), and writes spec.rules back with a merge patch guarded by the resourceVersion.
// A concurrent change makes the patch fail with a Conflict (apierrors.IsConflict); the caller
// retries with a fresh read. Nothing is written when the rules are already right.
func (r *Router) applyExisting(ctx context.Context, s traffic.Split) error {
	rt, found, err := r.getRoute(ctx, s.Namespace, s.Existing)
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
	if sameJSON(rules, rt.rawRules) {
		return nil
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": rt.obj.GetResourceVersion()},
		"spec":     map[string]any{"rules": rules},
	})
	if err != nil {
		return fmt.Errorf("encoding the rules of HTTPRoute %s/%s: %w", s.Namespace, s.Existing, err)
	}
	if err := r.c.Patch(ctx, rt.obj, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(traffic.FieldManager)); err != nil {
		return fmt.Errorf("updating the rules of HTTPRoute %s/%s: %w", s.Namespace, s.Existing, err)
	}
	return nil
}

// planExisting returns the route's rules with the split applied: Sluice's old A/B rules
// dropped, every driven rule rewritten, the new A/B rules inserted before the first driven rule.
// Rules it does not drive are the same JSON values as read.
func planExisting(s traffic.Split, rt *route) ([]any, error) {
	n := namesOf(s)
	typed := rt.typed.Spec.Rules
	var out []any
	first, firstAt := -1, -1
	for i, rule := range typed {
		if isMatchRule(rule) {
			continue
		}
		raw, ok := rt.rawRules[i].(map[string]any)
		if !ok {
			return nil, fmt.Errorf("HTTPRoute %s/%s: spec.rules[%d] is not an object", s.Namespace, s.Existing, i)
		}
		if !hasDrivenRef(n, rule) {
			out = append(out, raw)
			continue
		}
		driven, err := driveRule(s, n, rule, raw)
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
	raw, _ := rt.rawRules[first].(map[string]any) // checked in the loop above
	ab, err := existingMatchRules(s, n, typed[first], raw)
	if err != nil {
		return nil, err
	}
	withAB := make([]any, 0, len(out)+len(ab))
	withAB = append(withAB, out[:firstAt]...)
	withAB = append(withAB, ab...)
	return append(withAB, out[firstAt:]...), nil
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

// driveRule returns a copy of the rule whose driven backendRefs are replaced, where the first of
// them was, by stable and canary, and whose filters end with Sluice's mirror (when wanted).
func driveRule(s traffic.Split, n slotNames, rule gwv1.HTTPRouteRule, raw map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		out[k] = v
	}
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
		for _, b := range slotOrder(s) {
			ref, err := backendRefJSON(b.Service, s.Port, b.Weight, filters)
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
	if s.MirrorPercent > 0 {
		mirror, err := jsonValue(mirrorFilter(s))
		if err != nil {
			return nil, err
		}
		filters = append(filters, mirror)
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
	v, err := jsonValue(serviceRef(service, port, weight))
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
		matchesJSON, err := jsonValue(matches)
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
			if sameJSON(p, q) {
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
