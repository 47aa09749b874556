// Package traefik translates a MeshPolicy into Traefik Middlewares (traefik.io/v1alpha1) that
// HTTPRoute rules reference through ExtensionRef filters, which Traefik's Kubernetes Gateway
// provider turns into the router's middleware chain. One set of Middlewares per policy serves
// every target: the controller writes Output.Rules.Filters into each HTTPRoute rule routing
// to one.
package traefik

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// Traefik's Middleware resource.
const (
	group      = "traefik.io"
	version    = "v1alpha1"
	kindMiddle = "Middleware"
)

// Provider is the traefik policy provider.
type Provider struct{}

// New returns the traefik provider.
func New() policy.Provider { return Provider{} }

// Name is the spec.provider value.
func (Provider) Name() meshv1alpha1.Provider { return meshv1alpha1.ProviderTraefik }

// Kinds: the Middlewares it writes, and the HTTPRoutes whose filters reference them (without
// HTTPRoute the Middlewares would apply to nothing).
func (Provider) Kinds() []schema.GroupVersionKind {
	return []schema.GroupVersionKind{
		{Group: group, Version: version, Kind: kindMiddle},
		{Group: gwv1.GroupName, Version: "v1", Kind: "HTTPRoute"},
	}
}

// Translate builds the policy's Middlewares and the filters that chain them, outermost first:
// rate limit, in-flight limit, circuit breaker, retry. So a client request takes one rate
// token and one in-flight slot however often it is retried (and a request refused with 429
// never reaches the breaker's error ratio), and the breaker judges the outcome after retries
// and, when open, answers at once instead of being retried.
func (Provider) Translate(in policy.Input) (policy.Output, error) {
	if in.Policy == nil {
		return policy.Output{}, errors.New("traefik: no policy to translate")
	}
	spec := &in.Policy.Spec
	c := chain{namespace: in.Policy.Namespace, policy: in.Policy.Name}
	gaps := append(mtlsGaps(spec), loadBalancerGaps(spec)...)

	if rl := spec.RateLimit; rl != nil {
		c.add("ratelimit", "rateLimit", rateLimitSpec(rl))
	}
	if cb := spec.CircuitBreaker; cb != nil && cb.MaxRequests != nil {
		c.add("inflight", "inFlightReq", inFlightSpec(*cb.MaxRequests))
	}
	if cb := spec.CircuitBreaker; cb != nil && cb.OutlierDetection != nil {
		s, err := circuitBreakerSpec(cb.OutlierDetection)
		if err != nil {
			return policy.Output{}, err
		}
		c.add("circuitbreaker", "circuitBreaker", s)
	}
	if r := spec.Retries; r != nil {
		s, retryGaps := retrySpec(r)
		gaps = append(gaps, retryGaps...)
		if s != nil {
			c.add("retry", "retry", s)
		}
	}

	out := policy.Output{Objects: c.objects, Unsupported: policy.Merge(nil, gaps...)}
	if len(c.filters) > 0 {
		out.Rules = &policy.RuleSettings{Filters: c.filters}
	}
	return out, nil
}

// chain collects the Middlewares in filter order.
type chain struct {
	namespace, policy string
	objects           []*unstructured.Unstructured
	filters           []gwv1.HTTPRouteFilter
}

// add appends a Middleware "<policy>-<purpose>" whose spec has one key (Traefik refuses a
// Middleware of two types) and the ExtensionRef filter that references it.
func (c *chain) add(purpose, key string, spec map[string]any) {
	name := policy.ObjectName(c.policy, purpose)
	c.objects = append(c.objects, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/" + version,
		"kind":       kindMiddle,
		"metadata":   map[string]any{"name": name, "namespace": c.namespace},
		"spec":       map[string]any{key: spec},
	}})
	c.filters = append(c.filters, gwv1.HTTPRouteFilter{
		Type:         gwv1.HTTPRouteFilterExtensionRef,
		ExtensionRef: &gwv1.LocalObjectReference{Group: group, Kind: kindMiddle, Name: gwv1.ObjectName(name)},
	})
}

// mtlsGaps: Traefik has no mutual TLS between workloads, so only Disabled (nothing to write) holds.
func mtlsGaps(spec *meshv1alpha1.MeshPolicySpec) []meshv1alpha1.UnsupportedField {
	if spec.MTLS == nil || spec.MTLS.Mode == meshv1alpha1.MTLSDisabled {
		return nil
	}
	return []meshv1alpha1.UnsupportedField{{
		Field:  "mtls.mode",
		Reason: fmt.Sprintf("mode %s needs mutual TLS between workloads, which Traefik (a proxy, not a mesh) does not provide; only Disabled can be expressed", spec.MTLS.Mode),
	}}
}

// loadBalancerGaps: the Gateway provider always balances with weighted round robin.
func loadBalancerGaps(spec *meshv1alpha1.MeshPolicySpec) []meshv1alpha1.UnsupportedField {
	lb := spec.LoadBalancer
	if lb == nil || lb.Algorithm == meshv1alpha1.LoadBalancerRoundRobin {
		return nil
	}
	return []meshv1alpha1.UnsupportedField{{
		Field:  "loadBalancer.algorithm",
		Reason: fmt.Sprintf("%s cannot be set: Traefik's Gateway API provider always balances a Service's endpoints with weighted round robin", lb.Algorithm),
	}}
}
