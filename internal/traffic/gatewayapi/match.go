package gatewayapi

import (
	"fmt"
	"regexp"
	"strings"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// maxHeaderValue is the Gateway API limit on a header match value (the cookie regex).
const maxHeaderValue = 4096

// rootPath is the match the Gateway API defaults a rule to; spelled out so rules read back equal.
func rootPath() *gwv1.HTTPPathMatch {
	return &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchPathPrefix), Value: ptr.To("/")}
}

// httpMatch turns one A/B condition set into a Gateway API match on path (nil: no path match).
// Cookies become one RegularExpression match on the Cookie header: the Gateway API has no
// cookie match, and header names must be unique within a match.
func httpMatch(m meshv1alpha1.RouteMatch, path *gwv1.HTTPPathMatch) (gwv1.HTTPRouteMatch, error) {
	out := gwv1.HTTPRouteMatch{Path: path}
	seen := map[string]bool{}
	for _, h := range m.Headers {
		key := strings.ToLower(h.Name)
		if seen[key] {
			return out, fmt.Errorf("header %q is matched twice in one match", h.Name)
		}
		seen[key] = true
		out.Headers = append(out.Headers, gwv1.HTTPHeaderMatch{
			Type:  ptr.To(gwv1.HeaderMatchType(h.GetType())),
			Name:  gwv1.HTTPHeaderName(h.Name),
			Value: h.Value,
		})
	}
	if len(m.Cookies) > 0 {
		if seen["cookie"] {
			return out, fmt.Errorf("a match cannot have both a Cookie header condition and cookies")
		}
		re, err := cookieRegex(m.Cookies)
		if err != nil {
			return out, err
		}
		out.Headers = append(out.Headers, gwv1.HTTPHeaderMatch{
			Type:  ptr.To(gwv1.HeaderMatchRegularExpression),
			Name:  "Cookie",
			Value: re,
		})
	}
	seen = map[string]bool{}
	for _, q := range m.QueryParams {
		// Query parameter names are case-sensitive, unlike header names.
		if seen[q.Name] {
			return out, fmt.Errorf("query parameter %q is matched twice in one match", q.Name)
		}
		seen[q.Name] = true
		out.QueryParams = append(out.QueryParams, gwv1.HTTPQueryParamMatch{
			Type:  ptr.To(gwv1.QueryParamMatchType(q.GetType())),
			Name:  gwv1.HTTPHeaderName(q.Name),
			Value: q.Value,
		})
	}
	return out, nil
}

// Pieces of the cookie regex. A Cookie header is "a=1; b=2"; a cookie matches as a whole when it
// starts the value or follows a ";", and is followed by ";" or the end. The pattern is anchored
// at both ends so it means the same under full-match (Envoy) and find (others) semantics.
const (
	cookieStart   = `^(?:.*;\s*)?`
	cookieBetween = `;\s*(?:.*;\s*)?`
	cookieEnd     = `(?:;.*)?$`
)

// cookieRegex matches a Cookie header that carries every cookie with its exact value, in any
// order. RE2 has no lookahead, so more than one cookie needs one alternative per order; the
// result must fit the Gateway API's 4096 characters, which caps that in practice at 3-4 cookies.
func cookieRegex(cookies []meshv1alpha1.CookieMatch) (string, error) {
	names := map[string]bool{}
	parts := make([]string, 0, len(cookies))
	for _, c := range cookies {
		if names[c.Name] {
			return "", fmt.Errorf("cookie %q is matched twice in one match", c.Name)
		}
		names[c.Name] = true
		parts = append(parts, regexp.QuoteMeta(c.Name+"="+c.Value))
	}
	var body string
	if len(parts) == 1 {
		body = parts[0]
	} else {
		var orders []string
		permute(parts, 0, func(p []string) { orders = append(orders, strings.Join(p, cookieBetween)) })
		body = "(?:" + strings.Join(orders, "|") + ")"
	}
	re := cookieStart + body + cookieEnd
	if len(re) > maxHeaderValue {
		return "", fmt.Errorf("the regular expression for %d cookies is %d characters, over the Gateway API limit of %d: match fewer or shorter cookies",
			len(cookies), len(re), maxHeaderValue)
	}
	return re, nil
}

// permute calls visit with every order of p[k:] (p[:k] fixed); p is restored afterwards.
func permute(p []string, k int, visit func([]string)) {
	if k == len(p) {
		visit(p)
		return
	}
	for i := k; i < len(p); i++ {
		p[k], p[i] = p[i], p[k]
		permute(p, k+1, visit)
		p[k], p[i] = p[i], p[k]
	}
}

// abMatches is the matches of A/B rule i: one per path, each with the user's conditions.
func abMatches(m meshv1alpha1.RouteMatch, paths []*gwv1.HTTPPathMatch) ([]gwv1.HTTPRouteMatch, error) {
	out := make([]gwv1.HTTPRouteMatch, 0, len(paths))
	for _, p := range paths {
		hm, err := httpMatch(m, p)
		if err != nil {
			return nil, err
		}
		out = append(out, hm)
	}
	return out, nil
}
