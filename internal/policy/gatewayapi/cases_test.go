package gatewayapi

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
	name     string
	spec     meshv1alpha1.MeshPolicySpec // targetRefs come from services
	services func(ns string) []corev1.Service
	caps     policy.Capabilities
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

var retryOnAll = []meshv1alpha1.RetryOn{"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream"}

var cases = []tcase{
	{
		name:     "minimal",
		spec:     meshv1alpha1.MeshPolicySpec{Timeouts: &meshv1alpha1.Timeouts{Request: dur("5s")}},
		services: payments,
	},
	{
		// Everything Gateway API can say, on the experimental channel.
		name: "supported",
		spec: meshv1alpha1.MeshPolicySpec{
			MTLS:     &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSDisabled},
			Timeouts: &meshv1alpha1.Timeouts{Request: dur("1.5s")},
			Retries:  &meshv1alpha1.Retries{Attempts: 3, PerTryTimeout: dur("500ms"), RetryOn: retryOnAll},
		},
		services: payments,
		caps:     policy.Capabilities{HTTPRouteRetry: true},
	},
	{
		// The same retries on a cluster with the standard channel only: every retries field is a gap.
		name: "retries-standard-channel",
		spec: meshv1alpha1.MeshPolicySpec{
			Timeouts: &meshv1alpha1.Timeouts{Request: dur("90s")},
			Retries:  &meshv1alpha1.Retries{Attempts: 3, PerTryTimeout: dur("30s"), RetryOn: []meshv1alpha1.RetryOn{"5xx"}},
		},
		services: payments,
	},
	{
		// Default retryOn (connect-failure): a retry stanza without codes; three targets share it.
		name: "multi-target-default-retry-on",
		spec: meshv1alpha1.MeshPolicySpec{
			Timeouts: &meshv1alpha1.Timeouts{Request: dur("100.5s")},
			Retries:  &meshv1alpha1.Retries{Attempts: 2},
		},
		services: threeTargets,
		caps:     policy.Capabilities{HTTPRouteRetry: true},
	},
	{
		// Every field Gateway API can't express, and mTLS Strict (a value gap).
		name: "unsupported",
		spec: meshv1alpha1.MeshPolicySpec{
			MTLS: &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
			Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{
				From: []meshv1alpha1.AuthorizationSource{{ServiceAccount: "shop/checkout"}, {Namespace: "shop"}},
				To:   []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET", "POST"}, Paths: []string{"/api/*"}}},
			}}},
			Timeouts: &meshv1alpha1.Timeouts{Idle: dur("1m")},
			CircuitBreaker: &meshv1alpha1.CircuitBreaker{
				MaxConnections: ptr.To[int32](100), MaxPendingRequests: ptr.To[int32](50), MaxRequests: ptr.To[int32](200),
				OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 5, Interval: dur("10s"), BaseEjectionTime: dur("30s"), MaxEjectionPercent: ptr.To[int32](50)},
			},
			RateLimit: &meshv1alpha1.RateLimit{RequestsPerSecond: 100, Burst: ptr.To[int32](200)},
			LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerConsistentHash, ConsistentHash: &meshv1alpha1.ConsistentHash{
				Cookie: &meshv1alpha1.HashCookie{Name: "session", TTL: dur("1h")},
			}},
			Locality: &meshv1alpha1.Locality{PreferClose: true},
		},
		services: threeTargets,
		caps:     policy.Capabilities{HTTPRouteRetry: true},
	},
	{
		// Durations Gateway API can't hold: below a millisecond, longer than 99999h.
		name: "durations-not-expressible",
		spec: meshv1alpha1.MeshPolicySpec{
			MTLS:     &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive},
			Timeouts: &meshv1alpha1.Timeouts{Request: dur("100000h")},
			Retries:  &meshv1alpha1.Retries{Attempts: 1, PerTryTimeout: dur("1.0005s"), RetryOn: []meshv1alpha1.RetryOn{"gateway-error", "retriable-4xx"}},
		},
		services: payments,
		caps:     policy.Capabilities{HTTPRouteRetry: true},
	},
}

// input is the case's policy "payments" in namespace ns, targeting its Services.
func (c tcase) input(ns string) policy.Input {
	svcs := c.services(ns)
	spec := *c.spec.DeepCopy()
	for _, s := range svcs {
		spec.TargetRefs = append(spec.TargetRefs, meshv1alpha1.PolicyTargetReference{Kind: "Service", Name: s.Name})
	}
	return policy.Input{Policy: policytest.Policy(ns, "payments", spec), Services: svcs, Capabilities: c.caps}
}
