package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// actionCmd is one manual action command.
type actionCmd struct {
	action      meshv1alpha1.RolloutAction
	short, long string
}

// actions are the commands for the values the manager accepts in the action annotation
// (controllers/rollout_actions.go, internal/rollout/machine.go consumeAction).
var actions = []actionCmd{
	{meshv1alpha1.ActionPromote, "Skip the step the release waits at (pause, analysis, blue-green switch)",
		`Skip what the release waits at: a pause (timed or until promoted), an analysis step, the
blue-green pre-promotion checks and switch, or a hold on gates that keep giving no verdict.
With --full (the action promote-full), skip every remaining step and promote, once the canary
has answered through the data plane, and wait until the release is promoted.`},
	{meshv1alpha1.ActionAbort, "Roll the release back: all traffic to the stable revision at once",
		`Roll the release back: the route sends all traffic to the stable slot in the manager's next
reconcile; the canary pods stay up for scaleDownDelay. The Rollout is then RolledBack until
the target Deployment changes or the release is retried.`},
	{meshv1alpha1.ActionRetry, "Release a rolled-back revision again, from the first step",
		`Release the rolled-back revision again, from the first step (the target Deployment still
asks for it).`},
	{meshv1alpha1.ActionPause, "Freeze the release: no weight change, no promotion, no rollback",
		`Freeze the release where it is: the weights stay, nothing is promoted or rolled back, gate
checks stop, until resume. spec.paused does the same from Git.`},
	{meshv1alpha1.ActionResume, "Undo pause",
		`Undo the pause action. A release paused by spec.paused stays paused until spec.paused is false.`},
}

type actionOptions struct {
	*options
	action   meshv1alpha1.RolloutAction
	full     bool
	timeout  time.Duration
	interval time.Duration
}

