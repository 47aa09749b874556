package controllers_test

import (
	"context"
	"errors"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// actionFault breaks the reconciler's writes around a manual action at one point:
//   - "status-fails": the status write that records the accepted action fails (once);
//   - "killed-after-accept": the manager dies right after the action was accepted, before the
//     decision is written (the status write never returns);
//   - "killed-after-decision": the manager dies after the decision is written, before the
//     accepted action is confirmed (the confirming write never returns).
type actionFault struct {
	point    string
	mu       sync.Mutex
	accepted bool
	fired    chan struct{}
	once     sync.Once
}

func newActionFault(point string) *actionFault {
	return &actionFault{point: point, fired: make(chan struct{})}
}

func (f *actionFault) fire() { f.once.Do(func() { close(f.fired) }) }

func (f *actionFault) wrap(c client.Client) client.Client {
	return interceptor.NewClient(noWatch{c}, interceptor.Funcs{
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			data, _ := patch.Data(obj)
			body := string(data)
			if f.point == "killed-after-decision" && strings.Contains(body, `"`+meshv1alpha1.AcceptedActionAnnotation+`":null`) {
				f.fire()
				<-ctx.Done() // the process is gone: the write never happens
				return ctx.Err()
			}
			err := c.Patch(ctx, obj, patch, opts...)
			if err == nil && strings.Contains(body, `"`+meshv1alpha1.AcceptedActionAnnotation+`":"`) {
				f.mu.Lock()
				f.accepted = true
				f.mu.Unlock()
			}
			return err
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
			f.mu.Lock()
			accepted := f.accepted
			f.mu.Unlock()
			if sub == "status" && accepted {
				switch f.point {
				case "status-fails":
					select {
					case <-f.fired:
					default:
						f.fire()
						return apierrors.NewConflict(schema.GroupResource{Group: "mesh.sluice.dev", Resource: "rollouts"}, obj.GetName(), nil)
					}
				case "killed-after-accept":
					f.fire()
					<-ctx.Done()
					return ctx.Err()
				}
			}
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	})
}

// noWatch adapts a manager's client to interceptor.NewClient (which wants a WithWatch; the
// reconciler never watches through its client).
type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("watch is not supported here")
}

// startFaultyManager runs a Rollout manager whose writes go through fault.
func startFaultyManager(t *testing.T, ns string, g *stubGates, fault *actionFault) *manager {
	t.Helper()
	mgr := newRolloutManagerWith(t, managerSetup{wrap: fault.wrap}, func(ctrl.Manager) controllers.GateChecker { return g }, ns)
	m := &manager{t: t, gates: g, stopFn: testenv.RunManager(mgr)}
	t.Cleanup(m.stop)
	return m
}

// twoGates: 20% → manual gate → 40% → manual gate → promotion. One promote passes one gate.
func twoGates(ns string) *meshv1alpha1.Rollout {
	ro := canaryRollout(ns, "checkout")
	ro.Spec.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{
		{SetWeight: ptr.To(int32(20))}, {Pause: &meshv1alpha1.PauseStep{}},
		{SetWeight: ptr.To(int32(40))}, {Pause: &meshv1alpha1.PauseStep{}},
	}
	return ro
}

func atGate(step int32) func(*meshv1alpha1.Rollout) bool {
	return func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhasePaused && ptr.Deref(r.Status.CurrentStep, -1) == step
	}
}

// actionEvents are the notes of the Rollout's ManualAction events, oldest first.
func (c *cluster) actionEvents(t *testing.T) []string {
	t.Helper()
	var list eventsv1.EventList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(c.ns)); err != nil {
		t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].EventTime.Before(&list.Items[j].EventTime) })
	var out []string
	for _, e := range list.Items {
		if e.Reason == "ManualAction" {
			out = append(out, e.Note)
		}
	}
	return out
}

// actionAtFirstGate starts a manager whose writes go through a fault at point, releases v2 to
// the first manual gate and sends action: it returns when the fault fired.
func actionAtFirstGate(t *testing.T, prefix, point string, action meshv1alpha1.RolloutAction) (*cluster, *stubGates, *manager) {
	t.Helper()
	c := newCluster(t, prefix)
	g := &stubGates{}
	fault := newActionFault(point)
	m := startFaultyManager(t, c.ns, g, fault)
	c.target(t, "checkout")
	create(t, twoGates(c.ns))
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	c.setImage(t, "checkout", "demo:v2")
	annotate(t, c.waitRollout(t, "checkout", "the first gate", atGate(1)), action)
	waitFired(t, fault)
	return c, g, m
}

func waitFired(t *testing.T, f *actionFault) {
	t.Helper()
	select {
	case <-f.fired:
	case <-time.After(30 * time.Second):
		t.Fatalf("the fault %q never fired", f.point)
	}
}

