package scenarios

import (
	"fmt"
	"sort"
	"testing"
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/load"
)

// BenchmarkRollback releases b.N bad versions (50% answers 500) one after the other and
// measures, through the real data plane, from the first failed request a bad version answered
// (what Traefik counts and Prometheus scrapes) to (a) the route carrying weight 0 for the
// canary and (b) the last request the bad version answered. Median and max are reported.
//
//	go test ./e2e/scenarios/ -run '^$' -bench Rollback -benchtime 5x
func BenchmarkRollback(b *testing.B) {
	ns, g, _ := start(b, "bench", nil)
	var toZero, toLast []time.Duration
	prev := "" // the canary revision rolled back last: each iteration waits for a new one
	for i := 0; b.Loop(); i++ {
		version := fmt.Sprintf("bad%d", i)
		zero := watchCanaryZero(b, ns)
		setVersion(b, ns, version, "--error-rate=0.5")
		r := waitRollout(b, ns, "rollback of "+version, 2*time.Minute, func(r *meshv1alpha1.Rollout) bool {
			return r.Status.Phase == meshv1alpha1.PhaseRolledBack && r.Status.CanaryRevision != "" && r.Status.CanaryRevision != prev
		})
		prev = r.Status.CanaryRevision
		weightZero := <-zero
		settled := g.Snapshot()
		waitTraffic(b, g, "traffic after the rollback", func(c load.Counts) bool { return c.Since(settled).Total >= 80 })
		c := g.Snapshot()
		firstBad := c.FirstFailure[version]
		if firstBad.IsZero() {
			b.Fatalf("%s never answered a failed request", version)
		}
		toZero = append(toZero, weightZero.Sub(firstBad))
		toLast = append(toLast, c.LastSeen[version].Sub(firstBad))
	}
	report := func(name string, d []time.Duration) {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		b.ReportMetric(d[len(d)/2].Seconds(), name+"-median-s")
		b.ReportMetric(d[len(d)-1].Seconds(), name+"-max-s")
	}
	report("to-weight0", toZero)
	report("to-last-request", toLast)
}
