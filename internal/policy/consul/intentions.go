package consul

import (
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

// source is what the intention source "*" may do: everything (all), or the listed permissions.
type source struct {
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

// anyCaller is what the rules with an empty from allow, as the source "*"; nil without
// authorization.
//
// Consul CE knows a caller by its Consul service name alone: consul-k8s puts every Kubernetes
// namespace in one Consul namespace, so neither a ServiceAccount's namespace nor a namespace
// can be matched (see the matrix). A source named after the account would admit the services
// of that name in every namespace, so rules that name sources are left out: they allow
// nobody, never anybody else.
func anyCaller(auth *meshv1alpha1.Authorization) *source {
	if auth == nil {
		return nil
	}
	s := &source{}
	for _, rule := range auth.Rules {
		if len(rule.From) == 0 {
			s.allow(rulePermissions(rule.To))
		}
	}
	return s
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

// intentionsSpec is the ServiceIntentions spec for one destination service: its one source,
// "*", allows what the rules with an empty from allow and denies the rest.
func intentionsSpec(service string, s *source) map[string]any {
	return map[string]any{
		"destination": map[string]any{"name": service},
		"sources":     []any{sourceSpec(s)},
	}
}

func sourceSpec(s *source) map[string]any {
	out := map[string]any{"name": wildcard}
	switch {
	case s.all:
		out["action"] = "allow"
	case len(s.perms) == 0:
		out["action"] = "deny"
	default:
		perms := make([]any, 0, len(s.perms)+1)
		for _, p := range s.perms {
			perms = append(perms, map[string]any{"action": "allow", "http": httpMatch(p)})
		}
		// Every request path starts with "/": this denies whatever the allows above missed,
		// which would otherwise fall to the cluster's default intention policy.
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
