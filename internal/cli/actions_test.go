package cli_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// decision is what the stand-in manager writes for an action: the status of the reconcile
// that takes it and, if set, the status of a later reconcile (traffic in force).
type decision struct {
	now, later *meshv1alpha1.RolloutStatus
}

// fakeManager stands in for the Sluice manager's handling of actions, writing what it writes
// (controllers/rollout_actions.go, Reconcile) in the same order and the same way:
//  1. accept: one merge patch guarded by the resourceVersion read moves the action from
//     mesh.sluice.dev/action to mesh.sluice.dev/action-accepted as "<action>/<id>";
//  2. decide: one status patch with optimistic locking writes status.lastAction (action,
//     time, id) together with the decision;
//  3. confirm: a merge patch removes mesh.sluice.dev/action-accepted.
//
// A later status is written once the command has printed the decision's state (printed, its
// stdout so far, shows the decision's condition message), as a later reconcile would come:
// never so early that the command's own reads of the decision see it instead.
//
// stop ends it and returns the actions it took.
func fakeManager(t *testing.T, ns, name string, printed func() string, decide func(a meshv1alpha1.RolloutAction, st meshv1alpha1.RolloutStatus) decision) (stop func() []meshv1alpha1.RolloutAction) {
	// Stopping takes effect between actions: an action being taken is taken whole.
	ctx := context.Background()
	done := make(chan struct{})
	var (
		mu    sync.Mutex
		taken []meshv1alpha1.RolloutAction
		wg    sync.WaitGroup
	)
	key := client.ObjectKey{Namespace: ns, Name: name}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; ; time.Sleep(50 * time.Millisecond) {
			select {
			case <-done:
				return
			default:
			}
			ro := &meshv1alpha1.Rollout{}
			if err := env.Client.Get(ctx, key, ro); err != nil {
				continue
			}
			v, ok := ro.Annotations[meshv1alpha1.ActionAnnotation]
			if !ok {
				continue
			}
			a := meshv1alpha1.RolloutAction(v)
			id := fmt.Sprintf("%016x", n)
			n++
			accept := fmt.Sprintf(`{"metadata":{"resourceVersion":%q,"annotations":{%q:null,%q:%q}}}`,
				ro.ResourceVersion, meshv1alpha1.ActionAnnotation, meshv1alpha1.AcceptedActionAnnotation, string(a)+"/"+id)
			if err := env.Client.Patch(ctx, ro, client.RawPatch("application/merge-patch+json", []byte(accept))); err != nil {
				continue // a conflict: the next round reads again
			}
			d := decide(a, ro.Status)
			before := ro.DeepCopy()
			ro.Status = *d.now
			ro.Status.ObservedGeneration = ro.Generation
			ro.Status.LastAction = &meshv1alpha1.ActionRecord{Action: a, Time: metav1.NewTime(now), ID: id}
			if err := env.Client.Status().Patch(ctx, ro, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})); err != nil {
				t.Errorf("the stand-in manager's status write: %v", err)
				return
			}
			confirm := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, meshv1alpha1.AcceptedActionAnnotation)
			if err := env.Client.Patch(ctx, ro, client.RawPatch("application/merge-patch+json", []byte(confirm))); err != nil {
				t.Errorf("the stand-in manager's confirm: %v", err)
				return
			}
			mu.Lock()
			taken = append(taken, a)
			mu.Unlock()
			if d.later != nil {
				shown := "taken by the manager"
				if len(d.now.Conditions) > 0 {
					shown = d.now.Conditions[0].Message
				}
				for deadline := time.Now().Add(20 * time.Second); !strings.Contains(printed(), shown); time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Errorf("the command did not print %q within 20s; stdout:\n%s", shown, printed())
						return
					}
				}
				writeStatusRetrying(t, key, *d.later)
			}
		}
	}()
	return func() []meshv1alpha1.RolloutAction {
		close(done)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return taken
	}
}

