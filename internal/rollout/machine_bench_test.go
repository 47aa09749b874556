package rollout

import (
	"testing"

	mv1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// BenchmarkNext is the cost of one decision in the middle of a canary release (the state
// machine runs once per reconcile).
func BenchmarkNext(b *testing.B) {
	spec := canarySpec()
	st := releasing(2, 10)
	o := obs(r2, ready(r1), ready(r2), route(90, 10))
	o.Check = &Check{Verdict: mv1.VerdictPass}
	b.ReportAllocs()
	for b.Loop() {
		_ = Next(spec, &st, o)
	}
}
