package cluster

import (
	"context"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// SplitSample is one look at a route's split and at the Deployments behind it.
type SplitSample struct {
	Time time.Time
	// Weights are the route's weighted rule (its last rule): backend Service → weight.
	Weights         map[string]int32
	RouteGeneration int64
	// Replicas and ReadyReplicas per Deployment, read just before the route: a Deployment
	// seen scaled down while the route read after it still sends it traffic was scaled down
	// under traffic (a scale-up and a weight change can't both happen in between).
	Replicas, ReadyReplicas map[string]int32
	// Endpoints are the ready addresses the EndpointSlices of each backend Service publish
	// (what the data plane routes to), sorted; read between the Deployments and the route.
	Endpoints map[string][]string
}

// WeightSum is the sum of the route's weights.
func (s SplitSample) WeightSum() int32 {
	var sum int32
	for _, w := range s.Weights {
		sum += w
	}
	return sum
}

// SplitWatch polls a route and Deployments until its context ends.
type SplitWatch struct {
	mu      sync.Mutex
	samples []SplitSample
	done    chan struct{}
}

// WatchSplit polls HTTPRoute ns/route and the named Deployments every interval until ctx ends.
// Polls that fail (the API server is away) leave a gap.
func (c *Cluster) WatchSplit(ctx context.Context, ns, route string, deployments []string, interval time.Duration) *SplitWatch {
	w := &SplitWatch{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if s, ok := c.SampleSplit(ctx, ns, route, deployments); ok {
				w.mu.Lock()
				w.samples = append(w.samples, s)
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w
}

// SampleSplit reads the Deployments, then the route, once; false when a read failed.
func (c *Cluster) SampleSplit(ctx context.Context, ns, route string, deployments []string) (SplitSample, bool) {
	s := SplitSample{Weights: map[string]int32{}, Replicas: map[string]int32{}, ReadyReplicas: map[string]int32{}}
	for _, name := range deployments {
		d := &appsv1.Deployment{}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return s, false
		}
		s.Replicas[name] = ptr.Deref(d.Spec.Replicas, 1)
		s.ReadyReplicas[name] = d.Status.ReadyReplicas
	}
	eps := &discoveryv1.EndpointSliceList{}
	if err := c.Client.List(ctx, eps, client.InNamespace(ns)); err != nil {
		return s, false
	}
	s.Endpoints = readyAddresses(eps.Items)
	rt := &gatewayv1.HTTPRoute{}
	if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: route}, rt); err != nil {
		return s, false
	}
	s.Time, s.RouteGeneration = time.Now(), rt.Generation
	if n := len(rt.Spec.Rules); n > 0 {
		for _, b := range rt.Spec.Rules[n-1].BackendRefs {
			s.Weights[string(b.Name)] = ptr.Deref(b.Weight, 1)
		}
	}
	return s, true
}

// readyAddresses maps each Service to the ready addresses of its EndpointSlices, sorted.
func readyAddresses(items []discoveryv1.EndpointSlice) map[string][]string {
	out := map[string][]string{}
	for _, sl := range items {
		svc := sl.Labels[discoveryv1.LabelServiceName]
		for _, ep := range sl.Endpoints {
			if ptr.Deref(ep.Conditions.Ready, true) {
				out[svc] = append(out[svc], ep.Addresses...)
			}
		}
	}
	for _, a := range out {
		slices.Sort(a)
	}
	return out
}

// Samples returns the samples so far; after ctx ended, Wait first for all of them.
func (w *SplitWatch) Samples() []SplitSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]SplitSample(nil), w.samples...)
}

// Wait returns once the watch has stopped (its context ended).
func (w *SplitWatch) Wait() { <-w.done }
