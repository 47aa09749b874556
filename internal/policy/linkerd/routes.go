package linkerd

import (
	"fmt"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// routeGroup is the matches whose requests the same callers may send: one HTTPRoute (or a few,
// past the CRD's list limits) with one AuthorizationPolicy.
type routeGroup struct {
	clients clients
	matches []httpMatch
}

// destinations is a rule's to[] as matches: each method with each path (an empty list is any).
func destinations(r *meshv1alpha1.AuthorizationRule, g *gaps) []httpMatch {
	var out []httpMatch
	for _, to := range r.To {
		methods := []string{""}
		if len(to.Methods) > 0 {
			methods = methods[:0]
			for _, m := range to.Methods {
				methods = append(methods, string(m))
			}
		}
		paths := []pathMatch{anyRequest.path}
		if len(to.Paths) > 0 {
			paths = paths[:0]
			for _, p := range to.Paths {
				pm, aligned := translatePath(p)
				if !aligned {
					g.add("authorization.rules.to.paths", fmt.Sprintf(
						"Linkerd matches path prefixes by whole segments, so %s is applied as %s and leaves out longer names in its last segment",
						p, httpMatch{path: pm}))
				}
				paths = append(paths, pm)
			}
		}
		for _, m := range methods {
			for _, p := range paths {
				out = append(out, httpMatch{method: m, path: p})
			}
		}
	}
	return out
}

// planRoutes groups the matches of the rules that have a to[] by the callers allowed on them.
// Every match gets the callers of every such rule that covers it; rules without to[] are
// Server-wide and apply on every route already. catchAll reports that no group matches every
// request, so a route for the rest is needed: without one, Linkerd answers requests that
// match no route with 404 and never consults the Server-wide rules.
func planRoutes(rules []meshv1alpha1.AuthorizationRule, g *gaps) (groups []routeGroup, catchAll bool) {
	dests := make([][]httpMatch, len(rules))
	var all []httpMatch
	for i := range rules {
		dests[i] = destinations(&rules[i], g)
		all = append(all, dests[i]...)
	}
	if len(all) == 0 {
		return nil, false
	}
	matches := closure(all)
	byKey := map[string]int{}
	keyOf := map[httpMatch]string{}
	for _, m := range matches {
		var c clients
		for i := range rules {
			for _, d := range dests[i] {
				if d.contains(m) {
					c.add(&rules[i])
					break
				}
			}
		}
		k := c.key()
		keyOf[m] = k
		gi, ok := byKey[k]
		if !ok {
			gi = len(groups)
			byKey[k] = gi
			groups = append(groups, routeGroup{clients: c})
		}
		groups[gi].matches = append(groups[gi].matches, m)
	}
	tieGaps(matches, keyOf, g)
	_, covered := keyOf[anyRequest]
	return groups, !covered
}

// tieGaps reports the one case the closure can't settle: Linkerd ranks an exact path and the
// prefix of the same value alike (same length), and breaks the tie between routes by age and
// name, so the request to that very path may be judged by the prefix's callers only.
func tieGaps(matches []httpMatch, keyOf map[httpMatch]string, g *gaps) {
	for _, m := range matches {
		if !m.path.exact {
			continue
		}
		prefix := httpMatch{method: m.method, path: pathMatch{value: m.path.value}}
		if k, ok := keyOf[prefix]; ok && k != keyOf[m] {
			g.add("authorization.rules.to.paths", fmt.Sprintf(
				"Linkerd ranks %s and %s alike for a request to %s, so callers allowed only by the first may be refused there",
				m, prefix, m.path.value))
		}
	}
}
