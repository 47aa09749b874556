package linkerd

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// inbound returns the objects the target pods' proxies enforce: Servers, then authentications,
// HTTPRoutes, AuthorizationPolicies and rate limits (what is referenced comes first).
func inbound(p *meshv1alpha1.MeshPolicy, svcs []corev1.Service, g *gaps) []*unstructured.Unstructured {
	spec := &p.Spec
	if spec.MTLS != nil && spec.MTLS.Mode == meshv1alpha1.MTLSDisabled {
		g.add("mtls.mode", "Linkerd always uses mTLS between meshed pods; only the config.linkerd.io/skip-inbound-ports pod annotation takes a port out of it (and out of the proxy), which a policy can't set")
	}
	access, ok := accessPolicy(spec)
	if !ok {
		return nil
	}
	srvs, problems := servers(p.Name, svcs)
	for _, f := range serverFields(spec) {
		for _, pr := range problems {
			g.add(f, pr)
		}
	}
	if len(srvs) == 0 {
		return nil
	}
	var out []*unstructured.Unstructured
	for _, s := range srvs {
		out = append(out, s.object(p.Namespace, access))
	}
	if spec.Authorization != nil {
		strict := spec.MTLS != nil && spec.MTLS.Mode == meshv1alpha1.MTLSStrict
		out = append(out, authorization(p, srvs, strict, g)...)
	}
	if rl := spec.RateLimit; rl != nil {
		if rl.GetBurst() != rl.RequestsPerSecond {
			g.add("rateLimit.burst", fmt.Sprintf("Linkerd's rate limit allows bursts of requestsPerSecond (%d), not %d", rl.RequestsPerSecond, rl.GetBurst()))
		}
		for _, s := range srvs {
			out = append(out, newObject(rateLimitGVK, p.Namespace, s.name, map[string]any{
				"targetRef": s.ref(),
				"total":     map[string]any{"requestsPerSecond": int64(rl.RequestsPerSecond)},
			}))
		}
	}
	return out
}

// accessPolicy is the Servers' policy for traffic no authorization allows, and whether Servers
// are needed at all. Authorization denies by default; otherwise mtls decides, and a rate limit
// alone keeps Linkerd's permissive default (a Server replaces the default inbound policy of
// its port).
func accessPolicy(spec *meshv1alpha1.MeshPolicySpec) (string, bool) {
	mode := meshv1alpha1.MTLSMode("")
	if spec.MTLS != nil {
		mode = spec.MTLS.Mode
	}
	switch {
	case spec.Authorization != nil:
		return accessDeny, true
	case mode == meshv1alpha1.MTLSStrict:
		return accessAuthenticated, true
	case mode == meshv1alpha1.MTLSPermissive, spec.RateLimit != nil:
		return accessUnauthenticated, true
	default:
		return "", false
	}
}

// serverFields are the set fields that need a Server, where a Service without one is a gap.
func serverFields(spec *meshv1alpha1.MeshPolicySpec) []string {
	var out []string
	if m := spec.MTLS; m != nil && m.Mode != meshv1alpha1.MTLSDisabled {
		out = append(out, "mtls.mode")
	}
	if spec.Authorization != nil {
		out = append(out, "authorization.rules")
	}
	if spec.RateLimit != nil {
		out = append(out, "rateLimit.requestsPerSecond")
	}
	return out
}
