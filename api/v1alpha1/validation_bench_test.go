package v1alpha1_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BenchmarkCreateRolloutCEL measures a Rollout create through the real API server with every
// CEL rule of the CRD evaluated (no webhooks): the floor of admission cost.
func BenchmarkCreateRolloutCEL(b *testing.B) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		b.Fatal(err)
	}
	base := patchedSample(b, "rollout_canary", "")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		obj := base.DeepCopy()
		obj.SetNamespace(ns.Name)
		obj.SetName(fmt.Sprintf("r-%d", i))
		if err := env.Client.Create(ctx, obj); err != nil {
			b.Fatal(err)
		}
	}
}
