package gatewayapi

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/probe"
	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// Observe reads the route: the weights and mirror of the rules Sluice drives, whether its A/B
// rules are as the split wants, its probe rule, and whether every parent has accepted the
// current generation.
// A missing route is not an error: Found is false.
func (r *Router) Observe(ctx context.Context, s traffic.Split) (traffic.Status, error) {
	rt, found, err := routerules.Get(ctx, r.c, s.Namespace, s.RouteName())
	if err != nil {
		return traffic.Status{}, err
	}
	if !found {
		return traffic.Status{Message: fmt.Sprintf("HTTPRoute %s/%s does not exist", s.Namespace, s.RouteName())}, nil
	}
	st := traffic.Status{Found: true, Weights: map[string]int32{}, Reaches: reaches(s, rt), Probe: probeOf(s, rt)}
	var problems []string
	if s.Generated != nil {
		problems = observeGenerated(s, rt, &st)
	} else {
		problems = observeExisting(s, rt, &st)
	}
	accepted, why := acceptance(rt)
	problems = append(problems, why...)
	st.Accepted = accepted && len(problems) == 0
	st.Message = strings.Join(problems, "; ")
	return st, nil
}

// ruleState is what one driven rule carries.
type ruleState struct {
	weights map[string]int32
	mirror  int32
}

func (rs ruleState) String() string {
	parts := make([]string, 0, len(rs.weights))
	for _, name := range slices.Sorted(maps.Keys(rs.weights)) {
		parts = append(parts, fmt.Sprintf("%s=%d", name, rs.weights[name]))
	}
	return fmt.Sprintf("weights %s, mirror %d%%", strings.Join(parts, ","), rs.mirror)
}

// stateOf reads a rule's weights (of the refs keep selects) and Sluice's mirror percent.
func stateOf(n slotNames, rule gwv1.HTTPRouteRule, keep func(gwv1.BackendObjectReference) bool) ruleState {
	rs := ruleState{weights: map[string]int32{}}
	for _, ref := range rule.BackendRefs {
		if !keep(ref.BackendObjectReference) {
			continue
		}
		w := int32(1) // the Gateway API default
		if ref.Weight != nil {
			w = *ref.Weight
		}
		rs.weights[string(ref.Name)] += w
	}
	for _, f := range rule.Filters {
		if n.isSluiceMirror(f) {
			rs.mirror = mirrorPercent(f)
		}
	}
	return rs
}

func observeGenerated(s traffic.Split, rt *routerules.Route, st *traffic.Status) []string {
	n := namesOf(s)
	var problems []string
	split := -1
	for i, rule := range rt.Typed.Spec.Rules {
		if rule.Name != nil && *rule.Name == SplitRuleName {
			split = i
			break
		}
	}
	if split < 0 {
		problems = append(problems, fmt.Sprintf("HTTPRoute %s/%s has no rule %s", s.Namespace, s.RouteName(), SplitRuleName))
	} else {
		rs := stateOf(n, rt.Typed.Spec.Rules[split], func(gwv1.BackendObjectReference) bool { return true })
		st.Weights, st.MirrorPercent = rs.weights, rs.mirror
	}
	want, err := generatedMatchRules(s)
	if err != nil {
		return append(problems, err.Error())
	}
	wantJSON, err := routerules.Values(want)
	if err != nil {
		return append(problems, err.Error())
	}
	st.MatchesApplied = sameMatchRules(wantJSON, rt)
	return problems
}

