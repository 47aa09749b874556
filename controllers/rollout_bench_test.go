package controllers_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// failClock is a gate stub that fails every check from 20% on and remembers when it did.
type failClock struct {
	stubGates
	mu       sync.Mutex
	failedAt time.Time
}

// BenchmarkRollbackToWeightZero measures, over b.N bad releases, the time from the failing
// gate check to the HTTPRoute carrying weight 0 for the canary (seen through a watch on the
// API server). Reports median and max. The data plane's own apply delay comes on top (see
// docs/benchmarks.md).
func BenchmarkRollbackToWeightZero(b *testing.B) {
	t := b
	c := newCluster(b, "bench")
	g := &failClock{}
	g.set(func(r *meshv1alpha1.Rollout) meshv1alpha1.Verdict {
		if r.Status.CanaryWeight >= 20 {
			g.mu.Lock()
			g.failedAt = time.Now()
			g.mu.Unlock()
			return meshv1alpha1.VerdictFail
		}
		return meshv1alpha1.VerdictPass
	})
	startManager(t, c.ns, &g.stubGates)
	c.target(t, "checkout")
	create(t, canaryRollout(c.ns, "checkout"))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	var took []time.Duration
	for i := 0; b.Loop(); i++ {
		w, err := wc.Watch(context.Background(), &gatewayv1.HTTPRouteList{}, client.InNamespace(c.ns))
		if err != nil {
			b.Fatal(err)
		}
		c.setImage(t, "checkout", fmt.Sprintf("demo:bad-%d", i))
		sawCanary := false
		for ev := range w.ResultChan() {
			if ev.Type != watch.Modified {
				continue
			}
			rt := ev.Object.(*gatewayv1.HTTPRoute)
			wb := canaryWeight(rt, "checkout-b")
			if wb > 0 {
				sawCanary = true
			}
			if sawCanary && wb == 0 {
				seen := time.Now()
				g.mu.Lock()
				took = append(took, seen.Sub(g.failedAt))
				g.mu.Unlock()
				break
			}
		}
		w.Stop()
		c.waitRollout(t, "checkout", "RolledBack", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "ms-max")
}

func canaryWeight(rt *gatewayv1.HTTPRoute, svc string) int32 {
	for _, rule := range rt.Spec.Rules {
		for _, ref := range rule.BackendRefs {
			if string(ref.Name) == svc && (rule.Name == nil || string(*rule.Name) == "sluice-split") {
				return ptr.Deref(ref.Weight, 1)
			}
		}
	}
	return 0
}
