// Package routes puts a MeshPolicy's per-route settings (timeouts, retry, ExtensionRef filters)
// into the HTTPRoute rules that reach its target Services, and takes them out again, through
// internal/routerules: the policy publishes its settings on each such route, and writes the rules
// itself only on routes no Rollout drives (a Rollout's router writes the others, composing the
// same publications).
package routes

import (
	"maps"
	"slices"
	"sort"
	"strings"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/routerules"
)

// Backends are the Service names whose backendRefs stand for the targets: each target and,
// when a Rollout releases behind it (its apex Service), the Rollout's slot Services and
// blue-green preview Service, which the Rollout's route points at instead.
func Backends(targets []string, rollouts []meshv1alpha1.Rollout) map[string]bool {
	out := map[string]bool{}
	for _, t := range targets {
		out[t] = true
	}
	for _, slots := range SlotServices(targets, rollouts) {
		for _, s := range slots {
			out[s] = true
		}
	}
	return out
}

// SlotServices maps each target that is a Rollout's apex Service to the Services the Rollout's
// route sends its traffic to (slots, then the preview), sorted.
func SlotServices(targets []string, rollouts []meshv1alpha1.Rollout) map[string][]string {
	want := map[string]bool{}
	for _, t := range targets {
		want[t] = true
	}
	out := map[string][]string{}
	for i := range rollouts {
		r := &rollouts[i]
		apex := r.GetServiceName()
		if !want[apex] {
			continue
		}
		slots := []string{r.GetSlotServiceName(meshv1alpha1.SlotA), r.GetSlotServiceName(meshv1alpha1.SlotB)}
		if bg := r.Spec.Strategy.BlueGreen; bg != nil && bg.PreviewService != "" {
			slots = append(slots, bg.PreviewService)
		}
		out[apex] = append(out[apex], slots...)
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// Edit is one policy's wish for the routes of its namespace.
type Edit struct {
	// Policy is the MeshPolicy's name.
	Policy string
	// Namespace of the policy, its Services and the routes.
	Namespace string
	// Backends are the Services whose rules get the settings (see Backends).
	Backends map[string]bool
	// Settings to write; nil or empty takes the policy's settings out.
	Settings *policy.RuleSettings
	// Owned name the policy's objects (old and new) an ExtensionRef filter may point at: such a
	// filter is the policy's, replaced or removed; others are left alone.
	Owned []string
}

// routePlan is what one route needs for an edit.
type routePlan struct {
	// carries: the route's rules carry the policy's settings afterwards.
	carries bool
	// rules to write; nil leaves spec.rules alone.
	rules []any
	// annotations to merge (nil value: remove the key); empty when none change.
	annotations map[string]any
}

func (p routePlan) changed() bool { return p.rules != nil || len(p.annotations) > 0 }

// plan decides what a route needs. The policy's settings for the route are an Edit it publishes
// on the route (routerules.AnnotationKey): a tombstone when it has nothing left there but
// settings to take out. On a route a Rollout drives (driven) that is all the policy writes; the
// Rollout's router composes the published Edits into its rules. On any other route the policy
// writes the rules too, composing every published Edit (other policies' as well, which come out
// as they would in their own write) and dropping the tombstones it composed.
func plan(e Edit, annotations map[string]string, rules []any, driven bool) (routePlan, error) {
	edit := e.publication(annotations)
	_, carries, err := edit.Apply(e.Namespace, rules)
	if err != nil {
		return routePlan{}, err
	}
	next := map[string]any{} // the annotations as they should be (nil: absent)
	key := routerules.AnnotationKey(e.Policy)
	switch {
	case carries:
		next[key], err = edit.Encode()
	case edit.Clear != nil || edit.OwnedFilters != nil && hasOwnedFilter(rules, edit.OwnedFilters):
		edit.Settings = nil // a tombstone: something of the policy's may be left to take out
		next[key], err = edit.Encode()
	default:
		next[key] = nil
	}
	if err != nil {
		return routePlan{}, err
	}
	marked := Marked(annotations)
	if mark := Mark(marked, e.Policy, carries); mark != "" {
		next[meshv1alpha1.MeshPolicyRouteAnnotation] = mark
	} else {
		next[meshv1alpha1.MeshPolicyRouteAnnotation] = nil
	}
	out := routePlan{carries: carries}
	if !driven {
		merged := maps.Clone(annotations)
		if merged == nil {
			merged = map[string]string{}
		}
		if v, ok := next[key].(string); ok {
			merged[key] = v
		} else {
			delete(merged, key)
		}
		composed, err := routerules.Compose(e.Namespace, merged, rules)
		if err != nil {
			return routePlan{}, err
		}
		if !routerules.Same(composed, rules) {
			out.rules = composed
		}
		for _, k := range routerules.Tombstones(merged) {
			next[k] = nil // composed now
		}
	}
	out.annotations = changedAnnotations(annotations, next)
	return out, nil
}

// publication is the Edit the policy publishes on a route, before deciding whether it carries:
// Clear keeps every field the policy set on the route before (or, on a route marked before Edits
// were published, both) and does not set now; OwnedFilters keeps every filter object ever its.
func (e Edit) publication(annotations map[string]string) routerules.Edit {
	prev, published := routerules.PublishedBy(annotations, e.Policy)
	clear := map[string]bool{}
	for _, f := range prev.Clear {
		clear[f] = true
	}
	for _, f := range setFields(prev.Settings) {
		clear[f] = true
	}
	if !published && slices.Contains(Marked(annotations), e.Policy) {
		clear[routerules.FieldTimeouts], clear[routerules.FieldRetry] = true, true
	}
	for _, f := range setFields(e.Settings) {
		delete(clear, f)
	}
	owned := map[string]bool{}
	for _, n := range append(slices.Clone(e.Owned), prev.OwnedFilters...) {
		owned[n] = true
	}
	if e.Settings != nil {
		for _, f := range e.Settings.Filters {
			if routerules.IsExtensionRef(f) {
				owned[string(f.ExtensionRef.Name)] = true
			}
		}
	}
	edit := routerules.Edit{
		Policy:       e.Policy,
		Backends:     sortedKeys(e.Backends),
		Settings:     e.Settings,
		Clear:        sortedKeys(clear),
		OwnedFilters: sortedKeys(owned),
	}
	if edit.Settings.Empty() {
		edit.Settings = nil
	}
	return edit
}

// setFields are the rule fields settings set.
func setFields(s *policy.RuleSettings) []string {
	var out []string
	if s != nil && s.Timeouts != nil {
		out = append(out, routerules.FieldTimeouts)
	}
	if s != nil && s.Retry != nil {
		out = append(out, routerules.FieldRetry)
	}
	return out
}

// hasOwnedFilter: some rule has an ExtensionRef filter to one of names.
func hasOwnedFilter(rules []any, names []string) bool {
	typed, err := routerules.Decode(rules)
	if err != nil {
		return true // keep the tombstone: the router will know better
	}
	for _, r := range typed {
		for _, f := range r.Filters {
			if routerules.IsExtensionRef(f) && slices.Contains(names, string(f.ExtensionRef.Name)) {
				return true
			}
		}
	}
	return false
}

// changedAnnotations is the merge patch of annotations that takes them to next.
func changedAnnotations(have map[string]string, next map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range next {
		cur, ok := have[k]
		switch s, set := v.(string); {
		case set && (!ok || cur != s):
			out[k] = s
		case !set && ok:
			out[k] = nil
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(m))
}

// Marked parses the route annotation: the policies whose settings the route carries.
func Marked(annotations map[string]string) []string {
	v := annotations[meshv1alpha1.MeshPolicyRouteAnnotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Mark returns the annotation value with policy added (carries) or removed, sorted; "" for none.
func Mark(marked []string, policyName string, carries bool) string {
	set := map[string]bool{}
	for _, m := range marked {
		if m != "" {
			set[m] = true
		}
	}
	if carries {
		set[policyName] = true
	} else {
		delete(set, policyName)
	}
	out := make([]string, 0, len(set))
	for m := range set {
		out = append(out, m)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
