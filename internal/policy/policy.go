// Package policy translates a MeshPolicy into the resources of one data plane. Each provider
// lives in its own sub-package behind the Provider interface; this package holds what they
// share: the input and output shapes, the support matrix, object naming and the check of a
// policy against a provider's matrix (used by the controller and the admission webhook alike).
package policy

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// FieldManager is the server-side apply field manager of what MeshPolicies write. It differs
// from the Rollout's ("sluice") so the two never take each other's fields.
const FieldManager = "sluice-meshpolicy"

// LabelPolicy marks every object generated for a MeshPolicy with the policy's name.
const LabelPolicy = "mesh.sluice.dev/meshpolicy"

// Provider translates MeshPolicies for one data plane.
type Provider interface {
	// Name is the spec.provider value.
	Name() meshv1alpha1.Provider
	// Kinds are the resources the provider writes; all must be served for the provider to be
	// usable, and the first one's presence is what provider auto detects.
	Kinds() []schema.GroupVersionKind
	// Matrix says, for every policy field, how well the provider expresses it.
	Matrix() Matrix
	// Translate returns what the provider needs for the policy. Fields the matrix marks
	// Unsupported are ignored (Check reports them); value-dependent gaps are returned in
	// Output.Unsupported.
	Translate(in Input) (Output, error)
}

// Input is a policy with what the cluster says about its targets.
type Input struct {
	Policy *meshv1alpha1.MeshPolicy
	// Services are the target Services, in spec.targetRefs order; all exist.
	Services []corev1.Service
	// Capabilities of the cluster that change what can be expressed.
	Capabilities Capabilities
	// Backends are, per target Service name, the Services a Rollout's route sends that
	// Service's traffic to instead (its slot Services and blue-green preview), sorted. A
	// provider whose settings attach to the destination host (a DestinationRule) writes them
	// for these hosts too, or a release would run its canary without them.
	Backends map[string][]string
	// Routed are the targets a GAMMA HTTPRoute routes (a parentRef of kind Service names them;
	// a Rollout's east-west route does). Istio turns such a route into the Service's
	// VirtualService, so its timeouts and retries belong in the route's rules.
	Routed map[string]bool
	// TargetPorts are, per target Service name and per name of its ports whose targetPort is
	// a name, the container port numbers its EndpointSlices resolve that name to (sorted, each
	// once: pods may differ). A port missing here is unresolved (no endpoint yet). Providers
	// that take pod ports by number only (Istio) use it.
	TargetPorts map[string]map[string][]int32
}

// Capabilities are facts about the installed APIs, found by discovery.
type Capabilities struct {
	// HTTPRouteRetry: the installed HTTPRoute has spec.rules[].retry (Gateway API's
	// experimental channel; the standard channel of v1.6 does not).
	HTTPRouteRetry bool
	// ConsulEnterprise: the cluster's Consul is Enterprise (rate limits, locality). Discovery
	// can't tell the edition; the manager's --consul-enterprise flag says so. Consul CE
	// refuses a whole config entry that carries an Enterprise field.
	ConsulEnterprise bool
}

// Output is what a provider wants in the cluster for one policy.
type Output struct {
	// Objects are created, owned (controller reference) and garbage-collected with the
	// policy. Each has apiVersion, kind, name and namespace set.
	Objects []*unstructured.Unstructured
	// Rules, when set, are written into every HTTPRoute rule that routes to a target (the
	// Service itself or, for a Rollout's apex Service, its slot Services).
	Rules *RuleSettings
	// ServiceAnnotations are written on every target Service (field manager FieldManager;
	// removed when no longer wanted).
	ServiceAnnotations map[string]string
	// Unsupported are gaps that depend on the values (the matrix covers the rest).
	Unsupported []meshv1alpha1.UnsupportedField
}

// RuleSettings are set on HTTPRoute rules that route to a target.
type RuleSettings struct {
	Timeouts *gwv1.HTTPRouteTimeouts `json:"timeouts,omitempty"`
	Retry    *gwv1.HTTPRouteRetry    `json:"retry,omitempty"`
	// Filters are ExtensionRef filters to objects in Output.Objects (Traefik Middlewares).
	Filters []gwv1.HTTPRouteFilter `json:"filters,omitempty"`
}

// Empty reports whether the settings set nothing.
func (r *RuleSettings) Empty() bool {
	return r == nil || (r.Timeouts == nil && r.Retry == nil && len(r.Filters) == 0)
}
