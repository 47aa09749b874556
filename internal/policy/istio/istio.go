// Package istio translates MeshPolicies into Istio resources: a DestinationRule (connection
// pool, outlier detection, load balancing, locality), a PeerAuthentication (mTLS), an
// AuthorizationPolicy (default deny, rules allow) and a VirtualService (timeouts, retries) per
// target Service. It assumes sidecar mode: pod selectors, and routes for mesh (sidecar) callers.
package istio

import (
	"errors"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/gatewayapi"
)

// The kinds the provider writes, all at the v1 API (served since Istio 1.22).
var (
	destinationRuleGVK    = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "DestinationRule"}
	peerAuthenticationGVK = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "PeerAuthentication"}
	authorizationGVK      = schema.GroupVersionKind{Group: "security.istio.io", Version: "v1", Kind: "AuthorizationPolicy"}
	virtualServiceGVK     = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}
)

type provider struct{}

// New returns the Istio provider.
func New() policy.Provider { return provider{} }

func (provider) Name() meshv1alpha1.Provider { return meshv1alpha1.ProviderIstio }

// Kinds: DestinationRule first, the kind provider auto looks for.
func (provider) Kinds() []schema.GroupVersionKind {
	return []schema.GroupVersionKind{destinationRuleGVK, peerAuthenticationGVK, authorizationGVK, virtualServiceGVK}
}

func (provider) Matrix() policy.Matrix { return matrix() }

// Translate builds the per-Service objects, grouped by kind in Kinds order, each group in
// target order.
func (provider) Translate(in policy.Input) (policy.Output, error) {
	if in.Policy == nil {
		return policy.Output{}, errors.New("istio: input has no policy")
	}
	spec := &in.Policy.Spec
	g := &gaps{}
	traffic := trafficPolicy(spec, g)
	route := httpRoute(spec, g)
	mode := mtlsMode(spec, g)
	identityGaps(spec, g)

	var drs, pas, aps, vss []*unstructured.Unstructured
	for i := range in.Services {
		svc := &in.Services[i]
		name := policy.ObjectName(in.Policy.Name, svc.Name)
		obj := func(gvk schema.GroupVersionKind, body map[string]any) *unstructured.Unstructured {
			return object(gvk, in.Policy.Namespace, name, body)
		}
		if traffic != nil {
			drs = append(drs, obj(destinationRuleGVK, destinationRuleSpec(svc.Name, traffic)))
			// A Rollout's route sends the Service's traffic to its slot hosts: the same
			// traffic policy must hold there, each host having its own DestinationRule.
			for _, host := range in.Backends[svc.Name] {
				drs = append(drs, object(destinationRuleGVK, in.Policy.Namespace, policy.ObjectName(in.Policy.Name, host), destinationRuleSpec(host, traffic)))
			}
		}
		if route != nil && !in.Routed[svc.Name] {
			vss = append(vss, obj(virtualServiceGVK, virtualServiceSpec(svc, route)))
		}
		// PeerAuthentication and AuthorizationPolicy select pods: without a Service
		// selector there is nothing to select, and an empty selector would cover the
		// whole namespace.
		ports := targetPorts(svc, in.TargetPorts[svc.Name])
		if mode != "" {
			if sel, ok := podSelector(svc, "mtls.mode", "PeerAuthentication", g); ok {
				if pa := peerAuthenticationSpec(sel, mode, ports); pa != nil {
					pas = append(pas, obj(peerAuthenticationGVK, pa))
				}
				if mode != mtlsModes[meshv1alpha1.MTLSStrict] {
					g.named("mtls.mode", ports.named)
				}
			}
		}
		if spec.Authorization != nil {
			if sel, ok := podSelector(svc, "authorization.rules", "AuthorizationPolicy", g); ok {
				aps = append(aps, obj(authorizationGVK, authorizationPolicySpec(sel, authorizationRules(spec, ports.numbers))))
				if len(spec.Authorization.Rules) > 0 {
					g.named("authorization.rules", ports.named)
				}
			}
		}
	}
	out := policy.Output{Unsupported: g.list()}
	if routed(in) {
		// Istio makes a GAMMA HTTPRoute the Service's VirtualService, and a second one for the
		// host would not be merged with it: the route's rules carry timeouts and retries.
		rules, gaps := gatewayapi.RouteSettings(spec, in.Capabilities)
		out.Rules = rules
		out.Unsupported = policy.Merge(out.Unsupported, gaps...)
	}
	for _, group := range [][]*unstructured.Unstructured{drs, pas, aps, vss} {
		out.Objects = append(out.Objects, group...)
	}
	return out, nil
}

// routed reports whether a GAMMA HTTPRoute routes one of the targets.
func routed(in policy.Input) bool {
	for i := range in.Services {
		if in.Routed[in.Services[i].Name] {
			return true
		}
	}
	return false
}

// object is a generated resource without labels or owners (the controller adds them).
func object(gvk schema.GroupVersionKind, namespace, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}