func noActionAnnotations(r *meshv1alpha1.Rollout) bool {
	_, a := r.Annotations[meshv1alpha1.ActionAnnotation]
	_, b := r.Annotations[meshv1alpha1.AcceptedActionAnnotation]
	return !a && !b
}

// 2. A manual action is never lost: a failed status write or a manager killed at any point
// between reading the annotation and confirming it still gets every abort applied, and a
// promote applied exactly once.
func TestManualActionIsNeverLost(t *testing.T) {
	t.Run("the status write fails after the action is accepted: abort still takes effect", func(t *testing.T) {
		c, _, _ := actionAtFirstGate(t, "action-fail", "status-fails", meshv1alpha1.ActionAbort)
		r := c.waitRollout(t, "checkout", "RolledBack", func(r *meshv1alpha1.Rollout) bool {
			return r.Status.Phase == meshv1alpha1.PhaseRolledBack && noActionAnnotations(r)
		})
		if r.Status.AbortReason != "Aborted" || r.Status.LastAction == nil || r.Status.LastAction.ID == "" {
			t.Errorf("abortReason %q lastAction %+v", r.Status.AbortReason, r.Status.LastAction)
		}
	})

	t.Run("killed after accepting, before deciding: the next manager applies the abort", func(t *testing.T) {
		c, g, m := actionAtFirstGate(t, "action-kill1", "killed-after-accept", meshv1alpha1.ActionAbort)
		m.stop()
		r := c.rolloutNow(t, "checkout")
		if v := r.Annotations[meshv1alpha1.AcceptedActionAnnotation]; !strings.HasPrefix(v, "abort/") || r.Status.Phase != meshv1alpha1.PhasePaused {
			t.Fatalf("after the crash: accepted action %q, phase %s; the abort must be pending, not applied nor lost", v, r.Status.Phase)
		}
		startManager(t, c.ns, g)
		r = c.waitRollout(t, "checkout", "RolledBack", func(r *meshv1alpha1.Rollout) bool {
			return r.Status.Phase == meshv1alpha1.PhaseRolledBack && noActionAnnotations(r)
		})
		if r.Status.AbortReason != "Aborted" {
			t.Errorf("abortReason %q", r.Status.AbortReason)
		}
	})

	t.Run("killed after deciding, before confirming: the promote is not applied twice", func(t *testing.T) {
		c, g, m := actionAtFirstGate(t, "action-kill2", "killed-after-decision", meshv1alpha1.ActionPromote)
		m.stop()
		r := c.rolloutNow(t, "checkout")
		accepted := r.Annotations[meshv1alpha1.AcceptedActionAnnotation]
		if r.Status.LastAction == nil || accepted != "promote/"+r.Status.LastAction.ID {
			t.Fatalf("after the crash: accepted %q, lastAction %+v; the decision must carry the action's ID", accepted, r.Status.LastAction)
		}
		id := r.Status.LastAction.ID
		startManager(t, c.ns, g)
		c.waitRollout(t, "checkout", "the second gate, annotation confirmed", func(r *meshv1alpha1.Rollout) bool { return atGate(3)(r) && noActionAnnotations(r) })
		// Give a second application every chance to happen: it would promote.
		_ = pollFor(2*time.Second, func() bool { return c.rolloutNow(t, "checkout").Status.Phase != meshv1alpha1.PhasePaused })
		r = c.rolloutNow(t, "checkout")
		if !atGate(3)(r) || r.Status.LastAction.ID != id || r.Status.StableSlot != meshv1alpha1.SlotA {
			t.Errorf("one promote was applied twice: phase %s step %v stable %s lastAction %+v", r.Status.Phase, r.Status.CurrentStep, r.Status.StableSlot, r.Status.LastAction)
		}

	})

	t.Run("an action written while another is pending waits its turn", func(t *testing.T) {
		c, g, m := actionAtFirstGate(t, "action-queue", "killed-after-accept", meshv1alpha1.ActionPromote)
		m.stop()
		annotate(t, c.rolloutNow(t, "checkout"), meshv1alpha1.ActionAbort) // a second action, while the promote is pending
		startManager(t, c.ns, g)
		r := c.waitRollout(t, "checkout", "the promote, then the abort", func(r *meshv1alpha1.Rollout) bool {
			return r.Status.Phase == meshv1alpha1.PhaseRolledBack && noActionAnnotations(r)
		})
		if r.Status.AbortReason != "Aborted" || len(r.Status.History) == 0 || r.Status.History[0].AbortReason != "Aborted" {
			t.Errorf("abortReason %q history %+v", r.Status.AbortReason, r.Status.History)
		}
		// The pending promote went first, then the abort: both were applied, once each.
		if err := pollFor(10*time.Second, func() bool {
			return reflect.DeepEqual(c.actionEvents(t), []string{"promote requested", "abort requested"})
		}); err != nil {
			t.Errorf("actions applied: %v, want the promote then the abort", c.actionEvents(t))
		}
	})
}
