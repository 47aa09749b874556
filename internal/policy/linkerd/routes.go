package linkerd

import (
	"fmt"
	"slices"
	"strings"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// routeGroup is the matches whose requests the same callers may send: one HTTPRoute (or a few,
// past the CRD's list limits) with one AuthorizationPolicy.
type routeGroup struct {
	clients clients
	matches []httpMatch
}

// destinations is a rule's to[] as matches: each method with each path (an empty list is any).
// A match Linkerd would apply to more requests than the rule allows is left out (see
// widerMatch): its requests are refused rather than allowed.
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
		paths := to.Paths
		if len(paths) == 0 {
			paths = []string{"/*"}
		}
		for _, m := range methods {
			for _, p := range paths {
				pm, aligned := translatePath(p)
				if !aligned {
					g.add("authorization.rules.to.paths", fmt.Sprintf(
						"Linkerd matches path prefixes by whole segments, so %s is applied as %s and leaves out longer names in its last segment",
						p, httpMatch{path: pm}))
				}
				if reason := widerMatch(r, m, p); reason != "" {
					g.add("authorization.rules.to.paths", reason)
					continue
				}
				out = append(out, httpMatch{method: m, path: pm})
			}
		}
	}
	return out
}

// widerMatch says why Linkerd's match for method and the API path p would allow requests the
// rule does not, "" when it would not. Linkerd matches a prefix by whole segments and ignores
// its trailing slashes, so "/api/*" also takes in "/api" itself: the rule must allow that path
// too. A prefix ending in two slashes takes in every path under the segment before them.
func widerMatch(r *meshv1alpha1.AuthorizationRule, method, p string) string {
	prefix, ok := strings.CutSuffix(p, "*")
	if !ok || !strings.HasSuffix(prefix, "/") || prefix == "/" {
		return ""
	}
	bare := strings.TrimSuffix(prefix, "/")
	if bare == "" || strings.HasSuffix(bare, "/") {
		return fmt.Sprintf("Linkerd ignores the trailing slashes of a path prefix, so %s would also allow the paths under %s; it is left out, and its requests refused",
			withMethod(method, p), strings.TrimRight(prefix, "/")+"/")
	}
	if ruleAllows(r, method, bare) {
		return ""
	}
	return fmt.Sprintf("Linkerd matches path prefixes by whole segments, so %s would also allow %s, which the rule does not; it is left out, and its requests refused (list %s in the rule's paths to allow both)",
		withMethod(method, p), withMethod(method, bare), bare)
}

// ruleAllows reports whether the rule allows a request of method ("" for any method) to path,
// as the API means its paths: an exact path, or a string prefix before a trailing "*".
func ruleAllows(r *meshv1alpha1.AuthorizationRule, method, path string) bool {
	for _, to := range r.To {
		if len(to.Methods) > 0 && (method == "" || !slices.Contains(to.Methods, meshv1alpha1.HTTPMethod(method))) {
			continue
		}
		if len(to.Paths) == 0 {
			return true
		}
		if slices.ContainsFunc(to.Paths, func(p string) bool { return pathAllows(p, path) }) {
			return true
		}
	}
	return false
}

// pathAllows: the API path p (exact, or a prefix before a trailing "*") takes in path.
func pathAllows(p, path string) bool {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return p == path
}

// withMethod writes a request as the API's fields do, for messages: "GET /api/*", or the path
// alone for any method.
func withMethod(method, path string) string {
	if method == "" {
		return path
	}
	return method + " " + path
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
