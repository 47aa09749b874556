package providers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// fullPolicy sets every field of MeshPolicy, for three target Services.
func fullPolicy() policy.Input {
	d := func(s string) *metav1.Duration {
		v, _ := time.ParseDuration(s)
		return &metav1.Duration{Duration: v}
	}
	p := &meshv1alpha1.MeshPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "payments", Namespace: "shop", UID: "uid"},
		Spec: meshv1alpha1.MeshPolicySpec{
			TargetRefs: []meshv1alpha1.PolicyTargetReference{{Kind: "Service", Name: "payments"}, {Kind: "Service", Name: "ledger"}, {Kind: "Service", Name: "audit"}},
			MTLS:       &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
			Authorization: &meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{{ServiceAccount: "shop/checkout"}, {Namespace: "ops"}}, To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET", "POST"}, Paths: []string{"/api/*"}}}},
				{From: []meshv1alpha1.AuthorizationSource{{Namespace: "monitoring"}}, To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/metrics"}}}},
			}},
			Timeouts:       &meshv1alpha1.Timeouts{Request: d("5s"), Idle: d("1m")},
			Retries:        &meshv1alpha1.Retries{Attempts: 3, PerTryTimeout: d("1s"), RetryOn: []meshv1alpha1.RetryOn{"5xx", "connect-failure"}},
			CircuitBreaker: &meshv1alpha1.CircuitBreaker{MaxConnections: ptr.To[int32](100), MaxPendingRequests: ptr.To[int32](50), MaxRequests: ptr.To[int32](200), OutlierDetection: &meshv1alpha1.OutlierDetection{Consecutive5xx: 5}},
			RateLimit:      &meshv1alpha1.RateLimit{RequestsPerSecond: 100, Burst: ptr.To[int32](200)},
			LoadBalancer:   &meshv1alpha1.LoadBalancer{Algorithm: meshv1alpha1.LoadBalancerConsistentHash, ConsistentHash: &meshv1alpha1.ConsistentHash{Header: "x-user"}},
			Locality:       &meshv1alpha1.Locality{PreferClose: true},
		},
	}
	in := policy.Input{Policy: p, Capabilities: policy.Capabilities{HTTPRouteRetry: true}}
	for _, name := range []string{"payments", "ledger", "audit"} {
		in.Services = append(in.Services, corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, TargetPort: intstr.FromString("http")},
				{Name: "admin", Port: 9000, TargetPort: intstr.FromInt32(9000)},
			}},
		})
	}
	return in
}

// BenchmarkTranslate is one reconcile's pure work per provider: the matrix check and the
// translation of a policy that sets every field, for three two-port Services.
func BenchmarkTranslate(b *testing.B) {
	in := fullPolicy()
	for _, p := range All() {
		b.Run(string(p.Name()), func(b *testing.B) {
			b.ReportAllocs()
			objects := 0
			for b.Loop() {
				policy.Check(p.Matrix(), &in.Policy.Spec)
				out, err := p.Translate(in)
				if err != nil {
					b.Fatal(err)
				}
				objects = len(out.Objects)
			}
			b.ReportMetric(float64(objects), "objects")
		})
	}
}
