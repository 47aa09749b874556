package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// TestStatusExitCodes: status ends with the exit code of each way a release ends, judged on
// the revision the target Deployment asks for.
func TestStatusExitCodes(t *testing.T) {
	f := newFixture(t, "status")
	for _, tc := range []struct {
		name string
		// status is the Rollout's status, given the target's revision and another one.
		status func(target, other string) meshv1alpha1.RolloutStatus
		code   int
		// out is the whole output (progress lines and the last line).
		out string
	}{
		{"promoted", func(target, other string) meshv1alpha1.RolloutStatus {
			return meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.PhaseHealthy, StableSlot: meshv1alpha1.SlotB, StableRevision: target,
				History:    []meshv1alpha1.ReleaseRecord{{Revision: target, Outcome: meshv1alpha1.OutcomePromoted, EndTime: *at(-time.Minute)}},
				Conditions: []metav1.Condition{cond("Ready", true, "Healthy", "serving")}}
		}, 0, "revision TARGET promoted: slot b serves all traffic\n"},
		{"rolled-back", func(target, other string) meshv1alpha1.RolloutStatus {
			return meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.PhaseRolledBack, StableSlot: meshv1alpha1.SlotA, StableRevision: other, CanaryRevision: target,
				AbortReason: "Aborted",
				History:     []meshv1alpha1.ReleaseRecord{{Revision: target, Outcome: meshv1alpha1.OutcomeRolledBack, AbortReason: "Aborted", Message: "aborted by a manual action", EndTime: *at(-time.Minute)}},
				Conditions:  []metav1.Condition{cond("Ready", false, "RolledBack", "rolled back"), cond("Stalled", true, "RolledBack", "rolled back")}}
		}, 1, "revision TARGET was rolled back (Aborted): aborted by a manual action; revision OTHER serves all traffic\n"},
		{"stalled", func(target, other string) meshv1alpha1.RolloutStatus {
			return meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.PhaseHolding, StableSlot: meshv1alpha1.SlotA, StableRevision: other, CanaryRevision: target,
				CurrentStep: ptr.To(int32(2)), CanaryWeight: 5,
				Conditions: []metav1.Condition{cond("Ready", false, "MaxHoldExceeded", "Prometheus unreachable for 10m"), cond("Stalled", true, "MaxHoldExceeded", "Prometheus unreachable for 10m")}}
		}, 2, "Rollout status/stalled is stalled (MaxHoldExceeded): Prometheus unreachable for 10m\n"},
		{"failed", func(target, other string) meshv1alpha1.RolloutStatus {
			return meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.PhaseFailed, StableSlot: meshv1alpha1.SlotA,
				Conditions: []metav1.Condition{cond("Stalled", true, "InitializationTimeout", "slot a did not get 1 ready pods")}}
		}, 2, "Rollout status/failed failed: InitializationTimeout: slot a did not get 1 ready pods\n"},
		{"still-progressing", func(target, other string) meshv1alpha1.RolloutStatus {
			return meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.PhasePaused, StableSlot: meshv1alpha1.SlotA, StableRevision: other, CanaryRevision: target,
				CurrentStep: ptr.To(int32(3)), CanaryWeight: 50,
				Conditions: []metav1.Condition{cond("Reconciling", true, "WaitingForPromote", "step 4/4: waiting for a promote action at 50%")}}
		}, 3, "Paused  step 4/4  weight 50%  WaitingForPromote: step 4/4: waiting for a promote action at 50%\n"},
		// Healthy on the previous revision: the manager has not seen the target's change yet.
		{"not-picked-up", func(target, other string) meshv1alpha1.RolloutStatus {
			return meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.PhaseHealthy, StableSlot: meshv1alpha1.SlotA, StableRevision: other,
				Conditions: []metav1.Condition{cond("Ready", true, "Healthy", "serving")}}
		}, 3, "waiting for the manager to pick up revision TARGET of Deployment not-picked-up\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := f.target(tc.name, "example.com/app:v2")
			other := "0123456789"
			st := tc.status(target, other)
			spec := canarySpec(tc.name)
			f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named(tc.name), Spec: spec}, &st)
			r := run(t, "status", tc.name, "-n", "status", "--timeout", "1500ms")
			want := strings.NewReplacer("TARGET", target, "OTHER", other).Replace(tc.out)
			if r.code != tc.code || r.stdout != want {
				t.Errorf("exit code %d, stdout:\n%s\nwant exit code %d, stdout:\n%s\nstderr: %s", r.code, r.stdout, tc.code, want, r.stderr)
			}
			if tc.code == 3 && !strings.Contains(r.stderr, "timed out after 1.5s") {
				t.Errorf("stderr %q does not say it timed out", r.stderr)
			}
		})
	}
	if r := run(t, "status", "missing", "-n", "status"); r.code != 4 || !strings.Contains(r.stderr, "Rollout status/missing") {
		t.Errorf("a missing Rollout: exit code %d, stderr %q; want 4 naming the Rollout", r.code, r.stderr)
	}
}

