package linkerd

import (
	"sort"
	"strings"
)

// pathMatch is an HTTPRoute path match as Linkerd's proxy evaluates it: an exact path, or a
// prefix matched by whole segments (kept without its trailing slash; "/" matches every path).
type pathMatch struct {
	exact bool
	value string
}

// httpMatch is one HTTPRoute match: a method ("" for any) and a path.
type httpMatch struct {
	method string
	path   pathMatch
}

// anyRequest matches every request.
var anyRequest = httpMatch{path: pathMatch{value: "/"}}

// translatePath turns an API path into a match: "/x" exact, "/x/*" the segment prefix /x, "/*"
// everything. aligned is false for a prefix that ends inside a segment ("/ap*"): Linkerd can
// only match it as the segment prefix /ap, which leaves out /apple.
func translatePath(p string) (m pathMatch, aligned bool) {
	prefix, isPrefix := strings.CutSuffix(p, "*")
	if !isPrefix {
		return pathMatch{exact: true, value: p}, true
	}
	v := strings.TrimRight(prefix, "/")
	if v == "" {
		v = "/"
	}
	return pathMatch{value: v}, strings.HasSuffix(prefix, "/")
}

// underPrefix: Linkerd's prefix test, request path p under prefix v (the request's trailing
// slashes ignored, whole segments only).
func underPrefix(v, p string) bool {
	if v == "/" {
		return true
	}
	rest, ok := strings.CutPrefix(strings.TrimRight(p, "/"), v)
	return ok && (rest == "" || rest[0] == '/')
}

// contains: every path a matches b matches too.
func (a pathMatch) contains(b pathMatch) bool {
	if a.exact {
		return b.exact && a.value == b.value
	}
	// A prefix b is a path under a exactly when all paths under b are.
	return underPrefix(a.value, b.value)
}

// contains: every request m matches, a matches too.
func (a httpMatch) contains(m httpMatch) bool {
	return (a.method == "" || a.method == m.method) && a.path.contains(m.path)
}

// intersect is the match of the requests both match, if any. Segment prefixes either nest or
// are disjoint, so the intersection is always one of the two paths.
func intersect(a, b httpMatch) (httpMatch, bool) {
	var out httpMatch
	switch {
	case a.method == "":
		out.method = b.method
	case b.method == "" || b.method == a.method:
		out.method = a.method
	default:
		return httpMatch{}, false
	}
	switch {
	case a.path.contains(b.path):
		out.path = b.path
	case b.path.contains(a.path):
		out.path = a.path
	default:
		return httpMatch{}, false
	}
	return out, true
}

// closure adds the intersection of every set of matches, sorted by path (exact first) and
// method. Why: Linkerd judges a request by the single most specific match it meets (longest
// path, then a method), so a request in two rules' matches must find a match of its own
// that carries both rules' callers. The most specific match a request meets is the
// intersection of all the matches it meets, so adding intersections makes that match exist.
func closure(ms []httpMatch) []httpMatch {
	seen := map[httpMatch]bool{}
	var list []httpMatch
	add := func(m httpMatch) {
		if !seen[m] {
			seen[m] = true
			list = append(list, m)
		}
	}
	for _, m := range ms {
		add(m)
	}
	for i := 0; i < len(list); i++ {
		for j := 0; j < i; j++ {
			if x, ok := intersect(list[i], list[j]); ok {
				add(x)
			}
		}
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.path.value != b.path.value {
			return a.path.value < b.path.value
		}
		if a.path.exact != b.path.exact {
			return a.path.exact
		}
		return a.method < b.method
	})
	return list
}

// object is the match in an HTTPRoute rule.
func (a httpMatch) object() map[string]any {
	typ := "PathPrefix"
	if a.path.exact {
		typ = "Exact"
	}
	m := map[string]any{"path": map[string]any{"type": typ, "value": a.path.value}}
	if a.method != "" {
		m["method"] = a.method
	}
	return m
}

// String is the match as the API writes it ("GET /api/*"), for messages.
func (a httpMatch) String() string {
	p := a.path.value
	if !a.path.exact {
		p = strings.TrimSuffix(p, "/") + "/*"
	}
	if a.method == "" {
		return p
	}
	return a.method + " " + p
}
