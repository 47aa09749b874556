// Package consul translates MeshPolicies into Consul service mesh config entries, as the
// custom resources of consul-k8s (consul.hashicorp.com/v1alpha1).
//
// Consul keys its config entries by the Consul service name, and Consul on Kubernetes names a
// service after its Kubernetes Service. So every object is named exactly after a target
// Service, not after the policy: one ServiceDefaults, ServiceIntentions, ServiceResolver and
// ServiceRouter per Service at most, which two policies can never share. The translation
// assumes Consul CE, where every Kubernetes namespace maps to the one Consul namespace; it
// never writes Consul namespace fields, which the consul-k8s webhook refuses on CE.
package consul

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// group and version of the consul-k8s config-entry CRDs.
var gv = schema.GroupVersion{Group: "consul.hashicorp.com", Version: "v1alpha1"}

// The kinds the provider writes, in output order: ServiceDefaults first, because it sets the
// protocol that Consul checks intentions' L7 permissions and routers against.
var (
	kindServiceDefaults   = gv.WithKind("ServiceDefaults")
	kindServiceIntentions = gv.WithKind("ServiceIntentions")
	kindServiceResolver   = gv.WithKind("ServiceResolver")
	kindServiceRouter     = gv.WithKind("ServiceRouter")
)

// Provider translates MeshPolicies for Consul.
type Provider struct{}

// New returns the Consul provider.
func New() policy.Provider { return Provider{} }

// Name is the spec.provider value.
func (Provider) Name() meshv1alpha1.Provider { return meshv1alpha1.ProviderConsul }

// Kinds are the config-entry CRDs the provider writes; ServiceDefaults is the one provider
// auto looks for.
func (Provider) Kinds() []schema.GroupVersionKind {
	return []schema.GroupVersionKind{kindServiceDefaults, kindServiceIntentions, kindServiceResolver, kindServiceRouter}
}

// Translate returns the config entries for the policy: per kind, one object per target
// Service that needs it, in targetRefs order.
func (Provider) Translate(in policy.Input) (policy.Output, error) {
	if in.Policy == nil {
		return policy.Output{}, errors.New("consul: input has no policy")
	}
	spec := &in.Policy.Spec
	var out policy.Output
	if !in.Capabilities.ConsulEnterprise {
		// Consul CE would refuse the whole ServiceDefaults or ServiceResolver (mTLS mode,
		// protocol and load balancing with it): leave the Enterprise fields out and say so.
		spec = spec.DeepCopy()
		out.Unsupported = append(out.Unsupported, enterpriseGaps(spec)...)
		spec.RateLimit, spec.Locality = nil, nil
	}

	callers := anyCaller(spec.Authorization)
	mtlsMode, mtlsGaps := mutualTLSMode(spec)
	out.Unsupported = append(out.Unsupported, mtlsGaps...)
	targets, gaps := usableServices(in.Services, needsHTTP(spec, callers))
	out.Unsupported = append(out.Unsupported, gaps...)

	ns := in.Policy.Namespace
	var defaults, ixns, resolvers, routers []*unstructured.Unstructured
	for _, t := range targets {
		if s := serviceDefaultsSpec(spec, t, mtlsMode); s != nil {
			defaults = append(defaults, object(kindServiceDefaults, ns, t.name, s))
		}
		if callers != nil {
			ixns = append(ixns, object(kindServiceIntentions, ns, t.name, intentionsSpec(t.name, callers)))
		}
		if s := resolverSpec(spec); s != nil {
			resolvers = append(resolvers, object(kindServiceResolver, ns, t.name, s))
		}
		if s := routerSpec(spec); s != nil {
			routers = append(routers, object(kindServiceRouter, ns, t.name, s))
		}
	}
	for _, group := range [][]*unstructured.Unstructured{defaults, ixns, resolvers, routers} {
		out.Objects = append(out.Objects, group...)
	}
	return out, nil
}

// enterpriseGaps are the fields only Consul Enterprise takes, for a cluster not declared
// Enterprise.
func enterpriseGaps(spec *meshv1alpha1.MeshPolicySpec) []meshv1alpha1.UnsupportedField {
	const ce = "Consul CE has no %s and would refuse the whole %s; on Consul Enterprise, run the Sluice manager with --consul-enterprise"
	var out []meshv1alpha1.UnsupportedField
	if spec.RateLimit != nil {
		out = append(out, meshv1alpha1.UnsupportedField{Field: "rateLimit.requestsPerSecond", Reason: fmt.Sprintf(ce, "rate limits", "ServiceDefaults")})
		if spec.RateLimit.Burst != nil {
			out = append(out, meshv1alpha1.UnsupportedField{Field: "rateLimit.burst", Reason: fmt.Sprintf(ce, "rate limits", "ServiceDefaults")})
		}
	}
	if spec.Locality != nil && spec.Locality.PreferClose {
		out = append(out, meshv1alpha1.UnsupportedField{Field: "locality.preferClose", Reason: fmt.Sprintf(ce, "locality-aware routing", "ServiceResolver")})
	}
	return out
}
