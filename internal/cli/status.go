package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// Exit codes of `status`.
const (
	exitHealthy    = 0
	exitRolledBack = 1
	exitStalled    = 2
	exitTimeout    = 3
	exitUnknown    = 4
)

type statusOptions struct {
	*options
	timeout  time.Duration
	interval time.Duration
}

func newStatus(o *options) *cobra.Command {
	so := &statusOptions{options: o}
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Wait until the release of a Rollout ends; the exit code says how it ended",
		Long: `Wait until the release of the Rollout ends, printing a line whenever its phase, step, weight
or what it waits for changes. The release is the one of the revision the target Deployment
asks for now: right after a change of the Deployment, status waits for the manager to pick
the new revision up instead of reporting the previous release.

Exit codes:
  0  the target's revision is stable and serves all traffic (promoted, or nothing to release)
  1  the release was rolled back (all traffic is back on the stable revision)
  2  the release failed or stalled: it needs a person (the Stalled condition says why), the
     stable slot never became ready, or the Rollout was deleted
  3  --timeout passed before the release ended
  4  status could not be told: no such Rollout, no access, a bad kubeconfig or flag

A release that waits at a pause step for a promote action keeps status waiting: promote it
(kubectl sluice promote NAME) or bound the wait with --timeout.`,
		Example:           `  kubectl apply -f deploy.yaml && kubectl sluice status checkout -n shop --timeout 30m`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeRollouts(o, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			err := so.run(cmd.Context(), args[0])
			var ee *exitError
			if err != nil && !errors.As(err, &ee) {
				return &exitError{code: exitUnknown, msg: "Error: " + err.Error()}
			}
			return err
		},
	}
	cmd.Flags().DurationVar(&so.timeout, "timeout", 0, "Give up after this long (exit code 3); 0 waits as long as it takes.")
	cmd.Flags().DurationVar(&so.interval, "interval", time.Second, "How often the Rollout is read.")
	_ = cmd.Flags().MarkHidden("interval")
	return cmd
}

// outcome is what status concludes from one reading.
type outcome struct {
	done bool
	code int
	// line says where the release is (not done) or how it ended (done).
	line string
}

func (so *statusOptions) run(ctx context.Context, name string) error {
	k, err := so.connect()
	if err != nil {
		return err
	}
	ro, target, err := readForStatus(ctx, k.c, k.namespace, name)
	if err != nil {
		return err
	}
	if so.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, so.timeout)
		defer cancel()
	}
	prev, lastErr := "", ""
	tick := time.NewTicker(so.interval)
	defer tick.Stop()
	for {
		if ro != nil {
			o := judge(ro, target)
			if o.line != prev {
				_, _ = fmt.Fprintln(so.stdout, o.line)
				prev = o.line
			}
			if o.done {
				if o.code == 0 {
					return nil
				}
				return &exitError{code: o.code}
			}
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return exitWith(exitTimeout, "timed out after %s: the release of Rollout %s/%s has not ended", so.timeout, k.namespace, name)
			}
			return exitWith(exitUnknown, "interrupted before the release of Rollout %s/%s ended", k.namespace, name)
		case <-tick.C:
		}
		next, nextTarget, err := readForStatus(ctx, k.c, k.namespace, name)
		switch {
		case err != nil && ctx.Err() != nil:
			continue // the deadline: reported above
		case errors.Is(err, errRolloutGone):
			return exitWith(exitStalled, "Rollout %s/%s was deleted before its release ended", k.namespace, name)
		case err != nil:
			// A passing API error must not fail a pipeline: say so once and read again.
			if err.Error() != lastErr {
				_, _ = fmt.Fprintf(so.stderr, "%v (retrying)\n", err)
				lastErr = err.Error()
			}
			continue
		}
		lastErr = ""
		ro, target = next, nextTarget
	}
}

var errRolloutGone = errors.New("rollout not found")

