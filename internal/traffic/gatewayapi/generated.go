package gatewayapi

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/routerules"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// applyGenerated server-side applies the whole route. Sluice is the only writer of its spec,
// so it forces ownership (a stray manual edit is put back) and sends no resourceVersion: a
// MeshPolicy publishing its settings meanwhile (an annotation, composed here) cannot make the
// write conflict, and a newer publication wakes the Rollout to write again. Nothing is sent when
// the route already is as wanted.
func (r *Router) applyGenerated(ctx context.Context, s traffic.Split) error {
	name := s.Generated.Name
	current, found, err := routerules.Get(ctx, r.c, s.Namespace, name)
	if err != nil {
		return err
	}
	if found && !ours(current.Obj, s) {
		// Force would silently take over a route someone else made under this name.
		return fmt.Errorf("%w: HTTPRoute %s/%s is not Rollout %s's (label %s=%s expected); rename or delete it, or use httpRouteRef to drive it",
			ErrRouteNotOwned, s.Namespace, name, s.OwnerName, traffic.LabelRolloutUID, s.OwnerUID)
	}
	rules, err := generatedRules(s)
	if err != nil {
		return err
	}
	return r.applyRoute(ctx, current, generatedRoute(s), rules)
}

// applyRoute applies desired with rules (typed, before the MeshPolicy settings published on
// current are composed in), unless current already is that route.
func (r *Router) applyRoute(ctx context.Context, current *routerules.Route, desired *gwv1.HTTPRoute, rules []gwv1.HTTPRouteRule) error {
	raw, err := routerules.Values(rules)
	if err != nil {
		return err
	}
	var annotations map[string]string
	if current != nil {
		annotations = current.Obj.GetAnnotations()
	}
	if raw, err = routerules.Compose(desired.Namespace, annotations, raw); err != nil {
		return fmt.Errorf("HTTPRoute %s/%s: %w", desired.Namespace, desired.Name, err)
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return fmt.Errorf("encoding HTTPRoute %s/%s: %w", desired.Namespace, desired.Name, err)
	}
	// Only spec and the metadata Sluice sets are applied; an empty status or a null
	// creationTimestamp would otherwise be claimed.
	delete(obj, "status")
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	if err := unstructured.SetNestedSlice(obj, raw, "spec", "rules"); err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	if current == nil || !alreadyApplied(current, u) {
		ac := client.ApplyConfigurationFromUnstructured(u)
		if err := r.c.Apply(ctx, ac, client.FieldOwner(traffic.FieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying HTTPRoute %s/%s: %w", desired.Namespace, desired.Name, err)
		}
	}
	if current != nil {
		_ = routerules.DropTombstones(ctx, r.c, current, traffic.FieldManager) // best effort, as in writeExisting
	}
	return nil
}

// alreadyApplied: the route has the spec, labels and (no) ownerReference to a Rollout that
// applying u would give it.
func alreadyApplied(current *routerules.Route, u *unstructured.Unstructured) bool {
	for _, field := range []string{"parentRefs", "hostnames", "rules"} {
		want, _, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", field)
		have, _, _ := unstructured.NestedFieldNoCopy(current.Obj.Object, "spec", field)
		if !routerules.Same(want, have) {
			return false
		}
	}
	labels := current.Obj.GetLabels()
	for k, v := range u.GetLabels() {
		if labels[k] != v {
			return false
		}
	}
	if _, ok := u.GetLabels()[traffic.LabelRolloutUID]; !ok && labels[traffic.LabelRolloutUID] != "" {
		return false // a release takes the UID label off
	}
	for _, ref := range current.Obj.GetOwnerReferences() {
		if ref.Kind == "Rollout" {
			return false // from before the labels: applying without it takes it off
		}
	}
	return true
}

// ours reports whether a route named like the generated one is the Rollout's: labelled with its
// UID, or generated before that label and controlled by it, or generated for a Rollout of this
// name and released since (a Rollout deleted and created again, as a GitOps prune and sync do).
func ours(obj metav1.Object, s traffic.Split) bool {
	if uid := traffic.RolloutOf(obj); uid != "" {
		return uid == s.OwnerUID
	}
	labels := obj.GetLabels()
	return labels[traffic.LabelManagedBy] == traffic.ManagedByValue && labels[traffic.LabelRollout] == s.OwnerName && metav1.GetControllerOf(obj) == nil
}

// generatedRoute is the route Sluice wants, without its rules.
func generatedRoute(s traffic.Split) *gwv1.HTTPRoute {
	labels := ownerLabels(s)
	labels[traffic.LabelRolloutUID] = string(s.OwnerUID)
	rt := &gwv1.HTTPRoute{
		TypeMeta:   metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{Name: s.Generated.Name, Namespace: s.Namespace, Labels: labels},
	}
	for i := range s.Generated.ParentRefs {
		rt.Spec.ParentRefs = append(rt.Spec.ParentRefs, parentRef(&s.Generated.ParentRefs[i]))
	}
	for _, h := range s.Generated.Hostnames {
		rt.Spec.Hostnames = append(rt.Spec.Hostnames, gwv1.Hostname(h))
	}
	return rt
}

// ownerLabels are the labels a generated route keeps after its release.
func ownerLabels(s traffic.Split) map[string]string {
	labels := map[string]string{traffic.LabelManagedBy: traffic.ManagedByValue}
	if len(validation.IsValidLabelValue(s.OwnerName)) == 0 {
		labels[traffic.LabelRollout] = s.OwnerName
	}
	return labels
}

// parentRef spells out group and kind (their getters hold the defaults); namespace, section
// and port only when set, as the Gateway API defaults them itself.
func parentRef(p *meshv1alpha1.ParentReference) gwv1.ParentReference {
	out := gwv1.ParentReference{
		Group: ptr.To(gwv1.Group(p.GetGroup())),
		Kind:  ptr.To(gwv1.Kind(p.GetKind())),
		Name:  gwv1.ObjectName(p.Name),
	}
	if p.Namespace != "" {
		out.Namespace = ptr.To(gwv1.Namespace(p.Namespace))
	}
	if p.SectionName != "" {
		out.SectionName = ptr.To(gwv1.SectionName(p.SectionName))
	}
	if p.Port != nil {
		out.Port = ptr.To(*p.Port)
	}
	return out
}

// generatedRules: the probe rule (its exact path and header win whatever the order; first, so the
// order is fixed), the A/B rules (more specific, and the Gateway API orders equal-precedence
// matches by rule order), then the weighted rule.
func generatedRules(s traffic.Split) ([]gwv1.HTTPRouteRule, error) {
	ab, err := generatedMatchRules(s)
	if err != nil {
		return nil, err
	}
	var rules []gwv1.HTTPRouteRule
	if p, ok := probeRule(s); ok {
		rules = append(rules, p)
	}
	rules = append(rules, ab...)
	split := gwv1.HTTPRouteRule{
		Name:    ptr.To(gwv1.SectionName(SplitRuleName)),
		Matches: []gwv1.HTTPRouteMatch{{Path: rootPath()}},
		// Both always listed: a weight-0 backendRef gets nothing and keeps the rule's shape.
		BackendRefs: []gwv1.HTTPBackendRef{},
	}
	for _, b := range slotOrder(s) {
		split.BackendRefs = append(split.BackendRefs, serviceRef(b.Service, s.Port, b.Weight))
	}
	if s.MirrorPercent > 0 {
		split.Filters = []gwv1.HTTPRouteFilter{mirrorFilter(s)}
	}
	return append(rules, split), nil
}

// generatedMatchRules are the A/B rules of a generated route, on the default path match.
func generatedMatchRules(s traffic.Split) ([]gwv1.HTTPRouteRule, error) {
	var rules []gwv1.HTTPRouteRule
	for i, m := range s.Matches {
		matches, err := abMatches(m, []*gwv1.HTTPPathMatch{rootPath()})
		if err != nil {
			return nil, fmt.Errorf("%w: match %d: %w", ErrInvalidSplit, i, err)
		}
		rules = append(rules, gwv1.HTTPRouteRule{
			Name:        ptr.To(matchRuleName(i)),
			Matches:     matches,
			BackendRefs: []gwv1.HTTPBackendRef{serviceRef(s.Canary.Service, s.Port, 1)},
		})
	}
	return rules, nil
}
