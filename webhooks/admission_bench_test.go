package webhooks_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// BenchmarkRolloutAdmission measures a Rollout create through the real API server with both
// Sluice webhooks in the path (defaulting, then validation with its reference lookups), and
// reports p50 and p99 per create. Compare with BenchmarkCreateRolloutCEL in api/v1alpha1 for
// the cost of the webhooks alone.
func BenchmarkRolloutAdmission(b *testing.B) {
	ctx := context.Background()
	ns := namespace(b)
	base := sample[*meshv1alpha1.Rollout](b, "rollout_canary", &meshv1alpha1.Rollout{})
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		r := base.DeepCopy()
		r.Namespace, r.Name = ns, fmt.Sprintf("r-%d", i)
		start := time.Now()
		if err := env.Client.Create(ctx, r); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}
