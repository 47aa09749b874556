package linkerd

import (
	"strconv"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// Limits of the policy.linkerd.io HTTPRoute schema.
const (
	maxMatchesPerRule  = 8
	maxRulesPerRoute   = 16
	maxParentsPerRoute = 32
)

// authorization allows what the rules allow; the Servers' accessPolicy deny refuses the rest.
// Rules without to[] allow their callers on the whole Server (AuthorizationPolicy per Server;
// Linkerd applies a Server's authorizations on each of its routes too, and to non-HTTP
// traffic). Rules with to[] become HTTPRoutes on the Servers, each with the callers of every
// rule that covers it (see planRoutes). No rules: nothing is allowed.
func authorization(p *meshv1alpha1.MeshPolicy, srvs []server, strict bool, g *gaps) []*unstructured.Unstructured {
	rules := p.Spec.Authorization.Rules
	authns := &authentications{policyName: p.Name, ns: p.Namespace, strict: strict}
	var policies []*unstructured.Unstructured

	var wide clients
	var routed []meshv1alpha1.AuthorizationRule
	for i := range rules {
		if len(rules[i].To) == 0 {
			wide.add(&rules[i])
		} else {
			routed = append(routed, rules[i])
		}
	}
	if !wide.none() {
		ref := authns.ref(wide)
		for _, s := range srvs {
			policies = append(policies, authorizationPolicy(p.Namespace, s.name, s.ref(), ref))
		}
	}

	groups, catchAll := planRoutes(routed, g)
	var routes []*unstructured.Unstructured
	for i, grp := range groups {
		rs := httpRoutes(p, srvs, grp.matches, strconv.Itoa(i+1))
		ref := authns.ref(grp.clients)
		for _, r := range rs {
			policies = append(policies, authorizationPolicy(p.Namespace, r.GetName(), routeRef(r.GetName()), ref))
		}
		routes = append(routes, rs...)
	}
	if catchAll {
		// The rest of the requests: no route-level callers, so only Server-wide rules allow
		// them, and the others get 403 rather than 404.
		routes = append(routes, httpRoutes(p, srvs, []httpMatch{anyRequest}, "other")...)
	}
	return append(append(authns.objects, routes...), policies...)
}

// httpRoutes are the HTTPRoutes for matches on every Server, split where the schema's list
// limits require: named <policy>-paths-<id>, with -<n> when split.
func httpRoutes(p *meshv1alpha1.MeshPolicy, srvs []server, matches []httpMatch, id string) []*unstructured.Unstructured {
	var specs []map[string]any
	for ps := 0; ps < len(srvs); ps += maxParentsPerRoute {
		var parents []any
		for _, s := range srvs[ps:min(ps+maxParentsPerRoute, len(srvs))] {
			parents = append(parents, s.ref())
		}
		for mi := 0; mi < len(matches); mi += maxMatchesPerRule * maxRulesPerRoute {
			chunk := matches[mi:min(mi+maxMatchesPerRule*maxRulesPerRoute, len(matches))]
			var rules []any
			for ri := 0; ri < len(chunk); ri += maxMatchesPerRule {
				var objs []any
				for _, m := range chunk[ri:min(ri+maxMatchesPerRule, len(chunk))] {
					objs = append(objs, m.object())
				}
				rules = append(rules, map[string]any{"matches": objs})
			}
			specs = append(specs, map[string]any{"parentRefs": parents, "rules": rules})
		}
	}
	var out []*unstructured.Unstructured
	for i, spec := range specs {
		name := policy.ObjectName(p.Name, "paths", id)
		if len(specs) > 1 {
			name = policy.ObjectName(p.Name, "paths", id, strconv.Itoa(i+1))
		}
		out = append(out, newObject(httpRouteGVK, p.Namespace, name, spec))
	}
	return out
}

func routeRef(name string) map[string]any {
	return map[string]any{"group": policyGroup, "kind": httpRouteGVK.Kind, "name": name}
}
