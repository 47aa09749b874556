package policy

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Outcome is what reconciling a MeshPolicy came to, as its conditions tell it.
type Outcome struct {
	// Reason and Message of a failure that keeps the policy from being in force; "" when applied.
	Reason, Message string
	// Stalled: only a change of the spec (or of the cluster's installed APIs) helps.
	Stalled bool
	// Conflict names the older policy this one yields to.
	Conflict string
	// Partial are the fields expressed with a difference.
	Partial []meshv1alpha1.UnsupportedField
	// Summary of what was applied.
	Summary string
}

// SetConditions writes Ready, Accepted, Conflicted and Stalled, and removes Reconciling. A
// condition whose status changes gets now as its transition time.
func SetConditions(p *meshv1alpha1.MeshPolicy, o Outcome, now time.Time) {
	conds := &p.Status.Conditions
	set := func(typ string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(conds, metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg,
			ObservedGeneration: p.Generation, LastTransitionTime: metav1.NewTime(now)})
	}
	if o.Conflict != "" {
		set(meshv1alpha1.ConditionConflicted, true, meshv1alpha1.ReasonOlderPolicyWins, o.Message)
	} else {
		set(meshv1alpha1.ConditionConflicted, false, "NoConflict", "no older MeshPolicy targets these Services")
	}
	switch o.Reason {
	case "":
		set(meshv1alpha1.ConditionAccepted, true, "Translated", o.Summary)
		if len(o.Partial) > 0 {
			var notes []string
			for _, f := range o.Partial {
				notes = append(notes, fmt.Sprintf("%s: %s", f.Field, f.Reason))
			}
			set(meshv1alpha1.ConditionReady, true, meshv1alpha1.ReasonAppliedWithDifferences, o.Summary+"; expressed with differences: "+strings.Join(notes, "; "))
		} else {
			set(meshv1alpha1.ConditionReady, true, meshv1alpha1.ReasonApplied, o.Summary)
		}
	case meshv1alpha1.ReasonUnsupportedFields, meshv1alpha1.ReasonApplyFailed:
		// Translated (and, for unsupported fields, applied in part) but not in force as written.
		set(meshv1alpha1.ConditionAccepted, o.Reason == meshv1alpha1.ReasonUnsupportedFields, o.Reason, o.Message)
		set(meshv1alpha1.ConditionReady, false, o.Reason, o.Message)
	default:
		set(meshv1alpha1.ConditionAccepted, false, o.Reason, o.Message)
		set(meshv1alpha1.ConditionReady, false, o.Reason, o.Message)
	}
	if o.Stalled {
		set(meshv1alpha1.ConditionStalled, true, o.Reason, o.Message)
	} else {
		meta.RemoveStatusCondition(conds, meshv1alpha1.ConditionStalled)
	}
	meta.RemoveStatusCondition(conds, meshv1alpha1.ConditionReconciling)
}
