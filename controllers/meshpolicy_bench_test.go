package controllers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// BenchmarkMeshPolicySpecChangeToReady measures, per spec change of a Traefik policy on a
// Service with an HTTPRoute, the time from the write to the policy reporting Ready for the new
// generation: the controller's whole loop through the real API server (watch, discovery,
// translation, server-side apply of the Middlewares, the route's rule settings, the status).
func BenchmarkMeshPolicySpecChangeToReady(b *testing.B) {
	ns := policyNamespace(b, "mp-bench")
	createService(b, ns)
	createRoute(b, ns, "shop")
	create(b, &meshv1alpha1.MeshPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop", Namespace: ns}, Spec: meshv1alpha1.MeshPolicySpec{
		TargetRefs: targets("shop"), Provider: meshv1alpha1.ProviderTraefik,
		Retries: &meshv1alpha1.Retries{Attempts: 2}, RateLimit: &meshv1alpha1.RateLimit{RequestsPerSecond: 1},
	}})
	waitReadyB(b, ns)
	for i := 0; b.Loop(); i++ {
		patchSpec(b, ns, "shop", fmt.Sprintf(`{"spec":{"rateLimit":{"requestsPerSecond":%d,"burst":%d}}}`, i+2, i+2))
		waitReadyB(b, ns)
	}
}

func waitReadyB(b *testing.B, ns string) {
	b.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 2*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p := &meshv1alpha1.MeshPolicy{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "shop"}, p); err != nil {
			return false, nil
		}
		return p.Status.ObservedGeneration == p.Generation && condition(p, meshv1alpha1.ConditionReady).Status == metav1.ConditionTrue, nil
	})
	if err != nil {
		b.Fatal("the policy did not become Ready")
	}
}
