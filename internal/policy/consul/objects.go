package consul

import (
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// object is a config entry named after the Consul service (= the Kubernetes Service), in the
// policy's namespace. Values in spec are JSON-shaped (map[string]any, []any, string, int64,
// bool) so the object deep-copies and serializes like one read from the API server.
func object(gvk schema.GroupVersionKind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

// duration renders d as consul-k8s reads its duration fields (metav1.Duration, parsed by
// time.ParseDuration): "5s", "1m30s", "250ms".
func duration(d time.Duration) string {
	return d.String()
}