func observeExisting(s traffic.Split, rt *routerules.Route, st *traffic.Status) []string {
	n := namesOf(s)
	var driven []int
	for i, rule := range rt.Typed.Spec.Rules {
		if !isSluiceRule(rule) && hasDrivenRef(n, rule) {
			driven = append(driven, i)
		}
	}
	if len(driven) == 0 {
		return []string{noDrivenRule(s).Error()}
	}
	var problems []string
	rules := rt.Typed.Spec.Rules
	first := stateOf(n, rules[driven[0]], n.isDriven)
	st.Weights, st.MirrorPercent = first.weights, first.mirror
	for _, i := range driven[1:] {
		if other := stateOf(n, rules[i], n.isDriven); !maps.Equal(other.weights, first.weights) || other.mirror != first.mirror {
			problems = append(problems, fmt.Sprintf("driven rules disagree: %s has %s, %s has %s",
				ruleLabel(rules, driven[0]), first, ruleLabel(rules, i), other))
		}
	}
	raw, _ := rt.Rules[driven[0]].(map[string]any)
	want, err := existingMatchRules(s, n, rules[driven[0]], raw)
	if err != nil {
		return append(problems, err.Error())
	}
	st.MatchesApplied = sameMatchRules(want, rt)
	return problems
}

// sameMatchRules compares the A/B rules wanted with the route's, in order, by what decides where
// a request goes (name, matches, backendRefs): filters, timeouts and retry may carry MeshPolicy
// settings composed in since.
func sameMatchRules(want []any, rt *routerules.Route) bool {
	var have []any
	for i, rule := range rt.Typed.Spec.Rules {
		if isMatchRule(rule) {
			have = append(have, rt.Rules[i])
		}
	}
	if len(have) != len(want) {
		return false
	}
	for i := range want {
		w, _ := want[i].(map[string]any)
		h, _ := have[i].(map[string]any)
		for _, key := range []string{"name", "matches", "backendRefs"} {
			if !routerules.Same(w[key], h[key]) {
				return false
			}
		}
	}
	return true
}

// probeOf is the probe rule the route carries, when it is exactly the rule Apply writes for the
// values read from it (at the split's port). Anything else under the probe's name (edited by
// hand, or with settings a probe must not have) is reported as no probe rule: an answer through
// it would not prove what the probe claims, and the next Apply replaces it.
func probeOf(s traffic.Split, rt *routerules.Route) *traffic.ProbeRule {
	for i, rule := range rt.Typed.Spec.Rules {
		if !probe.IsRule(rule) {
			continue
		}
		p := readProbe(s.Namespace, rule)
		want, err := routerules.Value(probe.Rule(p.Service, s.Port, p.Path, p.Token, p.Split))
		if err != nil || !routerules.Same(want, rt.Rules[i]) {
			return nil
		}
		return &p
	}
	return nil
}

// readProbe reads a probe rule's values: its backend Service, its path, the probe header's value
// (the token) and the split version its answers carry. What is missing reads as "".
func readProbe(namespace string, rule gwv1.HTTPRouteRule) traffic.ProbeRule {
	var p traffic.ProbeRule
	if len(rule.BackendRefs) > 0 {
		p.Service = routerules.LocalService(namespace, rule.BackendRefs[0].BackendObjectReference)
	}
	if len(rule.Matches) > 0 {
		m := rule.Matches[0]
		if m.Path != nil {
			p.Path = ptr.Deref(m.Path.Value, "")
		}
		for _, h := range m.Headers {
			if strings.EqualFold(string(h.Name), probe.Header) {
				p.Token = h.Value
			}
		}
	}
	for _, f := range rule.Filters {
		if f.Type != gwv1.HTTPRouteFilterResponseHeaderModifier || f.ResponseHeaderModifier == nil {
			continue
		}
		for _, h := range f.ResponseHeaderModifier.Set {
			if strings.EqualFold(string(h.Name), probe.SplitHeader) {
				p.Split = h.Value
			}
		}
	}
	return p
}

// reaches lists the Services a rule Sluice drives can still send requests to (traffic.Status):
// in a generated route every rule is Sluice's; in an existing route, the rules with a driven
// backendRef and Sluice's own rules.
func reaches(s traffic.Split, rt *routerules.Route) map[string]bool {
	n := namesOf(s)
	out := map[string]bool{}
	for _, rule := range rt.Typed.Spec.Rules {
		own := s.Generated != nil || isSluiceRule(rule)
		if !own && !hasDrivenRef(n, rule) {
			continue
		}
		for _, ref := range rule.BackendRefs {
			name := n.localService(ref.BackendObjectReference)
			// A Sluice rule's backends count whatever their weight; a weighted rule's, above 0
			// (the Gateway API default weight is 1).
			if name != "" && (isSluiceRule(rule) || ptr.Deref(ref.Weight, 1) > 0) {
				out[name] = true
			}
		}
		for _, f := range rule.Filters {
			if n.isSluiceMirror(f) {
				out[n.localService(f.RequestMirror.BackendRef)] = true
			}
		}
	}
	return out
}

