package scenarios

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/e2e/load"
	sluicescheme "github.com/sluice-mesh/sluice/internal/scheme"
)

// timeline records, as the test process receives the watch events, what the API server says
// about one scenario namespace: the route (weights, and each parent's Accepted and ResolvedRefs
// with the generation they are for), the EndpointSlices (ready addresses), the pods and the
// Rollout. A failed request is explained by the events around it.
type timeline struct {
	mu     sync.Mutex
	events []event
	last   map[string]string // by object: the last summary, to record changes only
}

var quietOnce sync.Once

type event struct {
	at   time.Time
	what string
}

// watchTimeline starts recording namespace ns until the test ends.
func watchTimeline(t testing.TB, ns string) *timeline {
	t.Helper()
	// controller-runtime complains (with a stack trace) about a client made without a logger.
	quietOnce.Do(func() { ctrllog.SetLogger(logr.Discard()) })
	c, err := client.NewWithWatch(cl.Config, client.Options{Scheme: sluicescheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	tl := &timeline{last: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, list := range []client.ObjectList{&gatewayv1.HTTPRouteList{}, &discoveryv1.EndpointSliceList{}, &corev1.PodList{}, &meshv1alpha1.RolloutList{}} {
		wg.Add(1)
		go func() { defer wg.Done(); tl.watch(ctx, c, ns, list) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return tl
}

// watch follows one kind, watching again when the server ends the watch.
func (tl *timeline) watch(ctx context.Context, c client.WithWatch, ns string, list client.ObjectList) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, list.DeepCopyObject().(client.ObjectList), client.InNamespace(ns))
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		for ev := range w.ResultChan() {
			if o, ok := ev.Object.(client.Object); ok {
				tl.record(ev.Type, o)
			}
		}
		w.Stop()
	}
}

func (tl *timeline) record(typ watch.EventType, o client.Object) {
	now := time.Now()
	var key, summary string
	switch o := o.(type) {
	case *gatewayv1.HTTPRoute:
		key, summary = "route "+o.Name, routeSummary(o)
	case *discoveryv1.EndpointSlice:
		key, summary = "endpointslice "+o.Name, sliceSummary(o)
	case *corev1.Pod:
		key, summary = "pod "+o.Name, podSummary(o)
	case *meshv1alpha1.Rollout:
		key, summary = "rollout "+o.Name, rolloutSummary(o)
	default:
		return
	}
	if typ == watch.Deleted {
		summary = "deleted"
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.last[key] == summary {
		return
	}
	tl.last[key] = summary
	tl.events = append(tl.events, event{at: now, what: key + ": " + summary})
}

func routeSummary(rt *gatewayv1.HTTPRoute) string {
	var rules []string
	for _, r := range rt.Spec.Rules {
		var refs []string
		for _, b := range r.BackendRefs {
			w := int32(1)
			if b.Weight != nil {
				w = *b.Weight
			}
			refs = append(refs, fmt.Sprintf("%s=%d", b.Name, w))
		}
		name := "rule"
		if r.Name != nil {
			name = string(*r.Name)
		}
		rules = append(rules, name+"["+strings.Join(refs, ",")+"]")
	}
	var parents []string
	for _, p := range rt.Status.Parents {
		var conds []string
		for _, typ := range []string{string(gatewayv1.RouteConditionAccepted), string(gatewayv1.RouteConditionResolvedRefs)} {
			if c := meta.FindStatusCondition(p.Conditions, typ); c != nil {
				conds = append(conds, fmt.Sprintf("%s=%s@gen%d(%s)", typ, c.Status, c.ObservedGeneration, c.Reason))
			}
		}
		parents = append(parents, string(p.ParentRef.Name)+" "+strings.Join(conds, " "))
	}
	return fmt.Sprintf("gen %d %s; status: %s", rt.Generation, strings.Join(rules, " "), strings.Join(parents, "; "))
}

func sliceSummary(s *discoveryv1.EndpointSlice) string {
	var ready, other []string
	for _, e := range s.Endpoints {
		if e.Conditions.Ready == nil || *e.Conditions.Ready {
			ready = append(ready, e.Addresses...)
		} else {
			other = append(other, e.Addresses...)
		}
	}
	slices.Sort(ready)
	slices.Sort(other)
	return fmt.Sprintf("service %s ready %v not-ready %v", s.Labels[discoveryv1.LabelServiceName], ready, other)
}

func podSummary(p *corev1.Pod) string {
	ready := "not ready"
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = "ready"
		}
	}
	if p.DeletionTimestamp != nil {
		ready += ", terminating"
	}
	return fmt.Sprintf("%s ip %s %s", p.Status.Phase, p.Status.PodIP, ready)
}

func rolloutSummary(r *meshv1alpha1.Rollout) string {
	applied := ""
	if c := meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionTrafficApplied); c != nil {
		applied = fmt.Sprintf(" TrafficApplied=%s(%s)", c.Status, c.Reason)
	}
	step := "-"
	if r.Status.CurrentStep != nil {
		step = fmt.Sprint(*r.Status.CurrentStep)
	}
	return fmt.Sprintf("%s step %s canary weight %d stable slot %s%s", r.Status.Phase, step, r.Status.CanaryWeight, r.Status.StableSlot, applied)
}

// around is the timeline from before to after a moment, each event with its offset from it.
func (tl *timeline) around(at time.Time, before, after time.Duration) string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var b strings.Builder
	for _, e := range tl.events {
		if e.at.Before(at.Add(-before)) || e.at.After(at.Add(after)) {
			continue
		}
		fmt.Fprintf(&b, "  %s (%+6dms) %s\n", e.at.Format("15:04:05.000"), e.at.Sub(at).Milliseconds(), e.what)
	}
	return b.String()
}

// explain describes failed requests with the timeline around each burst of them.
func (tl *timeline) explain(failures []load.Failure) string {
	var b strings.Builder
	var burst time.Time
	for _, f := range failures {
		fmt.Fprintf(&b, "failed: %s\n", f)
		if burst.IsZero() || f.Start.Sub(burst) > 3*time.Second {
			burst = f.Start
			fmt.Fprintf(&b, "timeline around it:\n%s", tl.around(f.Start, 3*time.Second, time.Second))
		}
	}
	return b.String()
}
