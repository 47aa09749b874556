package linkerd

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestTranslatePath(t *testing.T) {
	for _, c := range []struct {
		in      string
		want    pathMatch
		aligned bool
	}{
		{"/healthz", pathMatch{exact: true, value: "/healthz"}, true},
		{"/api/", pathMatch{exact: true, value: "/api/"}, true},
		{"/api/*", pathMatch{value: "/api"}, true},
		{"/*", pathMatch{value: "/"}, true},
		{"/ap*", pathMatch{value: "/ap"}, false},
	} {
		got, aligned := translatePath(c.in)
		if got != c.want || aligned != c.aligned {
			t.Errorf("translatePath(%q) = %+v, %v; want %+v, %v", c.in, got, aligned, c.want, c.aligned)
		}
	}
}

// TestUnderPrefix pins Linkerd's prefix semantics (linkerd2-proxy http-route path.rs).
func TestUnderPrefix(t *testing.T) {
	for _, c := range []struct {
		prefix, path string
		want         bool
	}{
		{"/", "/anything", true},
		{"/foo", "/foo", true},
		{"/foo", "/foo/", true},
		{"/foo", "/foo/bar", true},
		{"/foo", "/foobar", false},
		{"/foo", "/", false},
		{"/foo/bar", "/foo", false},
	} {
		if got := underPrefix(c.prefix, c.path); got != c.want {
			t.Errorf("underPrefix(%q, %q) = %v, want %v", c.prefix, c.path, got, c.want)
		}
	}
}

// request is what the simulation sends.
type request struct{ method, path string }

// matchesRequest and score reproduce how Linkerd's inbound proxy picks the route of a request:
// the longest path match (an exact one counts the whole path, a prefix its own length), then
// one with a method; see linkerd2-proxy http-route match.rs.
func (a httpMatch) matchesRequest(r request) bool {
	if a.method != "" && a.method != r.method {
		return false
	}
	if a.path.exact {
		return a.path.value == r.path
	}
	return underPrefix(a.path.value, r.path)
}

func (a httpMatch) score() (int, bool) { return len(a.path.value), a.method != "" }

// TestPlanRoutesSimulated checks planRoutes against a simulation of Linkerd on random rule
// sets: for every request, the route Linkerd picks must carry exactly the callers of the rules
// whose matches take it in, two routes may tie only where a gap is reported, and no caller may
// be allowed a request its rules do not allow as the API means them.
func TestPlanRoutesSimulated(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/", "/a", "/a/", "/a/b", "/ab", "/b", "/*", "/a/*", "/a/b/*", "/b/*", "/ab/*", "/a*", "/a//*"}
	verbs := []meshv1alpha1.HTTPMethod{"GET", "POST", "PUT"}
	var requests []request
	for _, p := range []string{"/", "/a", "/a/", "/a//", "/a//x", "/a/b", "/a/b/", "/a/b/c", "/a/x", "/ab", "/abc", "/b", "/b/x", "/c"} {
		for _, m := range verbs {
			requests = append(requests, request{string(m), p})
		}
	}
	for iter := range 500 {
		var rules []meshv1alpha1.AuthorizationRule
		for i := range 1 + rng.IntN(5) {
			var dests []meshv1alpha1.AuthorizationDestination
			for range 1 + rng.IntN(2) {
				var d meshv1alpha1.AuthorizationDestination
				for _, m := range verbs {
					if rng.IntN(3) == 0 {
						d.Methods = append(d.Methods, m)
					}
				}
				for range rng.IntN(3) {
					d.Paths = append(d.Paths, paths[rng.IntN(len(paths))])
				}
				dests = append(dests, d)
			}
			rules = append(rules, meshv1alpha1.AuthorizationRule{
				From: []meshv1alpha1.AuthorizationSource{sa(fmt.Sprintf("ns/r%d", i))},
				To:   dests,
			})
		}
		g := &gaps{}
		groups, catchAll := planRoutes(rules, g)
		tied := slices.ContainsFunc(g.reasons["authorization.rules.to.paths"], func(r string) bool { return strings.Contains(r, "alike") })
		for _, r := range requests {
			var want, allowed clients
			for i := range rules {
				for _, d := range destinations(&rules[i], &gaps{}) {
					if d.matchesRequest(r) {
						want.add(&rules[i])
						break
					}
				}
				if ruleAllows(&rules[i], r.method, r.path) {
					allowed.add(&rules[i])
				}
			}
			if !within(want, allowed) {
				t.Fatalf("iteration %d, %v: Linkerd would allow %q, the rules only %q\nrules: %+v", iter, r, want.key(), allowed.key(), rules)
			}
			best, bestGroups := -1, map[int]bool{}
			bestMethod := false
			for gi, grp := range groups {
				for _, m := range grp.matches {
					if !m.matchesRequest(r) {
						continue
					}
					l, hasMethod := m.score()
					switch {
					case l > best || (l == best && hasMethod && !bestMethod):
						best, bestMethod, bestGroups = l, hasMethod, map[int]bool{gi: true}
					case l == best && hasMethod == bestMethod:
						bestGroups[gi] = true
					}
				}
			}
			switch {
			case len(bestGroups) == 0:
				// Without any route, Linkerd judges every request by the Server-wide rules,
				// as it does the requests of the catch-all route.
				if !want.none() || (!catchAll && len(groups) > 0) {
					t.Fatalf("iteration %d, %v: no route matches (catch-all %v), want callers %q\nrules: %+v", iter, r, catchAll, want.key(), rules)
				}
			case len(bestGroups) > 1:
				if !tied {
					t.Fatalf("iteration %d, %v: routes tie and no gap was reported\nrules: %+v", iter, r, rules)
				}
				for gi := range bestGroups {
					if !within(groups[gi].clients, allowed) {
						t.Fatalf("iteration %d, %v: a tied route allows %q, the rules only %q\nrules: %+v", iter, r, groups[gi].clients.key(), allowed.key(), rules)
					}
				}
			default:
				for gi := range bestGroups {
					if got := groups[gi].clients.key(); got != want.key() {
						t.Fatalf("iteration %d, %v: route allows %q, rules allow %q\nrules: %+v", iter, r, got, want.key(), rules)
					}
				}
			}
		}
	}
}

// within reports whether every caller c allows, allowed allows too.
func within(c, allowed clients) bool {
	if allowed.any {
		return true
	}
	if c.any {
		return false
	}
	for sa := range c.serviceAccounts {
		if !allowed.serviceAccounts[sa] {
			return false
		}
	}
	for ns := range c.namespaces {
		if !allowed.namespaces[ns] {
			return false
		}
	}
	return true
}