func newAction(o *options, a actionCmd) *cobra.Command {
	ao := &actionOptions{options: o, action: a.action}
	cmd := &cobra.Command{
		Use:   string(a.action) + " NAME",
		Short: a.short,
		Long: a.long + `

The action goes through the annotation ` + meshv1alpha1.ActionAnnotation + `=` + string(a.action) + ` (what
"kubectl annotate" would write); the command waits until the manager has taken it (its ID in
status.lastAction) and prints what changed. The manager applies an action exactly once, also
across a restart. If the manager does not take it within --timeout, the request stays in the
annotation and is applied when the manager runs again (exit code 3); remove the annotation to
withdraw it.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeRollouts(o, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ao.full {
				ao.action = meshv1alpha1.ActionPromoteFull
				if !cmd.Flags().Changed("timeout") {
					ao.timeout = 0 // until the promotion is in force
				}
			}
			return ao.run(cmd.Context(), args[0])
		},
	}
	cmd.Flags().DurationVar(&ao.timeout, "timeout", time.Minute, "How long to wait for the manager (with --full: for the promotion; 0: no limit).")
	cmd.Flags().DurationVar(&ao.interval, "interval", 200*time.Millisecond, "How often the Rollout is read while waiting.")
	_ = cmd.Flags().MarkHidden("interval")
	if a.action == meshv1alpha1.ActionPromote {
		cmd.Flags().BoolVar(&ao.full, "full", false, "Skip every remaining step (action promote-full) and wait until the release is promoted.")
	}
	return cmd
}

// errNotTaken: the manager did not take the action in time.
var errNotTaken = errors.New("not taken")

func (ao *actionOptions) run(ctx context.Context, name string) error {
	k, err := ao.connect()
	if err != nil {
		return err
	}
	if ao.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ao.timeout)
		defer cancel()
	}
	before, after, id, err := ao.send(ctx, k, name)
	if err != nil {
		return ao.explain(k, name, err)
	}
	ao.report(before, after, id)
	if !ao.full {
		return nil
	}
	return ao.promoteFully(ctx, k, name, after)
}

// explain turns a timeout into the exit code and the advice a person needs.
func (ao *actionOptions) explain(k *kube, name string, err error) error {
	if errors.Is(err, errNotTaken) || errors.Is(err, context.DeadlineExceeded) {
		return exitWith(exitTimeout, "the Sluice manager has not taken the %s action on Rollout %s/%s within %s: is it running? "+
			"The request stays in annotation %s and is applied when the manager runs; withdraw it with: kubectl annotate sro %s -n %s %s-",
			ao.action, k.namespace, name, ao.timeout, meshv1alpha1.ActionAnnotation, name, k.namespace, meshv1alpha1.ActionAnnotation)
	}
	return err
}

// send writes the action annotation and waits until the manager has taken it. It returns the
// Rollout before, the Rollout once status records the action, and the action's ID.
func (ao *actionOptions) send(ctx context.Context, k *kube, name string) (before, after *meshv1alpha1.Rollout, id string, err error) {
	key := client.ObjectKey{Namespace: k.namespace, Name: name}
	for attempt := 0; ; attempt++ {
		before = &meshv1alpha1.Rollout{}
		if err := k.c.Get(ctx, key, before); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil, "", fmt.Errorf("Rollout %s/%s not found", k.namespace, name) //nolint:staticcheck // a kind name starts the sentence
			}
			return nil, nil, "", fmt.Errorf("reading Rollout %s/%s: %w", k.namespace, name, err)
		}
		if pending, ok := before.Annotations[meshv1alpha1.ActionAnnotation]; ok {
			// Overwriting would drop someone's request unseen.
			return nil, nil, "", fmt.Errorf("Rollout %s/%s already has the action %q waiting for the manager (annotation %s); wait for it, or withdraw it with: kubectl annotate sro %s -n %s %s-", //nolint:staticcheck
				k.namespace, name, pending, meshv1alpha1.ActionAnnotation, name, k.namespace, meshv1alpha1.ActionAnnotation)
		}
		// Guarded by the version read, so a request written meanwhile is seen, not replaced.
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": before.ResourceVersion,
			"annotations":     map[string]string{meshv1alpha1.ActionAnnotation: string(ao.action)},
		}})
		sent := before.DeepCopy()
		err := k.c.Patch(ctx, sent, client.RawPatch(types.MergePatchType, patch))
		if apierrors.IsConflict(err) && attempt < 20 {
			continue // the manager wrote status meanwhile: read again
		}
		if err != nil {
			return nil, nil, "", fmt.Errorf("writing annotation %s on Rollout %s/%s: %w", meshv1alpha1.ActionAnnotation, k.namespace, name, err)
		}
		break
	}
	after, id, err = ao.awaitTaken(ctx, k, key, before)
	return before, after, id, err
}

// awaitTaken waits for the manager's three steps (controllers/rollout_actions.go): it moves the
// request to the accepted-action annotation as "<action>/<id>", records the ID in
// status.lastAction together with the decision the action causes, then removes the accepted
// annotation. Taken means status carries the ID. A reading that misses the accepted
// annotation falls back on a new lastAction of this action.
func (ao *actionOptions) awaitTaken(ctx context.Context, k *kube, key client.ObjectKey, before *meshv1alpha1.Rollout) (*meshv1alpha1.Rollout, string, error) {
	prevID := ""
	if la := before.Status.LastAction; la != nil {
		prevID = la.ID
	}
	id := ""
	tick := time.NewTicker(ao.interval)
	defer tick.Stop()
	for {
		ro := &meshv1alpha1.Rollout{}
		err := k.c.Get(ctx, key, ro)
		switch {
		case apierrors.IsNotFound(err):
			return nil, "", fmt.Errorf("Rollout %s was deleted before the manager took the action", key) //nolint:staticcheck
		case err != nil && ctx.Err() == nil:
			return nil, "", fmt.Errorf("reading Rollout %s: %w", key, err)
		case err == nil:
			if a, aid, ok := strings.Cut(ro.Annotations[meshv1alpha1.AcceptedActionAnnotation], "/"); ok && a == string(ao.action) {
				id = aid
			}
			if la := ro.Status.LastAction; la != nil && la.Action == ao.action && la.ID != prevID && (id == "" || la.ID == id) {
				if _, waiting := ro.Annotations[meshv1alpha1.ActionAnnotation]; !waiting {
					return ro, la.ID, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil, "", errNotTaken
		case <-tick.C:
		}
	}
}

// report prints what the action changed, as status says right after the manager took it (the
// decision is in the same status write as the action's ID).
func (ao *actionOptions) report(before, after *meshv1alpha1.Rollout, id string) {
	_, _ = fmt.Fprintf(ao.stdout, "%s: taken by the manager (id %s)\n", ao.action, id)
	changes := statusChanges(before, after)
	for _, c := range changes {
		_, _ = fmt.Fprintf(ao.stdout, "  %-13s %s -> %s\n", c[0], c[1], c[2])
	}
	if len(changes) == 0 {
		_, _ = fmt.Fprintf(ao.stdout, "  nothing changed: %s\n", noChangeHint(ao.action, after))
	}
	if after.Spec.Paused && (ao.action == meshv1alpha1.ActionResume || ao.action == meshv1alpha1.ActionPromote) {
		_, _ = fmt.Fprintln(ao.stdout, "  note: spec.paused is true, so the release stays paused until spec.paused is false")
	}
}

// statusChanges lists the fields a person follows that differ: name, before, after.
func statusChanges(before, after *meshv1alpha1.Rollout) [][3]string {
	b, a := &before.Status, &after.Status
	var out [][3]string
	add := func(name, x, y string) {
		if x != y {
			out = append(out, [3]string{name, x, y})
		}
	}
	add("phase", orDash(string(b.Phase)), orDash(string(a.Phase)))
	add("step", stepOf(before), stepOf(after))
	add("weight", fmt.Sprintf("%d%%", b.CanaryWeight), fmt.Sprintf("%d%%", a.CanaryWeight))
	add("paused", pausedOf(before), pausedOf(after))
	add("stable", fmt.Sprintf("slot %s revision %s", stableSlot(before), orDash(b.StableRevision)), fmt.Sprintf("slot %s revision %s", stableSlot(after), orDash(a.StableRevision)))
	add("canary", orDash(b.CanaryRevision), orDash(a.CanaryRevision))
	add("abort reason", orDash(b.AbortReason), orDash(a.AbortReason))
	add("waiting for", waitingFor(before), waitingFor(after))
	return out
}

func stepOf(ro *meshv1alpha1.Rollout) string {
	if ro.Status.CurrentStep == nil || ro.Spec.Strategy.Canary == nil {
		return "-"
	}
	n := len(rollout.Steps(&ro.Spec))
	if i := int(*ro.Status.CurrentStep); i < n {
		return fmt.Sprintf("%d/%d", i+1, n)
	}
	return "all done"
}

func pausedOf(ro *meshv1alpha1.Rollout) string {
	switch {
	case ro.Status.ManualPause && ro.Spec.Paused:
		return "by the pause action and spec.paused"
	case ro.Status.ManualPause:
		return "by the pause action"
	case ro.Spec.Paused:
		return "by spec.paused"
	}
	return "no"
}

// waitingFor is the reason the release waits or is stalled ("-": neither).
func waitingFor(ro *meshv1alpha1.Rollout) string {
	for _, t := range []string{meshv1alpha1.ConditionStalled, meshv1alpha1.ConditionReconciling} {
		if c := meta.FindStatusCondition(ro.Status.Conditions, t); c != nil && c.Status == metav1.ConditionTrue {
			return c.Reason
		}
	}
	return "-"
}

// noChangeHint says why an action the manager took may have changed nothing.
func noChangeHint(a meshv1alpha1.RolloutAction, ro *meshv1alpha1.Rollout) string {
	now := progressLine(ro)
	switch a {
	case meshv1alpha1.ActionPromote:
		return "a promote only skips a step that waits (pause, analysis, the blue-green switch) once its traffic is in force; the release: " + now
	case meshv1alpha1.ActionRetry:
		return "retry only restarts a rolled-back release; the Rollout: " + now
	case meshv1alpha1.ActionAbort:
		return "abort only rolls back a release under way; the Rollout: " + now
	}
	return "the Rollout: " + now
}

// promoteFully waits, after promote-full was taken, until the release of the revision under
// way is promoted (exit 0) or rolled back (exit 1).
func (ao *actionOptions) promoteFully(ctx context.Context, k *kube, name string, ro *meshv1alpha1.Rollout) error {
	key := client.ObjectKey{Namespace: k.namespace, Name: name}
	rev := ro.Status.CanaryRevision
	if rev == "" {
		// The first promote may have ended the release already (its last wait).
		if h := ro.Status.History; len(h) > 0 && h[0].Outcome == meshv1alpha1.OutcomePromoted {
			_, _ = fmt.Fprintf(ao.stdout, "revision %s promoted\n", h[0].Revision)
			return nil
		}
		return fmt.Errorf("no release under way on Rollout %s/%s: nothing to promote", k.namespace, name)
	}
	prevLine := ""
	tick := time.NewTicker(ao.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return exitWith(exitTimeout, "the release of revision %s was not promoted within %s; it is at: %s", rev, ao.timeout, progressLine(ro))
		case <-tick.C:
		}
		next := &meshv1alpha1.Rollout{}
		if err := k.c.Get(ctx, key, next); err != nil {
			if ctx.Err() != nil {
				continue
			}
			return fmt.Errorf("reading Rollout %s: %w", key, err)
		}
		ro = next
		st := &ro.Status
		switch {
		case st.StableRevision == rev && st.CanaryRevision == "":
			_, _ = fmt.Fprintf(ao.stdout, "revision %s promoted: slot %s is stable\n", rev, st.StableSlot)
			return nil
		case st.CanaryRevision != rev:
			return fmt.Errorf("the release of revision %s ended otherwise (Rollout now: %s)", rev, progressLine(ro))
		case st.Phase == meshv1alpha1.PhaseRollingBack || st.Phase == meshv1alpha1.PhaseRolledBack:
			return exitWith(exitRolledBack, "revision %s is being rolled back (%s)", rev, st.AbortReason)
		case st.ManualPause || ro.Spec.Paused:
			return fmt.Errorf("the release is paused (%s): resume it, then promote again", pausedOf(ro))
		}
		if line := progressLine(ro); line != prevLine {
			_, _ = fmt.Fprintln(ao.stdout, "  "+line)
			prevLine = line
		}
	}
}
