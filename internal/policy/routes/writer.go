package routes

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// Sync makes every HTTPRoute of the edit's namespace carry the edit's settings where its rules
// reach a target, and no longer carry them elsewhere. It returns the names of the routes that
// carry them. Routes are listed typed, which a manager's client serves from its cache; only a
// route that needs a change is read from the API server as it is stored (every byte of it is
// kept) and patched. Without the HTTPRoute API installed there is nothing to take out, and
// settings to write are an error.
func Sync(ctx context.Context, c client.Client, e Edit) ([]string, error) {
	list := &gwv1.HTTPRouteList{}
	if err := c.List(ctx, list, client.InNamespace(e.Namespace)); err != nil {
		if meta.IsNoMatchError(err) {
			if e.Settings.Empty() {
				return nil, nil
			}
			return nil, fmt.Errorf("the HTTPRoute API (gateway.networking.k8s.io/v1) is not installed: %w", err)
		}
		return nil, fmt.Errorf("listing HTTPRoutes in %s: %w", e.Namespace, err)
	}
	var carrying []string
	for i := range list.Items {
		rt := &list.Items[i]
		carries, changed, err := planTyped(e, rt)
		if err != nil {
			return nil, fmt.Errorf("HTTPRoute %s/%s: %w", rt.Namespace, rt.Name, err)
		}
		if changed {
			if carries, err = syncStored(ctx, c, e, rt.Namespace, rt.Name); err != nil {
				return nil, fmt.Errorf("HTTPRoute %s/%s: %w", rt.Namespace, rt.Name, err)
			}
		}
		if carries {
			carrying = append(carrying, rt.Name)
		}
	}
	return carrying, nil
}

// planTyped plans on the typed route: whether it carries the settings afterwards and whether
// it needs a write at all.
func planTyped(e Edit, rt *gwv1.HTTPRoute) (carries, changed bool, err error) {
	raw, err := jsonList(rt.Spec.Rules)
	if err != nil {
		return false, false, err
	}
	marked := Marked(rt.Annotations)
	rules, carries, err := Plan(e, rt.Spec.Rules, raw, slices.Contains(marked, e.Policy))
	if err != nil {
		return false, false, err
	}
	mark := Mark(marked, e.Policy, carries)
	return carries, !jsonEqual(rules, raw) || mark != rt.Annotations[meshv1alpha1.MeshPolicyRouteAnnotation], nil
}

// syncStored reads the route as stored and writes the edit into it.
func syncStored(ctx context.Context, c client.Client, e Edit, ns, name string) (bool, error) {
	rt := &unstructured.Unstructured{}
	rt.SetGroupVersionKind(routeGVK)
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, rt); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return syncRoute(ctx, c, e, rt)
}

var routeGVK = schema.GroupVersionKind{Group: gwv1.GroupName, Version: "v1", Kind: "HTTPRoute"}

func syncRoute(ctx context.Context, c client.Client, e Edit, rt *unstructured.Unstructured) (bool, error) {
	var typed gwv1.HTTPRoute
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(rt.Object, &typed); err != nil {
		return false, fmt.Errorf("decoding: %w", err)
	}
	raw, _, err := unstructured.NestedSlice(rt.Object, "spec", "rules")
	if err != nil {
		return false, err
	}
	marked := Marked(rt.GetAnnotations())
	ours := slices.Contains(marked, e.Policy)
	rules, carries, err := Plan(e, typed.Spec.Rules, raw, ours)
	if err != nil {
		return false, err
	}
	mark := Mark(marked, e.Policy, carries)
	if jsonEqual(rules, raw) && mark == rt.GetAnnotations()[meshv1alpha1.MeshPolicyRouteAnnotation] {
		return carries, nil
	}
	var annotation any = mark
	if mark == "" {
		annotation = nil // merge patch: remove the key
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{
			"resourceVersion": rt.GetResourceVersion(),
			"annotations":     map[string]any{meshv1alpha1.MeshPolicyRouteAnnotation: annotation},
		},
		"spec": map[string]any{"rules": rules},
	})
	if err != nil {
		return false, err
	}
	if err := c.Patch(ctx, rt, client.RawPatch(types.MergePatchType, patch), client.FieldOwner(policy.FieldManager)); err != nil {
		return false, fmt.Errorf("writing rule settings: %w", err)
	}
	return carries, nil
}

// Routed returns the targets a GAMMA HTTPRoute of the namespace routes: a parentRef of kind
// Service (core group, same namespace) names them. Without the HTTPRoute API, none.
func Routed(ctx context.Context, c client.Reader, namespace string, targets []string) (map[string]bool, error) {
	list := &gwv1.HTTPRouteList{}
	if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		if meta.IsNoMatchError(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("listing HTTPRoutes in %s: %w", namespace, err)
	}
	want := map[string]bool{}
	for _, t := range targets {
		want[t] = true
	}
	out := map[string]bool{}
	for i := range list.Items {
		for _, ref := range list.Items[i].Spec.ParentRefs {
			if ref.Kind == nil || *ref.Kind != "Service" || (ref.Group != nil && *ref.Group != "") {
				continue
			}
			if ref.Namespace != nil && string(*ref.Namespace) != namespace {
				continue
			}
			if want[string(ref.Name)] {
				out[string(ref.Name)] = true
			}
		}
	}
	return out, nil
}