func ruleLabel(rules []gwv1.HTTPRouteRule, i int) string {
	if rules[i].Name != nil {
		return fmt.Sprintf("rule %d (%s)", i, *rules[i].Name)
	}
	return fmt.Sprintf("rule %d", i)
}

// Accepted says whether every parent of the route accepted its current generation, and if not
// which fall short.
func Accepted(rt *gwv1.HTTPRoute) (bool, []string) {
	return acceptance(&routerules.Route{Typed: *rt})
}

// acceptance: every parentRef of the spec needs a status entry, and every entry for it needs
// Accepted=True observed at the route's current generation; a stale True means the parent has
// not yet seen the latest split. The reasons name the parents that fall short.
func acceptance(rt *routerules.Route) (bool, []string) {
	r := &rt.Typed
	if len(r.Spec.ParentRefs) == 0 {
		return false, []string{fmt.Sprintf("HTTPRoute %s/%s has no parentRefs", r.Namespace, r.Name)}
	}
	if len(r.Status.Parents) == 0 {
		return false, []string{fmt.Sprintf("HTTPRoute %s/%s: no status yet (no parent has reported on generation %d)", r.Namespace, r.Name, r.Generation)}
	}
	var why []string
	for _, p := range r.Spec.ParentRefs {
		key := parentKey(r.Namespace, p)
		seen := false
		for _, ps := range r.Status.Parents {
			if parentKey(r.Namespace, ps.ParentRef) != key {
				continue
			}
			seen = true
			if msg := parentProblem(ps, r.Generation); msg != "" {
				why = append(why, fmt.Sprintf("parent %s (controller %s): %s", key, ps.ControllerName, msg))
			}
		}
		if !seen {
			why = append(why, fmt.Sprintf("parent %s: no status yet", key))
		}
	}
	return len(why) == 0, why
}

func parentProblem(ps gwv1.RouteParentStatus, generation int64) string {
	c := meta.FindStatusCondition(ps.Conditions, string(gwv1.RouteConditionAccepted))
	switch {
	case c == nil:
		return "no Accepted condition yet"
	case c.ObservedGeneration != generation:
		return fmt.Sprintf("Accepted=%s is for generation %d, the route is at generation %d (not processed yet)",
			c.Status, c.ObservedGeneration, generation)
	case c.Status != metav1.ConditionTrue:
		return fmt.Sprintf("Accepted=%s, reason %s: %s", c.Status, c.Reason, c.Message)
	}
	return ""
}

// parentKey names a parent with the Gateway API defaults filled in, so a spec parentRef and
// the status entry for it compare equal however either is spelled: "Kind namespace/name",
// with " section X" and " port N" when set. The group shows only when it is neither the Gateway
// API's nor the core group (Gateway and Service, the parents there are, read plainly).
func parentKey(routeNamespace string, p gwv1.ParentReference) string {
	group, kind, ns := gwv1.GroupName, "Gateway", routeNamespace
	if p.Group != nil {
		group = string(*p.Group)
	}
	if p.Kind != nil {
		kind = string(*p.Kind)
	}
	if p.Namespace != nil && *p.Namespace != "" {
		ns = string(*p.Namespace)
	}
	key := kind
	if group != "" && group != gwv1.GroupName {
		key += "." + group
	}
	key += " " + ns + "/" + string(p.Name)
	if p.SectionName != nil && *p.SectionName != "" {
		key += " section " + string(*p.SectionName)
	}
	if p.Port != nil && *p.Port != 0 {
		key += fmt.Sprintf(" port %d", *p.Port)
	}
	return key
}
