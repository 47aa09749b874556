package routerules

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/probe"
)

// AnnotationPrefix starts the key of the annotation a MeshPolicy publishes its Edit under, on
// every route whose rules carry (or carried) its settings:
// rules.mesh.sluice.dev/<policy name, shortened with a hash past 63 characters>.
const AnnotationPrefix = "rules.mesh.sluice.dev/"

// The rule fields a MeshPolicy sets (besides filters).
const (
	FieldTimeouts = "timeouts"
	FieldRetry    = "retry"
)

// Edit is one MeshPolicy's settings for the rules of one route, as it publishes them there.
type Edit struct {
	// Policy is the MeshPolicy's name.
	Policy string `json:"policy"`
	// Backends are the Services whose rules get the settings (each target and, for a target a
	// Rollout releases, its slot and preview Services), sorted.
	Backends []string `json:"backends"`
	// Settings go into every rule with a backendRef to a backend. Empty: the Edit only takes the
	// policy's settings out (a tombstone, dropped from the route once composed).
	Settings *policy.RuleSettings `json:"settings,omitempty"`
	// Clear are the rule fields (timeouts, retry) the policy set before and sets no more; they are
	// removed from those rules. A field the policy never set is the user's and stays.
	Clear []string `json:"clear,omitempty"`
	// OwnedFilters name the objects of the ExtensionRef filters that are the policy's (its
	// Middlewares, now and before); they leave every rule before Settings.Filters go in.
	OwnedFilters []string `json:"ownedFilters,omitempty"`
}

// Tombstone reports whether the Edit only takes settings out.
func (e Edit) Tombstone() bool { return e.Settings.Empty() }

// AnnotationKey is the annotation a policy publishes its Edit under.
func AnnotationKey(policyName string) string {
	return AnnotationPrefix + policy.ObjectName(policyName)
}

// Encode is the Edit as an annotation value.
func (e Edit) Encode() (string, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("encoding the rule settings of MeshPolicy %s: %w", e.Policy, err)
	}
	return string(data), nil
}

// Published are the Edits published in annotations, in policy order. A value that does not
// decode, or whose key is not its policy's, is skipped: its policy rewrites it on its next
// reconcile, and a route write (a rollback's above all) must not fail over it.
func Published(annotations map[string]string) []Edit {
	var out []Edit
	for _, key := range slices.Sorted(maps.Keys(annotations)) {
		if !strings.HasPrefix(key, AnnotationPrefix) {
			continue
		}
		var e Edit
		if err := json.Unmarshal([]byte(annotations[key]), &e); err != nil || e.Policy == "" || AnnotationKey(e.Policy) != key {
			continue
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Edit) int { return strings.Compare(a.Policy, b.Policy) })
	return out
}

// PublishedBy is the Edit policyName published in annotations, if any.
func PublishedBy(annotations map[string]string, policyName string) (Edit, bool) {
	for _, e := range Published(annotations) {
		if e.Policy == policyName {
			return e, true
		}
	}
	return Edit{}, false
}

// Compose applies every Edit published in annotations to rules, in policy order: the one place
// where a route's rules get MeshPolicy settings, whoever writes them.
func Compose(namespace string, annotations map[string]string, rules []any) ([]any, error) {
	for _, e := range Published(annotations) {
		var err error
		if rules, _, err = e.Apply(namespace, rules); err != nil {
			return nil, fmt.Errorf("MeshPolicy %s: %w", e.Policy, err)
		}
	}
	return rules, nil
}

// Apply returns rules with the edit made, and whether some rule carries its settings. The
// data-plane probe's rule (probe.IsRule) is carried over as read. Every other rule loses the
// policy's owned filters; each rule with a backendRef to a backend (a Service of
// namespace) gets Settings.Filters first, then its own, and the Settings' timeouts and retry,
// and loses the fields in Clear that Settings do not set. Everything else is carried over as
// read.
func (e Edit) Apply(namespace string, rules []any) ([]any, bool, error) {
	typed, err := Decode(rules)
	if err != nil {
		return nil, false, err
	}
	want := !e.Tombstone()
	var settingFilters []any
	if want {
		if settingFilters, err = Values(e.Settings.Filters); err != nil {
			return nil, false, err
		}
	}
	out := make([]any, 0, len(rules))
	carries := false
	for i, rule := range typed {
		raw, ok := rules[i].(map[string]any)
		if !ok {
			return nil, false, fmt.Errorf("spec.rules[%d] is not an object", i)
		}
		if probe.IsRule(rule) {
			// The data-plane probe's rule is Sluice's alone: a policy's retry or timeout would
			// change what an answer through it proves (a retry hides a failed connection).
			out = append(out, raw)
			continue
		}
		edited := maps.Clone(raw)
		filters, err := e.withoutOwnedFilters(rule, raw)
		if err != nil {
			return nil, false, fmt.Errorf("spec.rules[%d]: %w", i, err)
		}
		if e.reaches(namespace, rule) {
			carries = carries || want
			if want {
				filters = append(slices.Clone(settingFilters), filters...)
			}
			if err := e.setFields(edited); err != nil {
				return nil, false, err
			}
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

// setFields writes the Settings' timeouts and retry into a rule that reaches a backend, and
// removes those in Clear that the Settings do not set.
func (e Edit) setFields(rule map[string]any) error {
	var timeouts *gwv1.HTTPRouteTimeouts
	var retry *gwv1.HTTPRouteRetry
	if e.Settings != nil {
		timeouts, retry = e.Settings.Timeouts, e.Settings.Retry
	}
	if timeouts != nil {
		v, err := Value(timeouts)
		if err != nil {
			return err
		}
		rule[FieldTimeouts] = v
	} else if slices.Contains(e.Clear, FieldTimeouts) {
		delete(rule, FieldTimeouts)
	}
	if retry != nil {
		v, err := Value(retry)
		if err != nil {
			return err
		}
		rule[FieldRetry] = v
	} else if slices.Contains(e.Clear, FieldRetry) {
		delete(rule, FieldRetry)
	}
	return nil
}

// reaches: the rule has a backendRef to one of the edit's backends.
func (e Edit) reaches(namespace string, rule gwv1.HTTPRouteRule) bool {
	for _, ref := range rule.BackendRefs {
		if name := LocalService(namespace, ref.BackendObjectReference); name != "" && slices.Contains(e.Backends, name) {
			return true
		}
	}
	return false
}

// withoutOwnedFilters are the rule's filters, as read, minus the policy's ExtensionRefs.
func (e Edit) withoutOwnedFilters(rule gwv1.HTTPRouteRule, raw map[string]any) ([]any, error) {
	rawFilters, _ := raw["filters"].([]any)
	if len(rawFilters) != len(rule.Filters) {
		return nil, fmt.Errorf("filters did not decode")
	}
	var out []any
	for j, f := range rule.Filters {
		if IsExtensionRef(f) && slices.Contains(e.OwnedFilters, string(f.ExtensionRef.Name)) {
			continue
		}
		out = append(out, rawFilters[j])
	}
	return out, nil
}

// IsExtensionRef reports whether f is an ExtensionRef filter (the kind a MeshPolicy writes).
func IsExtensionRef(f gwv1.HTTPRouteFilter) bool {
	return f.Type == gwv1.HTTPRouteFilterExtensionRef && f.ExtensionRef != nil
}
