package istio

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// virtualServiceSpec is one catch-all HTTP route from the Service's host back to it, carrying
// the timeout and retries. The destination names no port: for a single-port Service Istio
// picks that port, for a multi-port one each port's traffic stays on the port it came to, so
// one route covers every HTTP port. Hosts are short names, resolved like the
// DestinationRule's (see destinationRuleSpec).
func virtualServiceSpec(svc *corev1.Service, settings map[string]any) map[string]any {
	route := runtime.DeepCopyJSON(settings)
	route["route"] = []any{map[string]any{"destination": map[string]any{"host": svc.Name}}}
	return map[string]any{
		"hosts": []any{svc.Name},
		"http":  []any{route},
	}
}

// httpRoute is the timeout and retry settings of the route; nil when the spec sets neither.
func httpRoute(spec *meshv1alpha1.MeshPolicySpec, g *gaps) map[string]any {
	route := map[string]any{}
	// The route timeout bounds the whole request, retries included, as the API means.
	if t := spec.Timeouts; t != nil && t.Request != nil {
		if d, ok := g.duration("timeouts.request", t.Request.Duration); ok {
			route["timeout"] = d
		}
	}
	if r := spec.Retries; r != nil {
		// The API's retryOn values are Envoy's x-envoy-retry-on names, which Istio passes on.
		retries := map[string]any{
			"attempts": int64(r.Attempts),
			"retryOn":  strings.Join(stringsOf(r.GetRetryOn()), ","),
		}
		if r.PerTryTimeout != nil {
			if d, ok := g.duration("retries.perTryTimeout", r.PerTryTimeout.Duration); ok {
				retries["perTryTimeout"] = d
			}
		}
		route["retries"] = retries
	}
	if len(route) == 0 {
		return nil
	}
	return route
}

func stringsOf[T ~string](values []T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}