// writeStatusRetrying replaces the status (keeping lastAction), retrying conflicts.
func writeStatusRetrying(t *testing.T, key client.ObjectKey, st meshv1alpha1.RolloutStatus) {
	for range 20 {
		ro := &meshv1alpha1.Rollout{}
		if err := env.Client.Get(context.Background(), key, ro); err != nil {
			t.Errorf("reading %s: %v", key, err)
			return
		}
		st.LastAction, st.ObservedGeneration = ro.Status.LastAction, ro.Generation
		ro.Status = st
		err := env.Client.Status().Update(context.Background(), ro)
		if err == nil || !apierrors.IsConflict(err) {
			if err != nil {
				t.Errorf("writing the status of %s: %v", key, err)
			}
			return
		}
	}
}

// canaryAt is a gate-less canary release (steps: setWeight 20, pause 1m, setWeight 50, pause)
// at step i, waiting for reason.
func canaryAt(i, weight int32, phase meshv1alpha1.RolloutPhase, reason, msg string) *meshv1alpha1.RolloutStatus {
	return &meshv1alpha1.RolloutStatus{Phase: phase, StableSlot: meshv1alpha1.SlotA, StableRevision: revV1, CanaryRevision: revV2,
		CurrentStep: ptr.To(i), CanaryWeight: weight, Replicas: 2, StepStartTime: at(-time.Minute),
		Conditions: []metav1.Condition{cond("Ready", false, reason, msg), cond("Reconciling", true, reason, msg)}}
}

func rolledBackStatus() *meshv1alpha1.RolloutStatus {
	msg := "revision " + revV2 + " was rolled back (Aborted); change the target or use the retry action"
	return &meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.PhaseRolledBack, StableSlot: meshv1alpha1.SlotA, StableRevision: revV1, CanaryRevision: revV2,
		Replicas: 2, AbortReason: "Aborted", Conditions: []metav1.Condition{cond("Ready", false, "RolledBack", msg), cond("Stalled", true, "RolledBack", msg)}}
}

// TestActions: each action is written to the annotation, taken by the (stand-in) manager, and
// the command prints what changed once status records it.
func TestActions(t *testing.T) {
	f := newFixture(t, "actions")
	atPause := canaryAt(3, 50, meshv1alpha1.PhasePaused, "WaitingForPromote", "step 4/4: waiting for a promote action at 50%")
	for _, tc := range []struct {
		name   string
		args   []string
		start  *meshv1alpha1.RolloutStatus
		decide func(a meshv1alpha1.RolloutAction, st meshv1alpha1.RolloutStatus) decision
		want   []meshv1alpha1.RolloutAction
	}{
		{"promote", []string{"promote"}, atPause, func(a meshv1alpha1.RolloutAction, st meshv1alpha1.RolloutStatus) decision {
			next := canaryAt(4, 100, meshv1alpha1.PhasePromoting, "WaitingForTraffic", "promotion: waiting for the route to carry a=0% b=100% (it carries a=50% b=50%)")
			return decision{now: next}
		}, []meshv1alpha1.RolloutAction{meshv1alpha1.ActionPromote}},
		{"pause", []string{"pause"}, canaryAt(1, 20, meshv1alpha1.PhaseProgressing, "Progressing", "step 2/4: pause until 2026-03-01T12:00:00Z at 20%"),
			func(a meshv1alpha1.RolloutAction, st meshv1alpha1.RolloutStatus) decision {
				next := canaryAt(1, 20, meshv1alpha1.PhasePaused, "Paused", "paused (pause action): weights frozen at 20% on the canary")
				next.ManualPause = true
				return decision{now: next}
			}, []meshv1alpha1.RolloutAction{meshv1alpha1.ActionPause}},
		{"abort", []string{"abort"}, atPause, func(a meshv1alpha1.RolloutAction, st meshv1alpha1.RolloutStatus) decision {
			next := rolledBackStatus()
			next.Phase = meshv1alpha1.PhaseRollingBack
			return decision{now: next}
		}, []meshv1alpha1.RolloutAction{meshv1alpha1.ActionAbort}},
		{"retry", []string{"retry"}, rolledBackStatus(), func(a meshv1alpha1.RolloutAction, st meshv1alpha1.RolloutStatus) decision {
			return decision{now: canaryAt(0, 0, meshv1alpha1.PhaseProgressing, "WaitingForDataPlane", "step 1/4: proving that slot b answers through the data plane before it gets traffic: waiting for the probe")}
		}, []meshv1alpha1.RolloutAction{meshv1alpha1.ActionRetry}},
		// resume with nothing paused: taken, nothing changes, and the command says so.
		{"resume-nothing", []string{"resume"}, atPause, func(a meshv1alpha1.RolloutAction, st meshv1alpha1.RolloutStatus) decision {
			return decision{now: &st}
		}, []meshv1alpha1.RolloutAction{meshv1alpha1.ActionResume}},
		// --full is the action promote-full: every remaining step skipped, then promoted.
		{"promote-full", []string{"promote", "--full"}, canaryAt(1, 20, meshv1alpha1.PhaseProgressing, "Progressing", "step 2/4: pause until 2026-03-01T12:00:00Z at 20%"),
			func(a meshv1alpha1.RolloutAction, st meshv1alpha1.RolloutStatus) decision {
				promoted := &meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.PhaseHealthy, StableSlot: meshv1alpha1.SlotB, StableRevision: revV2, Replicas: 2,
					History:    []meshv1alpha1.ReleaseRecord{{Revision: revV2, Outcome: meshv1alpha1.OutcomePromoted, EndTime: *at(0)}},
					Conditions: []metav1.Condition{cond("Ready", true, "Healthy", "revision "+revV2+" serves all traffic from slot b")}}
				return decision{
					now:   canaryAt(4, 100, meshv1alpha1.PhasePromoting, "WaitingForTraffic", "promotion: waiting for the route to carry a=0% b=100% (it carries a=80% b=20%)"),
					later: promoted,
				}
			}, []meshv1alpha1.RolloutAction{meshv1alpha1.ActionPromoteFull}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named(tc.name), Spec: canarySpec("checkout")}, tc.start)
			out := &syncBuffer{}
			stop := fakeManager(t, "actions", tc.name, out.String, tc.decide)
			args := append(append([]string{}, tc.args...), tc.name, "-n", "actions", "--timeout", "30s", "--interval", "50ms")
			r := runTo(t, out, args...)
			taken := stop()
			if r.code != 0 {
				t.Fatalf("exit code %d, stdout: %s, stderr: %s", r.code, r.stdout, r.stderr)
			}
			if fmt.Sprint(taken) != fmt.Sprint(tc.want) {
				t.Errorf("the manager took %v, want %v", taken, tc.want)
			}
			golden(t, "action-"+tc.name, strings.ReplaceAll(r.stdout, revV2, "REV2"))
		})
	}
}

