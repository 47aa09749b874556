// Package routes writes a MeshPolicy's per-route settings (timeouts, retry, ExtensionRef
// filters) into the HTTPRoute rules that reach its target Services, and takes them out again.
// spec.rules is an atomic list, so like the Rollout router for an existing route it edits the
// server's JSON in place (every other byte is carried over) and writes the rules back with a
// merge patch guarded by the resourceVersion.
package routes

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
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
	// OwnedFilter reports whether an ExtensionRef filter (by object name) is the policy's, so
	// it is replaced or removed; others are left alone.
	OwnedFilter func(name string) bool
}

// Plan returns the rules of a route with the edit made, and whether the route carries the
// policy's settings afterwards. marked says the route was marked as carrying this policy's
// settings before: only then are timeouts and retry taken out of rules (they may be the
// user's own otherwise).
func Plan(e Edit, typed []gwv1.HTTPRouteRule, raw []any, marked bool) ([]any, bool, error) {
	if len(raw) != len(typed) {
		return nil, false, fmt.Errorf("spec.rules did not decode")
	}
	want := !e.Settings.Empty()
	out := make([]any, 0, len(raw))
	carries := false
	for i, rule := range typed {
		r, ok := raw[i].(map[string]any)
		if !ok {
			return nil, false, fmt.Errorf("spec.rules[%d] is not an object", i)
		}
		reaches := reachesBackend(e, rule)
		edited := make(map[string]any, len(r))
		for k, v := range r {
			edited[k] = v
		}
		filters, err := withoutOwnedFilters(e, rule, r)
		if err != nil {
			return nil, false, fmt.Errorf("spec.rules[%d]: %w", i, err)
		}
		if reaches && want {
			carries = true
			policyFilters, err := jsonList(e.Settings.Filters)
			if err != nil {
				return nil, false, err
			}
			filters = append(policyFilters, filters...)
			for _, f := range []struct {
				key string
				set bool
				v   any
			}{{"timeouts", e.Settings.Timeouts != nil, e.Settings.Timeouts}, {"retry", e.Settings.Retry != nil, e.Settings.Retry}} {
				key := f.key
				if !f.set {
					if marked {
						delete(edited, key)
					}
					continue
				}
				j, err := jsonValue(f.v)
				if err != nil {
					return nil, false, err
				}
				edited[key] = j
			}
		} else if reaches && marked {
			delete(edited, "timeouts")
			delete(edited, "retry")
		}
		if len(filters) > 0 {
			edited["filters"] = filters
		} else {
			delete(edited, "filters")
		}
		out = append(out, edited)
	}
	return out, carries, nil
}

// reachesBackend: the rule has a backendRef to one of the edit's Services (core group, kind
// Service, the route's own namespace).
func reachesBackend(e Edit, rule gwv1.HTTPRouteRule) bool {
	for _, ref := range rule.BackendRefs {
		if ref.Group != nil && *ref.Group != "" {
			continue
		}
		if ref.Kind != nil && *ref.Kind != "Service" {
			continue
		}
		if ref.Namespace != nil && string(*ref.Namespace) != e.Namespace {
			continue
		}
		if e.Backends[string(ref.Name)] {
			return true
		}
	}
	return false
}

// withoutOwnedFilters are the rule's filters, as read, minus the policy's ExtensionRefs.
func withoutOwnedFilters(e Edit, rule gwv1.HTTPRouteRule, raw map[string]any) ([]any, error) {
	rawFilters, _ := raw["filters"].([]any)
	if len(rawFilters) != len(rule.Filters) {
		return nil, fmt.Errorf("filters did not decode")
	}
	var out []any
	for j, f := range rule.Filters {
		if f.Type == gwv1.HTTPRouteFilterExtensionRef && f.ExtensionRef != nil && e.OwnedFilter != nil && e.OwnedFilter(string(f.ExtensionRef.Name)) {
			continue
		}
		out = append(out, rawFilters[j])
	}
	return out, nil
}

func jsonValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func jsonList[T any](items []T) ([]any, error) {
	out := make([]any, 0, len(items))
	for _, it := range items {
		j, err := jsonValue(it)
		if err != nil {
			return nil, err
		}
		out = append(out, j)
	}
	return out, nil
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

func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
