package gates

import (
	"context"
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// BenchmarkEvaluate3Metrics measures one evaluation of a typical gate (success rate, p99,
// success rate compared with stable: four instant queries over HTTP) against the local
// Prometheus scraping the Traefik-like exporter. Run with:
//
//	go test ./internal/gates/ -run '^$' -bench BenchmarkEvaluate3Metrics -benchtime 5s
func BenchmarkEvaluate3Metrics(b *testing.B) {
	// Set up once in the parent: a benchmark with sub-benchmarks runs its body once, while the
	// sub-benchmark's body is rerun for every b.N.
	s := newStack(b)
	s.exp.Set("shop", "checkout-b", 50, 0, latency)
	spec := traefikGate([]string{s.prom.URL()}, successRate(), p99(), noWorseThanStable(0.01))
	src := newSource(b, spec)
	eventually(b, src, spec, promTarget(), meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail)

	b.Run("traefik", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if res := Evaluate(ctx, src, spec, promTarget()); res.Verdict != meshv1alpha1.VerdictPass {
				b.Fatalf("verdict %s: %s", res.Verdict, res.Message)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
	})
}
