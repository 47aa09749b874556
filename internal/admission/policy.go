package admission

import (
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// Source is the text of one policy and where it came from.
type Source struct {
	// Name is unique in the set: the built-in's name, or <configmap>/<key without .rego>
	// (`sluice policy test --policies <dir>`: <dir>/<file without .rego>).
	Name string
	// Origin says where to fix it: "built-in" or "ConfigMap sluice-system/team-rules, key x.rego".
	Origin string
	// File is the module's file name (positions in compile errors).
	File   string
	Module string
}

// Kind is one kind policies can match, with the group it belongs to.
type Kind struct{ Group, Kind string }

// Checkable are the kinds the engine reviews. Sluice's own kinds are reviewed everywhere;
// the others only in namespaces labelled for policy checks (NamespaceLabel), so that a
// cluster's other workloads never depend on Sluice's webhook.
var Checkable = []Kind{
	{"mesh.sluice.dev", "Rollout"},
	{"mesh.sluice.dev", "HealthGate"},
	{"mesh.sluice.dev", "MeshPolicy"},
	{"gateway.networking.k8s.io", "HTTPRoute"},
	{"", "Service"},
	{"apps", "Deployment"},
}

// NamespaceLabel marks the namespaces whose HTTPRoutes, Services and Deployments are checked.
const NamespaceLabel = "mesh.sluice.dev/policy-checks"

// NamespaceLabelValue is the value NamespaceLabel must have.
const NamespaceLabelValue = "enabled"

// sluiceOwn reports whether a kind is one of Sluice's own (checked in every namespace).
func (k Kind) sluiceOwn() bool { return k.Group == "mesh.sluice.dev" }

func kindByName(name string) (Kind, bool) {
	for _, k := range Checkable {
		if strings.EqualFold(k.Kind, name) {
			return k, true
		}
	}
	return Kind{}, false
}

// meta is what a policy declares about itself in its package METADATA block:
//
//	# METADATA
//	# title: Production Rollouts have a HealthGate
//	# custom:
//	#   mode: deny
//	#   kinds: [Rollout]
//	#   namespaceSelector: {matchLabels: {sluice.dev/env: production}}
//	package sluice.rollout_healthgate
type meta struct {
	Title             string
	Description       string
	Mode              Mode
	Kinds             []Kind
	NamespaceSelector labels.Selector
	// Params are the keys of data.sluice.params the policy reads (documentation).
	Params []string
}

// custom is the `custom:` part of the METADATA block.
type custom struct {
	Mode              string                `json:"mode"`
	Kinds             []string              `json:"kinds"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector"`
	Params            []string              `json:"params"`
}

// parse parses a policy's module and reads its metadata. Errors name the source and say
// what is allowed.
func parse(src Source) (*ast.Module, meta, error) {
	mod, err := ast.ParseModuleWithOpts(src.File, src.Module, ast.ParserOptions{ProcessAnnotation: true, RegoVersion: ast.RegoV1})
	if err != nil {
		return nil, meta{}, err
	}
	var pkg *ast.Annotations
	for _, a := range mod.Annotations {
		if a.Scope == "package" {
			pkg = a
		}
	}
	if pkg == nil {
		return nil, meta{}, fmt.Errorf("%s: no METADATA block on the package: declare custom.mode (deny|warn|audit) and custom.kinds (%s)", src.File, kindNames())
	}
	raw, err := yaml.Marshal(pkg.Custom)
	if err != nil {
		return nil, meta{}, err
	}
	var c custom
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		return nil, meta{}, fmt.Errorf("%s: METADATA custom: %w (allowed keys: mode, kinds, namespaceSelector, params)", src.File, err)
	}
	m := meta{Title: pkg.Title, Description: pkg.Description, Params: c.Params}
	if m.Mode, err = ParseMode(c.Mode); err != nil {
		return nil, meta{}, fmt.Errorf("%s: METADATA custom.%w", src.File, err)
	}
	if m.Mode == Off {
		return nil, meta{}, fmt.Errorf("%s: METADATA custom.mode off: turn a policy off in the configuration, not in its source", src.File)
	}
	if len(c.Kinds) == 0 {
		return nil, meta{}, fmt.Errorf("%s: METADATA custom.kinds is empty: list the kinds the policy checks (%s)", src.File, kindNames())
	}
	for _, name := range c.Kinds {
		k, ok := kindByName(name)
		if !ok {
			return nil, meta{}, fmt.Errorf("%s: METADATA custom.kinds: %q is not checked by Sluice (allowed: %s)", src.File, name, kindNames())
		}
		m.Kinds = append(m.Kinds, k)
	}
	m.NamespaceSelector = labels.Everything()
	if c.NamespaceSelector != nil {
		if m.NamespaceSelector, err = metav1.LabelSelectorAsSelector(c.NamespaceSelector); err != nil {
			return nil, meta{}, fmt.Errorf("%s: METADATA custom.namespaceSelector: %w", src.File, err)
		}
	}
	if !slices.ContainsFunc(mod.Rules, func(r *ast.Rule) bool {
		return r.Head.Name.String() == "violation" || r.Head.Ref().String() == "violation"
	}) {
		return nil, meta{}, fmt.Errorf("%s: package %s has no `violation` rule: write `violation contains {\"msg\": ..., \"field\": ...} if { ... }`", src.File, mod.Package.Path)
	}
	return mod, m, nil
}

func kindNames() string {
	names := make([]string, len(Checkable))
	for i, k := range Checkable {
		names[i] = k.Kind
	}
	return strings.Join(names, ", ")
}
