package consul

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

// testCase is one policy with its target Services; the golden test and the envtest share the
// table, each with its own namespace.
type testCase struct {
	name     string
	spec     meshv1alpha1.MeshPolicySpec
	services func(ns string) []corev1.Service
	// community: the cluster runs Consul CE (the manager is not told it is Enterprise).
	community bool
}

// input is the translation input of the case in namespace ns.
func (c testCase) input(ns string) policy.Input {
	return policy.Input{Policy: policytest.Policy(ns, "payments-policy", c.spec), Services: c.services(ns),
		Capabilities: policy.Capabilities{ConsulEnterprise: !c.community}}
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func sa(s string) meshv1alpha1.AuthorizationSource {
	return meshv1alpha1.AuthorizationSource{ServiceAccount: s}
}

func nsSource(s string) meshv1alpha1.AuthorizationSource {
	return meshv1alpha1.AuthorizationSource{Namespace: s}
}

// withTargetPort names the target port of every port of svc (the Pods' container port name).
func withTargetPort(svc corev1.Service, name string) corev1.Service {
	for i := range svc.Spec.Ports {
		svc.Spec.Ports[i].TargetPort = intstr.FromString(name)
	}
	return svc
}

func withAppProtocol(svc corev1.Service, proto string) corev1.Service {
	for i := range svc.Spec.Ports {
		svc.Spec.Ports[i].AppProtocol = ptr.To(proto)
	}
	return svc
}

func payments(ns string) []corev1.Service {
	return []corev1.Service{policytest.Service(ns, "payments", 80)}
}

func cases() []testCase {
	return []testCase{
		{
			// mTLS alone: a ServiceDefaults without protocol (nothing L7 is asked for).
			name:     "minimal",
			spec:     meshv1alpha1.MeshPolicySpec{TargetRefs: policytest.Targets("payments"), MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict}},
			services: payments,
		},
		{
			name: "everything-supported",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments"),
				MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
				// Rules for any caller: Consul can't match a named source (see l4-authorization).
				Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
					{To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET", "POST"}, Paths: []string{"/api/*"}}}},
					{To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/healthz"}}}},
					{To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/public/*", "/version"}}}},
				}},
				Timeouts:       &meshv1alpha1.Timeouts{Request: dur(5 * time.Second), Idle: dur(time.Minute)},
				Retries:        &meshv1alpha1.Retries{Attempts: 3, RetryOn: []meshv1alpha1.RetryOn{"5xx", "reset", "connect-failure"}},
				CircuitBreaker: &meshv1alpha1.CircuitBreaker{MaxConnections: ptr.To[int32](100)},
				RateLimit:      &meshv1alpha1.RateLimit{RequestsPerSecond: 100, Burst: ptr.To[int32](200)},
				LoadBalancer: &meshv1alpha1.LoadBalancer{
					Algorithm:      meshv1alpha1.LoadBalancerConsistentHash,
					ConsistentHash: &meshv1alpha1.ConsistentHash{Cookie: &meshv1alpha1.HashCookie{Name: "session", TTL: dur(time.Hour)}},
				},
				Locality: &meshv1alpha1.Locality{PreferClose: true},
			},
			services: payments,
		},
		{
			// Every partial and unsupported field. Rules naming sources allow nobody, and
			// mode Permissive next to authorization is written as strict.
			name: "partial-and-unsupported",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments"),
				MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive},
				Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
					{From: []meshv1alpha1.AuthorizationSource{nsSource("monitoring")}, To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/metrics"}}}},
					{From: []meshv1alpha1.AuthorizationSource{sa("shop/checkout"), nsSource("shop")}, To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"POST"}}}},
				}},
				Timeouts: &meshv1alpha1.Timeouts{Request: dur(3 * time.Second), Idle: dur(90 * time.Second)},
				Retries:  &meshv1alpha1.Retries{Attempts: 2, PerTryTimeout: dur(time.Second)},
				CircuitBreaker: &meshv1alpha1.CircuitBreaker{
					MaxPendingRequests: ptr.To[int32](10),
					MaxRequests:        ptr.To[int32](50),
					OutlierDetection: &meshv1alpha1.OutlierDetection{
						Consecutive5xx: 5, Interval: dur(5 * time.Second), BaseEjectionTime: dur(time.Minute), MaxEjectionPercent: ptr.To[int32](20),
					},
				},
				RateLimit: &meshv1alpha1.RateLimit{RequestsPerSecond: 50},
				LoadBalancer: &meshv1alpha1.LoadBalancer{
					Algorithm:      meshv1alpha1.LoadBalancerConsistentHash,
					ConsistentHash: &meshv1alpha1.ConsistentHash{Header: "x-user-id"},
				},
			},
			services: payments,
		},
		{
			// Three targets: a multi-port Service, a named targetPort, a gRPC Service (its
			// protocol stays grpc). Authorization without rules denies everyone.
			name: "multiple-services",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs:    policytest.Targets("web", "api", "ledger"),
				Authorization: &meshv1alpha1.Authorization{},
				Retries: &meshv1alpha1.Retries{
					Attempts: 1, RetryOn: []meshv1alpha1.RetryOn{"gateway-error", "retriable-4xx", "refused-stream"},
				},
				LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerLeastRequest},
			},
			services: func(ns string) []corev1.Service {
				return []corev1.Service{
					policytest.Service(ns, "web", 80, 9090),
					withTargetPort(policytest.Service(ns, "api", 8080), "http"),
					withAppProtocol(policytest.Service(ns, "ledger", 9000), "grpc"),
				}
			},
		},
		{
			// Value-dependent gaps: mode Disabled, a Service without selector, and a TCP
			// Service that a request timeout (L7) can't apply to.
			name: "value-gaps",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments", "legacy", "db"),
				MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSDisabled},
				Timeouts:   &meshv1alpha1.Timeouts{Request: dur(2 * time.Second)},
			},
			services: func(ns string) []corev1.Service {
				legacy := policytest.Service(ns, "legacy", 80)
				legacy.Spec.Selector = nil
				return []corev1.Service{
					policytest.Service(ns, "payments", 80),
					legacy,
					withAppProtocol(policytest.Service(ns, "db", 5432), "tcp"),
				}
			},
		},
		{
			// L4 only: no protocol is set, the intention uses an action. Consul can't match the
			// ServiceAccounts' or the namespace's sources, so the rules allow nobody.
			name: "l4-authorization",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments"),
				MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
				Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
					{From: []meshv1alpha1.AuthorizationSource{sa("shop/checkout"), sa("billing/checkout")}},
					{From: []meshv1alpha1.AuthorizationSource{nsSource("shop")}},
				}},
				LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerRoundRobin},
			},
			services: payments,
		},
		{
			// A rule with neither from nor to allows everyone; locality alone makes a resolver.
			name: "open-with-locality",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs:    policytest.Targets("payments"),
				Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{}}},
				Locality:      &meshv1alpha1.Locality{PreferClose: true},
			},
			services: payments,
		},
		{
			// Consul CE: the Enterprise-only rate limit and locality are reported, not written,
			// so the ServiceDefaults (mTLS mode) and ServiceResolver (balancing) still sync.
			// Permissive without authorization is written as asked.
			name: "community-edition",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs:   policytest.Targets("payments"),
				MTLS:         &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive},
				RateLimit:    &meshv1alpha1.RateLimit{RequestsPerSecond: 50, Burst: ptr.To[int32](80)},
				LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerLeastRequest},
				Locality:     &meshv1alpha1.Locality{PreferClose: true},
			},
			services:  payments,
			community: true,
		},
	}
}
