package main

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// tracker records, from the Rollout watch, when each Rollout first met a goal (so times are
// exact, not rounded to a polling interval) and which Rollouts failed.
type tracker struct {
	cache  cache.Cache
	mu     sync.Mutex
	goals  []*goal
	failed map[string]string // namespace/name → why
}

// goal is a condition every Rollout of a set must meet.
type goal struct {
	name string
	want int
	pred func(*meshv1alpha1.Rollout) bool
	met  map[string]bool
	last time.Time // when the last Rollout met it
	done chan struct{}
}

func newTracker(ctx context.Context, c cache.Cache) (*tracker, error) {
	t := &tracker{cache: c, failed: map[string]string{}}
	inf, err := c.GetInformer(ctx, &meshv1alpha1.Rollout{})
	if err != nil {
		return nil, err
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    t.see,
		UpdateFunc: func(_, o any) { t.see(o) },
	})
	return t, err
}

func (t *tracker) see(o any) {
	r, ok := o.(*meshv1alpha1.Rollout)
	if !ok {
		return
	}
	key := r.Namespace + "/" + r.Name
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch r.Status.Phase {
	case meshv1alpha1.PhaseFailed, meshv1alpha1.PhaseRollingBack, meshv1alpha1.PhaseRolledBack:
		t.failed[key] = fmt.Sprintf("phase %s: %s", r.Status.Phase, conditionMessages(r))
	}
	for _, g := range t.goals {
		if g.met[key] || len(g.met) >= g.want || !g.pred(r) {
			continue
		}
		g.met[key], g.last = true, now
		if len(g.met) == g.want {
			close(g.done)
		}
	}
}

// goal starts tracking a goal for want Rollouts, counting those already meeting it.
func (t *tracker) goal(ctx context.Context, name string, want int, pred func(*meshv1alpha1.Rollout) bool) (*goal, error) {
	g := &goal{name: name, want: want, pred: pred, met: map[string]bool{}, done: make(chan struct{})}
	if want == 0 {
		close(g.done)
		return g, nil
	}
	t.mu.Lock()
	t.goals = append(t.goals, g)
	t.mu.Unlock()
	var list meshv1alpha1.RolloutList
	if err := t.cache.List(ctx, &list); err != nil {
		return nil, err
	}
	for i := range list.Items {
		t.see(&list.Items[i])
	}
	return g, nil
}

// wait returns when every Rollout met the goal, or an error: a Rollout failed, the manager
// exited, or the deadline passed (naming a few Rollouts that did not get there).
func (t *tracker) wait(ctx context.Context, g *goal, timeout time.Duration, exited <-chan struct{}, exitErr func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-g.done:
			return t.failure()
		case <-exited:
			return fmt.Errorf("waiting for %s: the manager exited: %w", g.name, exitErr())
		case <-tick.C:
			if err := t.failure(); err != nil {
				return err
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %d of %d after %s; e.g. %s", g.name, t.count(g), g.want, timeout, t.missing(g, 3))
		}
	}
}

func (t *tracker) count(g *goal) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(g.met)
}

func (t *tracker) failure() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.failed) == 0 {
		return nil
	}
	keys := make([]string, 0, len(t.failed))
	for k := range t.failed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return fmt.Errorf("%d Rollouts failed; %s: %s", len(keys), keys[0], t.failed[keys[0]])
}

// missing describes up to n Rollouts of the cache that do not meet the goal.
func (t *tracker) missing(g *goal, n int) string {
	var list meshv1alpha1.RolloutList
	if err := t.cache.List(context.Background(), &list, client.UnsafeDisableDeepCopy); err != nil {
		return err.Error()
	}
	out := ""
	for i := range list.Items {
		r := &list.Items[i]
		if t.metBy(g, r) || g.pred(r) {
			continue
		}
		out += fmt.Sprintf("[%s/%s gen %d observed %d phase %q step %v: %s] ", r.Namespace, r.Name, r.Generation, r.Status.ObservedGeneration,
			r.Status.Phase, r.Status.CurrentStep, conditionMessages(r))
		if n--; n == 0 {
			break
		}
	}
	return out
}

func (t *tracker) metBy(g *goal, r *meshv1alpha1.Rollout) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return g.met[r.Namespace+"/"+r.Name]
}

func conditionMessages(r *meshv1alpha1.Rollout) string {
	s := ""
	for _, c := range r.Status.Conditions {
		s += fmt.Sprintf("%s=%s (%s: %s); ", c.Type, c.Status, c.Reason, c.Message)
	}
	return s
}

// observed: the controller wrote status for the Rollout's current spec.
func observed(r *meshv1alpha1.Rollout) bool { return r.Status.ObservedGeneration == r.Generation }

// ready: observed and Ready.
func ready(r *meshv1alpha1.Rollout) bool {
	c := meta.FindStatusCondition(r.Status.Conditions, meshv1alpha1.ConditionReady)
	return observed(r) && c != nil && c.Status == metav1.ConditionTrue
}

// promotedFrom: Healthy and Ready on a stable revision other than the one it had before.
func promotedFrom(before map[string]string) func(*meshv1alpha1.Rollout) bool {
	return func(r *meshv1alpha1.Rollout) bool {
		old, ok := before[r.Namespace+"/"+r.Name]
		return ok && r.Status.StableRevision != old && r.Status.Phase == meshv1alpha1.PhaseHealthy && ready(r)
	}
}