// TestStatusFollowsTheRelease: status keeps waiting through the steps of a release (one line per
// change) and exits 0 once the release of the target's revision is promoted.
func TestStatusFollowsTheRelease(t *testing.T) {
	f := newFixture(t, "status-follow")
	target := f.target("checkout", "example.com/checkout:v2")
	step := func(i, weight int32, reason, msg string) meshv1alpha1.RolloutStatus {
		return meshv1alpha1.RolloutStatus{Phase: meshv1alpha1.PhaseProgressing, StableSlot: meshv1alpha1.SlotA, StableRevision: revV1, CanaryRevision: target,
			CurrentStep: ptr.To(i), CanaryWeight: weight, Conditions: []metav1.Condition{cond("Reconciling", true, reason, msg)}}
	}
	first := step(0, 0, "WaitingForPods", "slot b: waiting for 2 ready pods of revision "+target)
	ro := f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named("checkout"), Spec: canarySpec("checkout")}, &first)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := command(ctx, "status", "checkout", "-n", "status-follow", "--interval", "100ms", "--timeout", "50s")
	out := &syncBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		"Progressing  step 1/4  weight 0%  WaitingForPods: slot b: waiting for 2 ready pods of revision " + target + "\n",
		"Progressing  step 2/4  weight 20%  Progressing: step 2/4: pause until 2026-03-01T12:01:00Z at 20%\n",
		"Progressing  step 4/4  weight 50%  WaitingForPromote: step 4/4: waiting for a promote action at 50%\n",
		"revision " + target + " promoted: slot b serves all traffic\n",
	}
	// Each next state is written once the command has printed the one in force, so that a slow
	// poll on a loaded machine can't skip a state.
	for i, st := range []meshv1alpha1.RolloutStatus{
		step(1, 20, "Progressing", "step 2/4: pause until 2026-03-01T12:01:00Z at 20%"),
		step(3, 50, "WaitingForPromote", "step 4/4: waiting for a promote action at 50%"),
		{Phase: meshv1alpha1.PhaseHealthy, StableSlot: meshv1alpha1.SlotB, StableRevision: target,
			History:    []meshv1alpha1.ReleaseRecord{{Revision: target, Outcome: meshv1alpha1.OutcomePromoted, EndTime: *at(0)}},
			Conditions: []metav1.Condition{cond("Ready", true, "Healthy", "serving")}},
	} {
		for deadline := time.Now().Add(20 * time.Second); !strings.Contains(out.String(), lines[i]); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 20s the command has not printed %q; stdout:\n%s", lines[i], out.String())
			}
		}
		ro.Status = st
		ro.Status.ObservedGeneration = ro.Generation
		f.writeStatus(ro)
	}
	code := exitCode(t, cmd.Wait())
	want := strings.Join(lines, "")
	if code != 0 || out.String() != want {
		t.Errorf("exit code %d, stdout:\n%s\nwant 0 and:\n%s", code, out.String(), want)
	}
}
