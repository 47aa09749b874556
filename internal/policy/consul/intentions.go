package consul

import (
	"fmt"
	"sort"
	"strings"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// wildcard is the intention source that matches every service.
const wildcard = "*"

// permission is one allowed method/path set: at most one of exact and prefix, methods empty
// for any method.
type permission struct {
	exact, prefix string
	methods       []string
}

func (p permission) key() string {
	return p.exact + "\x00" + p.prefix + "\x00" + strings.Join(p.methods, ",")
}

// source is what one intention source may do: everything (all), or the listed permissions.
type source struct {
	name  string
	all   bool
	perms []permission
}

func (s *source) allow(all bool, perms []permission) {
	s.all = s.all || all
	seen := map[string]bool{}
	for _, p := range s.perms {
		seen[p.key()] = true
	}
	for _, p := range perms {
		if !seen[p.key()] {
			seen[p.key()] = true
			s.perms = append(s.perms, p)
		}
	}
}

// l7 reports whether the source needs L7 permissions (and so protocol http).
func (s *source) l7() bool { return !s.all && len(s.perms) > 0 }

// intentionSources turns the rules into one source per calling service, sorted by name, and
// the wildcard source last; nil without authorization.
//
// Consul enforces only the most specific intention source that matches a caller, so what any
// source may do (a rule with an empty from) is copied into every named source; and a source
// with permissions ends with a catch-all deny, because a request matching none of them would
// otherwise fall to the cluster's default intention policy instead of being denied. Sources by
// namespace are not expressible (see the matrix) and are left out: a rule with nothing but
// them allows nobody, never everybody.
func intentionSources(auth *meshv1alpha1.Authorization) ([]source, error) {
	if auth == nil {
		return nil, nil
	}
	everyone := &source{name: wildcard}
	named := map[string]*source{}
	for i, rule := range auth.Rules {
		all, perms := rulePermissions(rule.To)
		if len(rule.From) == 0 {
			everyone.allow(all, perms)
			continue
		}
		for j, from := range rule.From {
			if from.ServiceAccount == "" {
				continue
			}
			_, name, ok := strings.Cut(from.ServiceAccount, "/")
			if !ok || name == "" {
				return nil, fmt.Errorf("spec.authorization.rules[%d].from[%d].serviceAccount %q: want <namespace>/<name>", i, j, from.ServiceAccount)
			}
			if named[name] == nil {
				named[name] = &source{name: name}
			}
			named[name].allow(all, perms)
		}
	}
	names := make([]string, 0, len(named))
	for n := range named {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]source, 0, len(names)+1)
	for _, n := range names {
		s := named[n]
		s.allow(everyone.all, everyone.perms)
		out = append(out, *s)
	}
	return append(out, *everyone), nil
}

// rulePermissions: an empty to allows everything; else one permission per path (or one for
// the methods alone).
func rulePermissions(to []meshv1alpha1.AuthorizationDestination) (all bool, perms []permission) {
	if len(to) == 0 {
		return true, nil
	}
	for _, d := range to {
		var methods []string // nil: any method
		for _, m := range d.Methods {
			methods = append(methods, string(m))
		}
		if len(d.Paths) == 0 {
			perms = append(perms, permission{methods: methods})
			continue
		}
		for _, p := range d.Paths {
			perm := permission{methods: methods}
			if prefix, ok := strings.CutSuffix(p, "*"); ok {
				perm.prefix = prefix
			} else {
				perm.exact = p
			}
			perms = append(perms, perm)
		}
	}
	return false, perms
}

// intentionsSpec is the ServiceIntentions spec for one destination service.
func intentionsSpec(service string, sources []source) map[string]any {
	list := make([]any, 0, len(sources))
	for _, s := range sources {
		list = append(list, sourceSpec(s))
	}
	return map[string]any{
		"destination": map[string]any{"name": service},
		"sources":     list,
	}
}

func sourceSpec(s source) map[string]any {
	out := map[string]any{"name": s.name}
	switch {
	case s.all:
		out["action"] = "allow"
	case len(s.perms) == 0:
		// Only the wildcard source can be empty: nothing allowed from anyone else.
		out["action"] = "deny"
	default:
		perms := make([]any, 0, len(s.perms)+1)
		for _, p := range s.perms {
			perms = append(perms, map[string]any{"action": "allow", "http": httpMatch(p)})
		}
		// Every request path starts with "/": this denies whatever the allows above missed.
		perms = append(perms, map[string]any{"action": "deny", "http": map[string]any{"pathPrefix": "/"}})
		out["permissions"] = perms
	}
	return out
}

func httpMatch(p permission) map[string]any {
	m := map[string]any{}
	switch {
	case p.exact != "":
		m["pathExact"] = p.exact
	case p.prefix != "":
		m["pathPrefix"] = p.prefix
	}
	if len(p.methods) > 0 {
		methods := make([]any, 0, len(p.methods))
		for _, x := range p.methods {
			methods = append(methods, x)
		}
		m["methods"] = methods
	}
	return m
}
