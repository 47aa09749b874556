package linkerd

import (
	"fmt"
	"testing"

	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestHTTPRoutesSplit: past the schema's list limits (32 parentRefs, 16 rules of 8 matches),
// the matches are spread over several routes, each within the limits, none lost.
func TestHTTPRoutesSplit(t *testing.T) {
	p := policytest.Policy("shop", "payments", cases()[0].spec)
	var srvs []server
	for i := range 33 {
		srvs = append(srvs, server{name: fmt.Sprintf("s%d", i)})
	}
	var matches []httpMatch
	for i := range 129 {
		matches = append(matches, httpMatch{path: pathMatch{exact: true, value: fmt.Sprintf("/p%d", i)}})
	}
	routes := httpRoutes(p, srvs, matches, "1")
	if len(routes) != 4 {
		t.Fatalf("%d routes, want 4 (2 parent chunks x 2 match chunks)", len(routes))
	}
	parents, total := map[string]int{}, 0
	for i, r := range routes {
		if want := fmt.Sprintf("payments-paths-1-%d", i+1); r.GetName() != want {
			t.Errorf("route %d is named %s, want %s", i, r.GetName(), want)
		}
		spec := r.Object["spec"].(map[string]any)
		refs := spec["parentRefs"].([]any)
		if len(refs) > maxParentsPerRoute {
			t.Errorf("%s has %d parentRefs", r.GetName(), len(refs))
		}
		for _, ref := range refs {
			parents[ref.(map[string]any)["name"].(string)]++
		}
		rules := spec["rules"].([]any)
		if len(rules) > maxRulesPerRoute {
			t.Errorf("%s has %d rules", r.GetName(), len(rules))
		}
		for _, rule := range rules {
			n := len(rule.(map[string]any)["matches"].([]any))
			if n > maxMatchesPerRule {
				t.Errorf("%s has a rule of %d matches", r.GetName(), n)
			}
			total += n
		}
	}
	if total != 2*129 {
		t.Errorf("%d matches over the routes, want every match once per parent chunk (%d)", total, 2*129)
	}
	for _, s := range srvs {
		if parents[s.name] != 2 {
			t.Errorf("Server %s is the parent of %d routes, want 2 (one per match chunk)", s.name, parents[s.name])
		}
	}
}
