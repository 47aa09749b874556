package linkerd

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
// table, each in its own namespace.
type testCase struct {
	name     string
	spec     meshv1alpha1.MeshPolicySpec
	services func(ns string) []corev1.Service
}

// input is the translation input of the case in namespace ns.
func (c testCase) input(ns string) policy.Input {
	return policy.Input{Policy: policytest.Policy(ns, "payments", c.spec), Services: c.services(ns)}
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

func sa(s string) meshv1alpha1.AuthorizationSource {
	return meshv1alpha1.AuthorizationSource{ServiceAccount: s}
}

func fromNS(s string) meshv1alpha1.AuthorizationSource {
	return meshv1alpha1.AuthorizationSource{Namespace: s}
}

func to(methods []meshv1alpha1.HTTPMethod, paths ...string) meshv1alpha1.AuthorizationDestination {
	return meshv1alpha1.AuthorizationDestination{Methods: methods, Paths: paths}
}

func methods(ms ...meshv1alpha1.HTTPMethod) []meshv1alpha1.HTTPMethod { return ms }

// payments is the usual target: one port 80 to the container port named http.
func payments(ns string) corev1.Service {
	s := policytest.Service(ns, "payments", 80)
	s.Spec.Ports[0].TargetPort = intstr.FromString("http")
	return s
}

func cases() []testCase {
	return []testCase{
		{
			name: "minimal-strict",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments"),
				MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
			},
			services: func(ns string) []corev1.Service { return []corev1.Service{payments(ns)} },
		},
		{
			// Everything Linkerd expresses, at values it keeps exactly where it can.
			name: "all-supported",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments"),
				MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
				Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
					{
						// /api too: Linkerd's prefix /api/* takes it in.
						From: []meshv1alpha1.AuthorizationSource{sa("shop/checkout"), fromNS("billing")},
						To:   []meshv1alpha1.AuthorizationDestination{to(methods("GET", "POST"), "/api", "/api/*")},
					},
					{From: []meshv1alpha1.AuthorizationSource{fromNS("monitoring")}},
					{To: []meshv1alpha1.AuthorizationDestination{to(nil, "/healthz")}},
				}},
				Timeouts: &meshv1alpha1.Timeouts{Request: dur(5 * time.Second), Idle: dur(time.Minute)},
				Retries: &meshv1alpha1.Retries{
					Attempts: 3, PerTryTimeout: dur(1500 * time.Millisecond),
					RetryOn: []meshv1alpha1.RetryOn{"5xx", "gateway-error", "retriable-4xx", "connect-failure", "refused-stream"},
				},
				CircuitBreaker: &meshv1alpha1.CircuitBreaker{OutlierDetection: &meshv1alpha1.OutlierDetection{
					Consecutive5xx: 5, BaseEjectionTime: dur(30 * time.Second), MaxEjectionPercent: ptr.To[int32](100),
				}},
				RateLimit:    &meshv1alpha1.RateLimit{RequestsPerSecond: 100},
				LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerLeastRequest},
				Locality:     &meshv1alpha1.Locality{PreferClose: true},
			},
			services: func(ns string) []corev1.Service { return []corev1.Service{payments(ns)} },
		},
		{
			// Every row the matrix marks unsupported or partial, with the values Linkerd can't keep.
			name: "unsupported-and-partial",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments"),
				MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSDisabled},
				Timeouts:   &meshv1alpha1.Timeouts{Idle: dur(90 * time.Second)},
				Retries:    &meshv1alpha1.Retries{Attempts: 2, RetryOn: []meshv1alpha1.RetryOn{"reset", "5xx"}},
				CircuitBreaker: &meshv1alpha1.CircuitBreaker{
					MaxConnections: ptr.To[int32](100), MaxPendingRequests: ptr.To[int32](50), MaxRequests: ptr.To[int32](200),
					OutlierDetection: &meshv1alpha1.OutlierDetection{
						Consecutive5xx: 3, Interval: dur(5 * time.Second), BaseEjectionTime: dur(10 * time.Minute), MaxEjectionPercent: ptr.To[int32](50),
					},
				},
				RateLimit: &meshv1alpha1.RateLimit{RequestsPerSecond: 50, Burst: ptr.To[int32](200)},
				LoadBalancer: &meshv1alpha1.LoadBalancer{
					Algorithm:      meshv1alpha1.LoadBalancerConsistentHash,
					ConsistentHash: &meshv1alpha1.ConsistentHash{Cookie: &meshv1alpha1.HashCookie{Name: "session", TTL: dur(time.Hour)}},
				},
				Locality: &meshv1alpha1.Locality{PreferClose: false},
			},
			services: func(ns string) []corev1.Service { return []corev1.Service{payments(ns)} },
		},
		{
			// Two Services: a multi-port one with a named and a numbered targetPort, and one
			// selecting the same pods on the same port (one Server serves both).
			name: "multi-service-permissive",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments", "ledger", "ledger-canary"),
				MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSPermissive},
				RateLimit:  &meshv1alpha1.RateLimit{RequestsPerSecond: 20, Burst: ptr.To[int32](20)},
				Retries:    &meshv1alpha1.Retries{Attempts: 1},
			},
			services: func(ns string) []corev1.Service {
				ledger := policytest.Service(ns, "ledger", 80, 9090)
				ledger.Spec.Ports[0].TargetPort = intstr.FromString("web")
				ledger.Spec.Ports[1].TargetPort = intstr.FromInt32(19090)
				canary := policytest.Service(ns, "ledger-canary", 8080)
				canary.Spec.Selector = ledger.Spec.Selector
				canary.Spec.Ports[0].TargetPort = intstr.FromString("web")
				return []corev1.Service{payments(ns), ledger, canary}
			},
		},
		{
			// Value-dependent gaps: a Service without a selector, a UDP port, a path prefix
			// that ends inside a segment, an exact path tied with a prefix of the same value,
			// and a prefix that would also admit the path of its segment (left out).
			name: "value-gaps",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments", "external", "dns"),
				Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
					{From: []meshv1alpha1.AuthorizationSource{sa("shop/web")}, To: []meshv1alpha1.AuthorizationDestination{to(nil, "/static*")}},
					{From: []meshv1alpha1.AuthorizationSource{sa("shop/admin")}, To: []meshv1alpha1.AuthorizationDestination{to(nil, "/admin")}},
					{From: []meshv1alpha1.AuthorizationSource{sa("shop/ops")}, To: []meshv1alpha1.AuthorizationDestination{to(nil, "/admin", "/admin/*")}},
					{From: []meshv1alpha1.AuthorizationSource{sa("shop/cdn")}, To: []meshv1alpha1.AuthorizationDestination{to(nil, "/assets/*")}},
				}},
				LoadBalancer: &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerRoundRobin},
			},
			services: func(ns string) []corev1.Service {
				external := policytest.Service(ns, "external", 443)
				external.Spec.Selector = nil
				dns := policytest.Service(ns, "dns", 53)
				dns.Spec.Ports[0].Protocol = corev1.ProtocolUDP
				return []corev1.Service{payments(ns), external, dns}
			},
		},
		{
			name: "deny-all",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs:    policytest.Targets("payments"),
				MTLS:          &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
				Authorization: &meshv1alpha1.Authorization{},
			},
			services: func(ns string) []corev1.Service { return []corev1.Service{payments(ns)} },
		},
		{
			// Overlapping destinations of different rules: every request must find the
			// callers of every rule that covers it (see closure), and requests no rule names
			// must fall to the Server-wide rule and the probe rule with an empty from.
			name: "overlapping-paths",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments"),
				Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
					{From: []meshv1alpha1.AuthorizationSource{sa("shop/checkout")}, To: []meshv1alpha1.AuthorizationDestination{to(methods("POST"), "/api", "/api/*")}},
					{From: []meshv1alpha1.AuthorizationSource{sa("shop/reports")}, To: []meshv1alpha1.AuthorizationDestination{to(nil, "/api/v1", "/api/v1/*", "/api/v1/export")}},
					{From: []meshv1alpha1.AuthorizationSource{fromNS("ops")}},
					{To: []meshv1alpha1.AuthorizationDestination{to(methods("GET"), "/healthz", "/readyz")}},
				}},
			},
			services: func(ns string) []corev1.Service { return []corev1.Service{payments(ns)} },
		},
		{
			// Outbound settings only: Service annotations, no objects.
			name: "annotations-only",
			spec: meshv1alpha1.MeshPolicySpec{
				TargetRefs: policytest.Targets("payments"),
				Timeouts:   &meshv1alpha1.Timeouts{Request: dur(2500 * time.Millisecond)},
				Retries:    &meshv1alpha1.Retries{Attempts: 2},
				Locality:   &meshv1alpha1.Locality{PreferClose: true},
			},
			services: func(ns string) []corev1.Service { return []corev1.Service{payments(ns)} },
		},
	}
}
