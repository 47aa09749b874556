package gatewayapi

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/traffic"
)

// applyGenerated server-side applies the whole route. Sluice is its only writer, so it forces
// ownership: a stray manual edit is put back.
func (r *Router) applyGenerated(ctx context.Context, s traffic.Split) error {
	name := s.Generated.Name
	current, found, err := r.getRoute(ctx, s.Namespace, name)
	if err != nil {
		return err
	}
	if found && !ownedBy(current.obj.GetOwnerReferences(), s.Owner) {
		// Force would silently take over a route someone else made under this name.
		return fmt.Errorf("%w: HTTPRoute %s/%s is not controlled by %s %s; rename or delete it, or use httpRouteRef to drive it",
			ErrRouteNotOwned, s.Namespace, name, s.Owner.Kind, s.Owner.Name)
	}
	desired, err := generatedRoute(s)
	if err != nil {
		return err
	}
	if found {
		carryPolicySettings(desired, current)
		// The write is guarded by what was read: a MeshPolicy edit in between makes it fail
		// with a Conflict and the next reconcile carries that edit over too.
		desired.ResourceVersion = current.obj.GetResourceVersion()
	}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
	if err != nil {
		return fmt.Errorf("encoding HTTPRoute %s/%s: %w", s.Namespace, name, err)
	}
	// Only spec and the metadata Sluice sets are applied; an empty status or a null
	// creationTimestamp would otherwise be claimed.
	delete(obj, "status")
	unstructured.RemoveNestedField(obj, "metadata", "creationTimestamp")
	ac := client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: obj})
	if err := r.c.Apply(ctx, ac, client.FieldOwner(traffic.FieldManager), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying HTTPRoute %s/%s: %w", s.Namespace, name, err)
	}
	return nil
}

// ownedBy reports whether owner is the controller among refs.
func ownedBy(refs []metav1.OwnerReference, owner metav1.OwnerReference) bool {
	for _, ref := range refs {
		if ref.UID == owner.UID && ref.Controller != nil && *ref.Controller {
			return true
		}
	}
	return false
}

// generatedRoute is the whole route Sluice wants.
func generatedRoute(s traffic.Split) (*gwv1.HTTPRoute, error) {
	rules, err := generatedRules(s)
	if err != nil {
		return nil, err
	}
	owner := s.Owner
	owner.Controller = ptr.To(true)
	rt := &gwv1.HTTPRoute{
		TypeMeta: metav1.TypeMeta{APIVersion: gwv1.GroupVersion.String(), Kind: "HTTPRoute"},
		ObjectMeta: metav1.ObjectMeta{
			Name:            s.Generated.Name,
			Namespace:       s.Namespace,
			Labels:          map[string]string{ManagedByLabel: ManagedByValue},
			OwnerReferences: []metav1.OwnerReference{owner},
		},
	}
	for i := range s.Generated.ParentRefs {
		rt.Spec.ParentRefs = append(rt.Spec.ParentRefs, parentRef(&s.Generated.ParentRefs[i]))
	}
	for _, h := range s.Generated.Hostnames {
		rt.Spec.Hostnames = append(rt.Spec.Hostnames, gwv1.Hostname(h))
	}
	rt.Spec.Rules = rules
	return rt, nil
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

// generatedRules: the A/B rules first (more specific, and the Gateway API orders equal-precedence
// matches by rule order), then the weighted rule.
func generatedRules(s traffic.Split) ([]gwv1.HTTPRouteRule, error) {
	rules, err := generatedMatchRules(s)
	if err != nil {
		return nil, err
	}
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

// carryPolicySettings keeps what a MeshPolicy wrote into the rules of a generated route
// (timeouts, retry and ExtensionRef filters, rule by rule name): the route is Sluice's, but
// the policy for the Service behind it is the MeshPolicy's. Only a route the MeshPolicy
// controller marked is read; a stray manual edit is still put back.
func carryPolicySettings(desired *gwv1.HTTPRoute, current *route) {
	if current.obj.GetAnnotations()[meshv1alpha1.MeshPolicyRouteAnnotation] == "" {
		return
	}
	byName := map[gwv1.SectionName]*gwv1.HTTPRouteRule{}
	for i := range current.typed.Spec.Rules {
		if r := &current.typed.Spec.Rules[i]; r.Name != nil {
			byName[*r.Name] = r
		}
	}
	for i := range desired.Spec.Rules {
		rule := &desired.Spec.Rules[i]
		old, ok := byName[ptr.Deref(rule.Name, "")]
		if !ok {
			// A new A/B rule takes the settings of the split rule, like the split itself.
			old, ok = byName[SplitRuleName]
		}
		if !ok {
			continue
		}
		rule.Timeouts = old.Timeouts.DeepCopy()
		rule.Retry = old.Retry.DeepCopy()
		var ext []gwv1.HTTPRouteFilter
		for _, f := range old.Filters {
			if f.Type == gwv1.HTTPRouteFilterExtensionRef {
				ext = append(ext, *f.DeepCopy())
			}
		}
		// Policy filters first, as the MeshPolicy controller writes them.
		rule.Filters = append(ext, rule.Filters...)
	}
}
