package istio

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// tcase is one realistic policy with its target Services, in namespace ns.
type tcase struct {
	name string
	in   policy.Input
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// cases are shared by the golden test and the envtest apply test; ns is the namespace of the
// policy and its Services.
func cases(ns string) []tcase {
	input := func(name string, spec meshv1alpha1.MeshPolicySpec, svcs ...corev1.Service) policy.Input {
		return policy.Input{Policy: policytest.Policy(ns, name, spec), Services: svcs}
	}

	// web: two ports, the first with a named targetPort, the second with a numbered one.
	web := policytest.Service(ns, "web", 80, 9090)
	web.Spec.Ports[0].TargetPort = intstr.FromString("http")
	web.Spec.Ports[1].TargetPort = intstr.FromInt32(9091)
	// legacy: endpoints managed by hand, no selector.
	legacy := policytest.Service(ns, "legacy", 8080)
	legacy.Spec.Selector = nil

	return []tcase{
		{name: "minimal", in: input("payments", meshv1alpha1.MeshPolicySpec{
			TargetRefs: policytest.Targets("payments"),
			MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
		}, policytest.Service(ns, "payments", 8080))},

		// Every field the provider translates, on one Service.
		{name: "everything", in: input("payments", meshv1alpha1.MeshPolicySpec{
			TargetRefs: policytest.Targets("payments"),
			Provider:   meshv1alpha1.ProviderIstio,
			MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
			Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{
					From: []meshv1alpha1.AuthorizationSource{{ServiceAccount: "shop/checkout"}, {Namespace: "billing"}, {ServiceAccount: "ops/cron.reporter"}},
					To:   []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET", "POST"}, Paths: []string{"/api/*"}}, {Methods: []meshv1alpha1.HTTPMethod{"DELETE"}}},
				},
				// Anyone may read the health endpoint.
				{To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/healthz"}}}},
				// The namespace "monitoring" may do anything.
				{From: []meshv1alpha1.AuthorizationSource{{Namespace: "monitoring"}}},
			}},
			Timeouts: &meshv1alpha1.Timeouts{Request: dur(5 * time.Second), Idle: dur(90 * time.Second)},
			Retries: &meshv1alpha1.Retries{Attempts: 3, PerTryTimeout: dur(1500 * time.Millisecond),
				RetryOn: []meshv1alpha1.RetryOn{"5xx", "reset", "connect-failure", "refused-stream"}},
			CircuitBreaker: &meshv1alpha1.CircuitBreaker{
				MaxConnections: ptr.To[int32](100), MaxPendingRequests: ptr.To[int32](50), MaxRequests: ptr.To[int32](200),
				OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 5, Interval: dur(5 * time.Second),
					BaseEjectionTime: dur(time.Minute), MaxEjectionPercent: ptr.To[int32](20)},
			},
			LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerLeastRequest},
			Locality:     &meshv1alpha1.Locality{PreferClose: true},
		}, policytest.Service(ns, "payments", 8080))},

		// The unsupported rate limit next to fields left to the API's defaults (retryOn,
		// outlier interval, ejection time and percent).
		{name: "rate-limit-and-defaults", in: input("checkout", meshv1alpha1.MeshPolicySpec{
			TargetRefs:     policytest.Targets("checkout"),
			RateLimit:      &meshv1alpha1.RateLimit{RequestsPerSecond: 100, Burst: ptr.To[int32](200)},
			Retries:        &meshv1alpha1.Retries{Attempts: 2},
			CircuitBreaker: &meshv1alpha1.CircuitBreaker{OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 3}},
			LoadBalancer:   &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerRandom},
		}, policytest.Service(ns, "checkout", 8080))},

		// Several targets, one with two ports: one object of each kind per Service. Web's
		// named targetPort gets neither the PERMISSIVE mode nor the rules, which Istio would
		// have to set for the whole pods.
		{name: "multi-target", in: input("storefront", meshv1alpha1.MeshPolicySpec{
			TargetRefs:    policytest.Targets("web", "api"),
			MTLS:          &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive},
			Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{From: []meshv1alpha1.AuthorizationSource{{Namespace: "shop"}}}}},
			Timeouts:      &meshv1alpha1.Timeouts{Request: dur(30 * time.Second)},
			LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerConsistentHash,
				ConsistentHash: &meshv1alpha1.ConsistentHash{Cookie: &meshv1alpha1.HashCookie{Name: "session", TTL: dur(time.Hour)}}},
		}, web, policytest.Service(ns, "api", 8443))},

		// The same with web's endpoints known: its named targetPort "http" resolves to 8080
		// on some pods and 8081 on others (two versions), and both get the mode and the rules.
		{name: "named-port-resolved", in: func() policy.Input {
			in := input("storefront", meshv1alpha1.MeshPolicySpec{
				TargetRefs:    policytest.Targets("web"),
				MTLS:          &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive},
				Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{From: []meshv1alpha1.AuthorizationSource{{Namespace: "shop"}}}}},
			}, web)
			in.TargetPorts = map[string]map[string][]int32{"web": {"http": {8080, 8081}}}
			return in
		}()},

		// The Service a Rollout releases: its route sends the traffic to the slot Services,
		// which get the same DestinationRule traffic policy.
		{name: "rollout-slots", in: func() policy.Input {
			in := input("checkout", meshv1alpha1.MeshPolicySpec{
				TargetRefs:     policytest.Targets("checkout"),
				CircuitBreaker: &meshv1alpha1.CircuitBreaker{OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 3}},
				LoadBalancer:   &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerLeastRequest},
			}, policytest.Service(ns, "checkout", 8080))
			in.Backends = map[string][]string{"checkout": {"checkout-a", "checkout-b"}}
			return in
		}()},

		// A Service a GAMMA HTTPRoute routes (a Rollout's east-west route): Istio makes that
		// route its VirtualService, so timeouts and retries go into the route's rules, and
		// the policy's other target still gets a VirtualService.
		{name: "gamma-routed", in: func() policy.Input {
			in := input("checkout", meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("checkout", "ledger"),
				Timeouts:   &meshv1alpha1.Timeouts{Request: dur(4 * time.Second)},
				Retries:    &meshv1alpha1.Retries{Attempts: 2, PerTryTimeout: dur(time.Second), RetryOn: []meshv1alpha1.RetryOn{"5xx", "connect-failure"}},
			}, policytest.Service(ns, "checkout", 8080), policytest.Service(ns, "ledger", 8080))
			in.Routed = map[string]bool{"checkout": true}
			in.Capabilities.HTTPRouteRetry = true
			return in
		}()},

		// No rules: deny all. mTLS off, header hashing, locality explicitly off.
		{name: "deny-all", in: input("vault", meshv1alpha1.MeshPolicySpec{
			TargetRefs:    policytest.Targets("vault"),
			MTLS:          &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSDisabled},
			Authorization: &meshv1alpha1.Authorization{},
			LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerConsistentHash,
				ConsistentHash: &meshv1alpha1.ConsistentHash{Header: "x-user-id"}},
			Locality: &meshv1alpha1.Locality{PreferClose: false},
		}, policytest.Service(ns, "vault", 8200))},

		// A session cookie read but never set, with locality and the outlier detection it needs.
		{name: "cookie-without-ttl", in: input("cart", meshv1alpha1.MeshPolicySpec{
			TargetRefs: policytest.Targets("cart"),
			LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerConsistentHash,
				ConsistentHash: &meshv1alpha1.ConsistentHash{Cookie: &meshv1alpha1.HashCookie{Name: "cart-id"}}},
			CircuitBreaker: &meshv1alpha1.CircuitBreaker{MaxConnections: ptr.To[int32](10),
				OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 10}},
			Locality: &meshv1alpha1.Locality{PreferClose: true},
		}, policytest.Service(ns, "cart", 8080))},

		// Gaps that depend on values: a Service without selector, identities with mTLS off,
		// durations Istio refuses, locality without outlier detection.
		{name: "value-gaps", in: input("legacy", meshv1alpha1.MeshPolicySpec{
			TargetRefs: policytest.Targets("legacy", "orders"),
			MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSDisabled},
			Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{{ServiceAccount: "shop/checkout"}, {Namespace: "shop"}}},
			}},
			Timeouts: &meshv1alpha1.Timeouts{Request: dur(2500 * time.Microsecond), Idle: dur(0)},
			Retries:  &meshv1alpha1.Retries{Attempts: 1, PerTryTimeout: dur(1500 * time.Microsecond), RetryOn: []meshv1alpha1.RetryOn{"gateway-error", "retriable-4xx"}},
			Locality: &meshv1alpha1.Locality{PreferClose: true},
		}, legacy, policytest.Service(ns, "orders", 8080))},
	}
}
