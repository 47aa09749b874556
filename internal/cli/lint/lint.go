// Package lint checks Sluice manifests offline, with the checks the API server and the Sluice
// manager run when they are applied: the CRD schema with its CEL rules (the API server's own
// code, on the CRDs embedded from config/crd/bases), the defaulting and validating webhooks
// (registered as the manager registers them), and the admission policies (the built-in
// library through internal/admission/offline).
package lint

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	sluiceadmission "github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/internal/admission/offline"
	"github.com/sluice-mesh/sluice/webhooks"
)

// Severity of a finding: errors are what the cluster would refuse.
type Severity string

// The severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Finding is one problem of one object.
type Finding struct {
	Severity Severity
	// File and Document (1-based YAML document) locate the object; Object is "Kind ns/name".
	File     string
	Document int
	Object   string
	// Field is the path of the field at fault ("" for the whole object).
	Field   string
	Message string
	// Check is what found it: schema, cel, webhook, or policy/<name>.
	Check string
}

// Options describe the cluster the files are meant for.
type Options struct {
	// Namespace is given to objects without one.
	Namespace string
	// NamespaceLabels are the labels of namespaces not among the files (for the policies).
	NamespaceLabels map[string]string
	// NoPolicies skips the admission policies.
	NoPolicies bool
	// PolicyConfig and PolicyPaths are the platform team's configuration and policies, as
	// for `sluice policy test --config --policies`.
	PolicyConfig string
	PolicyPaths  []string
}

// Run checks the manifests and returns the findings, in file and document order.
func Run(ctx context.Context, ms []sluiceadmission.Manifest, opts Options) ([]Finding, error) {
	opts.Namespace = cmp.Or(opts.Namespace, "default")
	checkers, err := schemas()
	if err != nil {
		return nil, err
	}
	hooks, err := newValidatingHooks(newFilesReader(ms, opts.Namespace))
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, m := range ms {
		out = append(out, checkObject(ctx, m, opts.Namespace, checkers, hooks)...)
	}
	if !opts.NoPolicies {
		fs, err := policies(ctx, ms, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Document, b.Document))
	})
	return out, nil
}

// checkObject runs the API server's and the webhooks' checks on one Sluice object, in the
// API server's order: unknown fields are dropped, schema defaults written, the defaulting
// webhook run, the result validated (schema, CEL), then the validating webhook called.
func checkObject(ctx context.Context, m sluiceadmission.Manifest, namespace string, checkers map[string]*schemaChecker, hooks validatingHooks) []Finding {
	apiVersion, _ := m.Object["apiVersion"].(string)
	if !strings.HasPrefix(apiVersion, meshv1alpha1.GroupVersion.Group+"/") {
		return nil // not Sluice's: only the policies look at it
	}
	kind, _ := m.Object["kind"].(string)
	obj := deepCopy(m.Object)
	md, _ := obj["metadata"].(map[string]any)
	if md != nil && md["namespace"] == nil {
		md["namespace"] = namespace
	}
	f := func(sev Severity, check, fld, msg string) Finding {
		return Finding{Severity: sev, File: m.File, Document: m.Index + 1, Object: sluiceadmission.Manifest{Object: obj}.Name(), Field: fld, Message: msg, Check: check}
	}
	c, ok := checkers[apiVersion+", "+kind]
	if !ok {
		return []Finding{f(Error, "schema", "kind", fmt.Sprintf("%s %s is not served by Sluice's CRDs (kinds: Rollout, HealthGate, MeshPolicy in %s)", apiVersion, kind, meshv1alpha1.GroupVersion))}
	}
	var out []Finding
	for _, p := range c.prune(obj) {
		out = append(out, f(Error, "schema", p, "unknown field: the schema has no such field (kubectl apply refuses it; check the spelling and the nesting)"))
	}
	c.applyDefaults(obj)
	defaulted, err := defaultedByWebhook(ctx, obj)
	if err == nil {
		obj = defaulted
	}
	schemaErrs, celErrs := c.validate(ctx, obj)
	for _, e := range schemaErrs {
		check := "schema"
		if e.Field == "<nil>" { // the note that the CEL rules were skipped
			check = "cel"
		}
		out = append(out, f(Error, check, strings.TrimPrefix(e.Field, "<nil>"), detail(e)))
	}
	for _, e := range celErrs {
		// A rule on the whole object has no path ("<nil>"); its message names the fields.
		out = append(out, f(Error, "cel", strings.TrimPrefix(e.Field, "<nil>"), detail(e)))
	}
	if len(out) > 0 {
		return out // the API server refuses it before the validating webhook sees it
	}
	denied, warnings, err := hooks.review(ctx, obj)
	if err != nil {
		return append(out, f(Error, "webhook", "", err.Error()))
	}
	if denied != "" {
		fld, msg := splitField(denied)
		out = append(out, f(Error, "webhook", fld, msg))
	}
	for _, w := range warnings {
		fld, msg := splitField(w)
		out = append(out, f(Warning, "webhook", fld, msg))
	}
	return out
}

