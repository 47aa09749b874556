// Package offline is `sluice policy test`: the admission policies reviewed on manifest files,
// before they reach a cluster, with the engine and library the webhook runs. Sluice's own
// kinds go through the webhook's defaulting first, so that the verdicts are the webhook's.
package offline

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	sluiceadmission "github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/webhooks"
)

// Options describe the cluster the manifests are meant for.
type Options struct {
	// Namespace is given to objects without one (default "default").
	Namespace string
	// NamespaceLabels are the labels of namespaces not given as Namespace objects.
	NamespaceLabels map[string]string
}

// Finding is one violation on one object.
type Finding struct {
	// Manifest is the object as reviewed (defaulted, namespace filled in), at its place in
	// its file.
	Manifest sluiceadmission.Manifest
	// Object is kind namespace/name ("Rollout shop/checkout").
	Object string
	sluiceadmission.Violation
}

// DecodePolicy names the findings on Sluice objects that do not decode into their type (the
// API server refuses them, so they count as denied).
const DecodePolicy = "schema"

// Review reviews every manifest as the webhook would on create and returns the findings,
// sorted by file, index, policy and field.
func Review(ctx context.Context, engine sluiceadmission.Engine, ms []sluiceadmission.Manifest, opts Options) []Finding {
	reviewed := make([]sluiceadmission.Manifest, len(ms))
	decodeErrs := make([]error, len(ms))
	for i, m := range ms {
		obj, err := defaulted(ctx, m.Object)
		if err != nil {
			obj, decodeErrs[i] = shallowCopy(m.Object), err
		}
		reviewed[i] = sluiceadmission.Manifest{File: m.File, Index: m.Index, Object: obj}
	}
	// Inputs also fills in missing namespaces, so names in findings are the cluster's.
	inputs := sluiceadmission.Inputs(reviewed, cmp.Or(opts.Namespace, "default"), opts.NamespaceLabels)
	var out []Finding
	for i, in := range inputs {
		m := reviewed[i]
		if decodeErrs[i] != nil {
			// The API server refuses the object before any webhook: no policy runs on it.
			out = append(out, Finding{Manifest: m, Object: m.Name(), Violation: sluiceadmission.Violation{
				Policy: DecodePolicy, Mode: sluiceadmission.Deny, Message: decodeErrs[i].Error()}})
			continue
		}
		for _, v := range engine.Review(ctx, in).Violations {
			out = append(out, Finding{Manifest: m, Object: m.Name(), Violation: v})
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Manifest.File, b.Manifest.File), cmp.Compare(a.Manifest.Index, b.Manifest.Index),
			cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Field, b.Field),
			// List items share an index; the message orders findings on the same field.
			cmp.Compare(a.Object, b.Object), cmp.Compare(a.Message, b.Message))
	})
	return out
}

// defaulted returns the object as the policy webhook sees it: a Sluice object decoded into its
// type, through the webhook's defaulter and back to JSON; any other object as it is (a copy:
// Inputs writes the namespace into it).
func defaulted(ctx context.Context, obj map[string]any) (map[string]any, error) {
	if obj["apiVersion"] != meshv1alpha1.GroupVersion.String() {
		return shallowCopy(obj), nil
	}
	switch obj["kind"] {
	case "Rollout":
		return viaType(ctx, obj, &meshv1alpha1.Rollout{}, webhooks.RolloutDefaulter{})
	case "HealthGate":
		return viaType(ctx, obj, &meshv1alpha1.HealthGate{}, webhooks.HealthGateDefaulter{})
	case "MeshPolicy":
		return viaType(ctx, obj, &meshv1alpha1.MeshPolicy{}, webhooks.MeshPolicyDefaulter{})
	}
	return shallowCopy(obj), nil
}

// viaType decodes obj into typed, defaults it with d and encodes it back.
func viaType[T runtime.Object](ctx context.Context, obj map[string]any, typed T, d admission.Defaulter[T]) (map[string]any, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, typed); err != nil {
		return nil, fmt.Errorf("does not decode as %s: %w", obj["kind"], err)
	}
	if p, ok := any(typed).(*meshv1alpha1.MeshPolicy); ok {
		crdDefaults(p)
	}
	if err := d.Default(ctx, typed); err != nil {
		return nil, fmt.Errorf("defaulting: %w", err)
	}
	if data, err = json.Marshal(typed); err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	// The API server drops the status of a created object before validating admission; the
	// typed form would carry an empty one.
	delete(out, "status")
	return out, nil
}

// crdDefaults applies the defaults the API server takes from the CRD's schema before any
// webhook (+kubebuilder:default markers); MeshPolicy's target kind is the only one in spec.
func crdDefaults(p *meshv1alpha1.MeshPolicy) {
	for i := range p.Spec.TargetRefs {
		p.Spec.TargetRefs[i].Kind = cmp.Or(p.Spec.TargetRefs[i].Kind, "Service")
	}
}

// shallowCopy copies the object and its metadata, the only part Inputs writes.
func shallowCopy(obj map[string]any) map[string]any {
	out := maps.Clone(obj)
	if md, ok := obj["metadata"].(map[string]any); ok {
		out["metadata"] = maps.Clone(md)
	}
	return out
}
