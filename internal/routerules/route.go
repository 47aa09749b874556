package routerules

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// RouteGVK is what unstructured reads and writes of HTTPRoutes carry.
var RouteGVK = schema.GroupVersionKind{Group: gwv1.GroupName, Version: "v1", Kind: "HTTPRoute"}

// Route is an HTTPRoute as the API server stores it: typed for reading, and its rules as the
// server's JSON for writing back.
type Route struct {
	Obj   *unstructured.Unstructured
	Typed gwv1.HTTPRoute
	// Rules is spec.rules as read (nil when the route has none).
	Rules []any
}

// Get reads the route uncached or from the reader's cache, as c does; found is false when it
// does not exist.
func Get(ctx context.Context, c client.Reader, namespace, name string) (rt *Route, found bool, err error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(RouteGVK)
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, u); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("reading HTTPRoute %s/%s: %w", namespace, name, err)
	}
	rt, err = FromUnstructured(u)
	return rt, true, err
}

// FromUnstructured decodes a route read as unstructured.
func FromUnstructured(u *unstructured.Unstructured) (*Route, error) {
	rt := &Route{Obj: u}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &rt.Typed); err != nil {
		return nil, fmt.Errorf("decoding HTTPRoute %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	rules, _, err := unstructured.NestedSlice(u.Object, "spec", "rules")
	if err != nil {
		return nil, fmt.Errorf("HTTPRoute %s/%s: spec.rules: %w", u.GetNamespace(), u.GetName(), err)
	}
	if len(rules) != len(rt.Typed.Spec.Rules) {
		return nil, fmt.Errorf("HTTPRoute %s/%s: spec.rules did not decode", u.GetNamespace(), u.GetName())
	}
	rt.Rules = rules
	return rt, nil
}

// Value turns a typed value into the generic JSON form of unstructured objects.
func Value(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(data, &out)
}

// Values turns each item into its generic JSON form.
func Values[T any](items []T) ([]any, error) {
	out := make([]any, 0, len(items))
	for _, it := range items {
		v, err := Value(it)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Same compares two values by their JSON (map keys are sorted by encoding/json, and int64 and
// float64 numbers print alike).
func Same(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// Decode reads generic JSON rules as typed rules, one for one.
func Decode(rules []any) ([]gwv1.HTTPRouteRule, error) {
	data, err := json.Marshal(rules)
	if err != nil {
		return nil, err
	}
	var typed []gwv1.HTTPRouteRule
	if err := json.Unmarshal(data, &typed); err != nil {
		return nil, fmt.Errorf("spec.rules: %w", err)
	}
	if len(typed) != len(rules) {
		return nil, fmt.Errorf("spec.rules did not decode")
	}
	return typed, nil
}

// LocalService is the name of the Service ref points at in namespace, else "".
func LocalService(namespace string, ref gwv1.BackendObjectReference) string {
	if ref.Group != nil && *ref.Group != "" {
		return ""
	}
	if ref.Kind != nil && *ref.Kind != "Service" {
		return ""
	}
	if ref.Namespace != nil && string(*ref.Namespace) != namespace {
		return ""
	}
	return string(ref.Name)
}