// TestActionNotTaken: with no manager, the command gives up after --timeout with exit code 3,
// and the request stays for the manager to take when it runs.
func TestActionNotTaken(t *testing.T) {
	f := newFixture(t, "actions-idle")
	f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named("checkout"), Spec: canarySpec("checkout")},
		canaryAt(3, 50, meshv1alpha1.PhasePaused, "WaitingForPromote", "step 4/4: waiting for a promote action at 50%"))
	r := run(t, "promote", "checkout", "-n", "actions-idle", "--timeout", "1s")
	wantErr := "the Sluice manager has not taken the promote action on Rollout actions-idle/checkout within 1s: is it running? " +
		"The request stays in annotation mesh.sluice.dev/action and is applied when the manager runs; withdraw it with: kubectl annotate sro checkout -n actions-idle mesh.sluice.dev/action-\n"
	if r.code != 3 || r.stderr != wantErr || r.stdout != "" {
		t.Errorf("exit code %d, stdout %q, stderr:\n%s\nwant 3 and:\n%s", r.code, r.stdout, r.stderr, wantErr)
	}
	ro := &meshv1alpha1.Rollout{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: "actions-idle", Name: "checkout"}, ro); err != nil {
		t.Fatal(err)
	}
	if got := ro.Annotations[meshv1alpha1.ActionAnnotation]; got != "promote" {
		t.Errorf("annotation %s = %q after the timeout, want promote (kept for the manager)", meshv1alpha1.ActionAnnotation, got)
	}

	// A second request while one waits is refused: it would replace the first unseen.
	r = run(t, "abort", "checkout", "-n", "actions-idle", "--timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, `already has the action "promote" waiting for the manager`) {
		t.Errorf("a second action: exit code %d, stderr %q; want 1 naming the waiting action", r.code, r.stderr)
	}
}
