// Package linkerd translates MeshPolicies into Linkerd resources (Linkerd 2.17 and later):
//
//   - inbound (the Service's pods): a policy.linkerd.io Server per target port, whose
//     accessPolicy carries mtls.mode; AuthorizationPolicies with MeshTLSAuthentication or
//     NetworkAuthentication for authorization; policy.linkerd.io HTTPRoutes attached to the
//     Servers when rules name methods or paths; an HTTPLocalRateLimitPolicy per Server.
//   - outbound (meshed callers): annotations on the target Services for timeouts, retries,
//     failure accrual (circuit breaking) and topology-aware routing.
package linkerd

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime/schema"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// policyGroup is the API group of every kind the provider writes.
const policyGroup = "policy.linkerd.io"

// The kinds the provider writes, each at its storage version in the Linkerd CRDs.
var (
	serverGVK       = schema.GroupVersionKind{Group: policyGroup, Version: "v1beta3", Kind: "Server"}
	authzPolicyGVK  = schema.GroupVersionKind{Group: policyGroup, Version: "v1alpha1", Kind: "AuthorizationPolicy"}
	meshTLSAuthnGVK = schema.GroupVersionKind{Group: policyGroup, Version: "v1alpha1", Kind: "MeshTLSAuthentication"}
	networkAuthnGVK = schema.GroupVersionKind{Group: policyGroup, Version: "v1alpha1", Kind: "NetworkAuthentication"}
	rateLimitGVK    = schema.GroupVersionKind{Group: policyGroup, Version: "v1alpha1", Kind: "HTTPLocalRateLimitPolicy"}
	httpRouteGVK    = schema.GroupVersionKind{Group: policyGroup, Version: "v1beta3", Kind: "HTTPRoute"}
)

type provider struct{}

// New returns the Linkerd provider.
func New() policy.Provider { return provider{} }

func (provider) Name() meshv1alpha1.Provider { return meshv1alpha1.ProviderLinkerd }

// Kinds: Server first, the kind provider auto looks for.
func (provider) Kinds() []schema.GroupVersionKind {
	return []schema.GroupVersionKind{serverGVK, authzPolicyGVK, meshTLSAuthnGVK, networkAuthnGVK, rateLimitGVK, httpRouteGVK}
}

func (provider) Matrix() policy.Matrix { return matrix() }

// Translate returns the inbound objects (see inbound.go) and the Service annotations (see
// annotations.go). It reads nothing but its input.
func (provider) Translate(in policy.Input) (policy.Output, error) {
	if in.Policy == nil {
		return policy.Output{}, errors.New("linkerd: no MeshPolicy to translate")
	}
	g := &gaps{}
	balancerGaps(&in.Policy.Spec, g)
	out := policy.Output{
		Objects:            inbound(in.Policy, in.Services, g),
		ServiceAnnotations: serviceAnnotations(&in.Policy.Spec, g),
	}
	out.Unsupported = g.list()
	if err := uniqueNames(out); err != nil {
		return policy.Output{}, err
	}
	return out, nil
}

// uniqueNames guards the one clash the naming can produce: a Server is named after its Service
// and port (<policy>-<service>-<port>), a route after its group (<policy>-paths-<n>), and both
// name an AuthorizationPolicy; a Service named "paths" with an unnamed port could collide.
func uniqueNames(out policy.Output) error {
	seen := map[string]bool{}
	for _, o := range out.Objects {
		k := o.GetKind() + "/" + o.GetName()
		if seen[k] {
			return fmt.Errorf("linkerd: two generated %ss are named %s; rename the target Service or name its port", o.GetKind(), o.GetName())
		}
		seen[k] = true
	}
	return nil
}
