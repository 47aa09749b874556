package traefik

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

// tcase is one policy of the table that both the golden and the API-server tests run.
type tcase struct {
	name       string
	policyName string                      // defaults to payments
	spec       meshv1alpha1.MeshPolicySpec // targetRefs come from services
	services   func(ns string) []corev1.Service
}

func dur(s string) *metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: d}
}

func payments(ns string) []corev1.Service {
	return []corev1.Service{policytest.Service(ns, "payments", 8080)}
}

// threeTargets: a plain Service, a multi-port one and one whose targetPort is a name.
func threeTargets(ns string) []corev1.Service {
	audit := policytest.Service(ns, "audit", 80)
	audit.Spec.Ports[0].TargetPort = intstr.FromString("http")
	return []corev1.Service{policytest.Service(ns, "payments", 8080), policytest.Service(ns, "ledger", 80, 9090), audit}
}

var cases = []tcase{
	{
		name:     "minimal",
		spec:     meshv1alpha1.MeshPolicySpec{RateLimit: &meshv1alpha1.RateLimit{RequestsPerSecond: 100}},
		services: payments,
	},
	{
		// Everything Traefik can say: all four Middlewares, in chain order.
		name: "supported",
		spec: meshv1alpha1.MeshPolicySpec{
			MTLS:    &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSDisabled},
			Retries: &meshv1alpha1.Retries{Attempts: 2, RetryOn: []meshv1alpha1.RetryOn{"5xx", "connect-failure", "gateway-error"}},
			CircuitBreaker: &meshv1alpha1.CircuitBreaker{
				MaxRequests:      ptr.To[int32](50),
				OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 5, Interval: dur("5s"), BaseEjectionTime: dur("1.5s")},
			},
			RateLimit:    &meshv1alpha1.RateLimit{RequestsPerSecond: 100, Burst: ptr.To[int32](200)},
			LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerRoundRobin},
		},
		services: payments,
	},
	{
		// Every field Traefik can't express, mTLS Permissive and ConsistentHash (value gaps).
		name: "unsupported",
		spec: meshv1alpha1.MeshPolicySpec{
			MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive},
			Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{
				From: []meshv1alpha1.AuthorizationSource{{ServiceAccount: "shop/checkout"}, {Namespace: "shop"}},
				To:   []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/api/*", "/healthz"}}},
			}}},
			Timeouts: &meshv1alpha1.Timeouts{Request: dur("5s"), Idle: dur("1m")},
			Retries:  &meshv1alpha1.Retries{Attempts: 3, PerTryTimeout: dur("1s"), RetryOn: []meshv1alpha1.RetryOn{"connect-failure"}},
			CircuitBreaker: &meshv1alpha1.CircuitBreaker{
				MaxConnections: ptr.To[int32](100), MaxPendingRequests: ptr.To[int32](50),
				OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 5, MaxEjectionPercent: ptr.To[int32](30)},
			},
			LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerConsistentHash, ConsistentHash: &meshv1alpha1.ConsistentHash{Header: "x-user"}},
			Locality:     &meshv1alpha1.Locality{PreferClose: true},
		},
		services: threeTargets,
	},
	{
		// Status-only retries: no retry on network errors, reset and refused-stream reported.
		name: "retry-status-only",
		spec: meshv1alpha1.MeshPolicySpec{
			Retries: &meshv1alpha1.Retries{Attempts: 4, RetryOn: []meshv1alpha1.RetryOn{"refused-stream", "gateway-error", "retriable-4xx", "reset"}},
		},
		services: payments,
	},
	{
		// Nothing retriable is left: no Retry Middleware, no filter; LeastRequest is a value gap.
		name: "retry-nothing-retriable",
		spec: meshv1alpha1.MeshPolicySpec{
			Retries:      &meshv1alpha1.Retries{Attempts: 2, RetryOn: []meshv1alpha1.RetryOn{"reset"}},
			LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerLeastRequest},
		},
		services: payments,
	},
	{
		// Defaults (retryOn connect-failure, outlier interval and ejection time) on three targets
		// sharing one set of Middlewares, under a name long enough to be cut.
		name:       "multi-target-defaults",
		policyName: "payments-ledger-and-audit-resilience-policy-for-the-shop-team",
		spec: meshv1alpha1.MeshPolicySpec{
			Retries:        &meshv1alpha1.Retries{Attempts: 1},
			CircuitBreaker: &meshv1alpha1.CircuitBreaker{OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 3}},
		},
		services: threeTargets,
	},
}

// input is the case's policy in namespace ns, targeting its Services.
func (c tcase) input(ns string) policy.Input {
	svcs := c.services(ns)
	spec := *c.spec.DeepCopy()
	for _, s := range svcs {
		spec.TargetRefs = append(spec.TargetRefs, meshv1alpha1.PolicyTargetReference{Kind: "Service", Name: s.Name})
	}
	name := c.policyName
	if name == "" {
		name = "payments"
	}
	return policy.Input{Policy: policytest.Policy(ns, name, spec), Services: svcs}
}
