package linkerd

import meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"

// balancerGaps: Linkerd's balancer is always power of two choices weighted by an EWMA of
// latency and in-flight requests, which is what LeastRequest asks for; nothing is written,
// and any other algorithm is a gap.
func balancerGaps(spec *meshv1alpha1.MeshPolicySpec, g *gaps) {
	lb := spec.LoadBalancer
	if lb == nil || lb.Algorithm == meshv1alpha1.LoadBalancerLeastRequest {
		return
	}
	g.add("loadBalancer.algorithm", "Linkerd always balances by latency and load (power of two choices); "+
		string(lb.Algorithm)+" is not available")
}