// readForStatus reads the Rollout and its target Deployment (nil when it does not exist).
func readForStatus(ctx context.Context, c client.Client, ns, name string) (*meshv1alpha1.Rollout, *appsv1.Deployment, error) {
	ro := &meshv1alpha1.Rollout{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ro); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("%w: Rollout %s/%s", errRolloutGone, ns, name)
		}
		return nil, nil, fmt.Errorf("reading Rollout %s/%s: %w", ns, name, err)
	}
	t := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: ro.Spec.TargetRef.Name}, t); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, nil, fmt.Errorf("reading the target Deployment %s/%s: %w", ns, ro.Spec.TargetRef.Name, err)
		}
		t = nil
	}
	return ro, t, nil
}

// judge decides whether the release of the revision the target asks for has ended, and how.
// It only trusts a status that speaks of that revision: right after the target changed, the
// status still describes the previous release.
func judge(ro *meshv1alpha1.Rollout, target *appsv1.Deployment) outcome {
	st := &ro.Status
	name := ro.Namespace + "/" + ro.Name
	if ro.DeletionTimestamp != nil {
		return outcome{true, exitStalled, fmt.Sprintf("Rollout %s is being deleted: no release will end", name)}
	}
	if st.ObservedGeneration != ro.Generation || st.Phase == "" {
		return outcome{line: fmt.Sprintf("waiting for the manager to reconcile generation %d of Rollout %s", ro.Generation, name)}
	}
	rev := ""
	if target != nil {
		rev = rollout.Revision(&target.Spec.Template)
	}
	// No stable revision yet: the first release (initialization) is of whatever the target asks.
	known := target == nil || st.StableRevision == "" || rev == st.StableRevision || rev == st.CanaryRevision
	if !known {
		return outcome{line: fmt.Sprintf("waiting for the manager to pick up revision %s of Deployment %s", rev, target.Name)}
	}
	stalled := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionStalled)
	ready := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionReady)
	switch {
	case st.Phase == meshv1alpha1.PhaseRolledBack && rev == st.CanaryRevision:
		reason := st.AbortReason
		msg := ""
		if h := st.History; len(h) > 0 && h[0].Revision == st.CanaryRevision && h[0].Outcome == meshv1alpha1.OutcomeRolledBack {
			msg = ": " + h[0].Message
		}
		return outcome{true, exitRolledBack, fmt.Sprintf("revision %s was rolled back (%s)%s; revision %s serves all traffic", st.CanaryRevision, reason, msg, st.StableRevision)}
	case st.Phase == meshv1alpha1.PhaseRollingBack:
		// Decided, not yet in force: the route still carries canary traffic.
	case st.Phase == meshv1alpha1.PhaseFailed:
		return outcome{true, exitStalled, fmt.Sprintf("Rollout %s failed: %s", name, condText(stalled))}
	case stalled != nil && stalled.Status == metav1.ConditionTrue:
		return outcome{true, exitStalled, fmt.Sprintf("Rollout %s is stalled (%s): %s", name, stalled.Reason, stalled.Message)}
	case st.Phase == meshv1alpha1.PhaseHealthy && ready != nil && ready.Status == metav1.ConditionTrue && rev == st.StableRevision:
		if h := st.History; len(h) > 0 && h[0].Revision == st.StableRevision && h[0].Outcome == meshv1alpha1.OutcomePromoted {
			return outcome{true, exitHealthy, fmt.Sprintf("revision %s promoted: slot %s serves all traffic", st.StableRevision, st.StableSlot)}
		}
		return outcome{true, exitHealthy, fmt.Sprintf("revision %s is stable: slot %s serves all traffic", st.StableRevision, st.StableSlot)}
	}
	return outcome{line: progressLine(ro)}
}

// progressLine: phase, step, weight and what the release waits for.
func progressLine(ro *meshv1alpha1.Rollout) string {
	st := &ro.Status
	line := string(st.Phase)
	if step := stepOf(ro); step != "-" {
		line += "  step " + step
	}
	line += fmt.Sprintf("  weight %d%%", st.CanaryWeight)
	if c := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionReconciling); c != nil && c.Status == metav1.ConditionTrue {
		line += "  " + c.Reason + ": " + c.Message
	} else if c := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue {
		line += "  " + c.Reason + ": " + c.Message
	}
	return line
}

func condText(c *metav1.Condition) string {
	if c == nil {
		return "no Stalled condition"
	}
	return c.Reason + ": " + c.Message
}
