package linkerd

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// newObject is a namespaced object with a spec; the controller adds owner and labels.
func newObject(gvk schema.GroupVersionKind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// authorizationPolicy allows the clients authn describes to reach target.
func authorizationPolicy(ns, name string, target, authn map[string]any) *unstructured.Unstructured {
	return newObject(authzPolicyGVK, ns, name, map[string]any{
		"targetRef":                  target,
		"requiredAuthenticationRefs": []any{authn},
	})
}