// detail is the error's message without repeating the field.
func detail(e *field.Error) string {
	if e.Detail != "" && (e.Type == field.ErrorTypeInvalid || e.Type == field.ErrorTypeRequired) {
		return e.Detail // a CEL rule's message; its "bad value" is only the schema type
	}
	return e.ErrorBody()
}

// splitField separates a leading "spec.x.y: " from a webhook message.
func splitField(msg string) (string, string) {
	if fld, rest, ok := strings.Cut(msg, ": "); ok && (strings.HasPrefix(fld, "spec.") || strings.HasPrefix(fld, "metadata.")) && !strings.Contains(fld, " ") {
		return fld, rest
	}
	return "", msg
}

// defaultedByWebhook is obj after the defaulting webhook (decoded into its type, defaulted,
// encoded back), as the API server stores it before validation.
func defaultedByWebhook(ctx context.Context, obj map[string]any) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var typed any
	switch obj["kind"] {
	case "Rollout":
		r := &meshv1alpha1.Rollout{}
		if err := json.Unmarshal(data, r); err != nil {
			return nil, err
		}
		if err := (webhooks.RolloutDefaulter{}).Default(ctx, r); err != nil {
			return nil, err
		}
		typed = r
	case "HealthGate":
		g := &meshv1alpha1.HealthGate{}
		if err := json.Unmarshal(data, g); err != nil {
			return nil, err
		}
		if err := (webhooks.HealthGateDefaulter{}).Default(ctx, g); err != nil {
			return nil, err
		}
		typed = g
	case "MeshPolicy":
		p := &meshv1alpha1.MeshPolicy{}
		if err := json.Unmarshal(data, p); err != nil {
			return nil, err
		}
		if err := (webhooks.MeshPolicyDefaulter{}).Default(ctx, p); err != nil {
			return nil, err
		}
		typed = p
	default:
		return obj, nil
	}
	if data, err = json.Marshal(typed); err != nil {
		return nil, err
	}
	var out map[string]any
	if err := utiljson.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	delete(out, "status") // a create never carries status
	// The typed round trip writes creationTimestamp: null, which the schema does not refuse.
	return out, nil
}

// policies reviews every object with the admission policies: the built-in library and the
// given ones.
func policies(ctx context.Context, ms []sluiceadmission.Manifest, opts Options) ([]Finding, error) {
	engine, err := offline.LoadEngine(opts.PolicyConfig, opts.PolicyPaths, false, io.Discard)
	if err != nil {
		return nil, fmt.Errorf("loading the admission policies: %w", err)
	}
	var out []Finding
	for _, f := range offline.Review(ctx, engine, ms, offline.Options{Namespace: opts.Namespace, NamespaceLabels: opts.NamespaceLabels}) {
		if f.Policy == offline.DecodePolicy {
			continue // the schema check reports what does not decode, with the field
		}
		sev := Warning
		if f.Mode == sluiceadmission.Deny {
			sev = Error
		}
		out = append(out, Finding{Severity: sev, File: f.Manifest.File, Document: f.Manifest.Index + 1, Object: f.Object,
			Field: f.Field, Message: f.Message, Check: "policy/" + f.Policy + " (" + string(f.Mode) + ")"})
	}
	return out, nil
}

// deepCopy copies obj with its numbers as the API server decodes them (integers as int64: the
// schema and CEL tell integers from floats).
func deepCopy(obj map[string]any) map[string]any {
	data, _ := json.Marshal(obj)
	var out map[string]any
	_ = utiljson.Unmarshal(data, &out)
	return out
}
