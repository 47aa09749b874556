package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/gates"
)

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=healthgates,verbs=get;list;watch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=healthgates/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// HealthGateReconciler validates HealthGates and evaluates those with a target every interval,
// reporting verdicts in status (Ready=True only while the last verdict is Pass), so that a gate
// can hold back other things, e.g. a Flux Kustomization that depends on it.
type HealthGateReconciler struct {
	Client    client.Client
	Recorder  events.EventRecorder
	Evaluator GateEvaluator
	Now       func() time.Time
}

// SetupHealthGateController registers the HealthGate controller.
func SetupHealthGateController(mgr ctrl.Manager, ev GateEvaluator) error {
	r := &HealthGateReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("sluice-healthgate"), Evaluator: ev, Now: time.Now}
	return ctrl.NewControllerManagedBy(mgr).Named("healthgate").
		For(&meshv1alpha1.HealthGate{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

// Reconcile validates the gate and, with a target, evaluates it when an interval has passed.
func (r *HealthGateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &meshv1alpha1.HealthGate{}
	if err := r.Client.Get(ctx, req.NamespacedName, g); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := g.DeepCopy()
	now := r.Now()
	st := &g.Status
	conds := &st.Conditions
	set := func(typ string, ok bool, reason, msg string) {
		meta.SetStatusCondition(conds, condition(typ, ok, reason, msg, g.Generation))
	}

	var result ctrl.Result
	if err := gates.ValidateSpec(&g.Spec); err != nil {
		set(meshv1alpha1.ConditionReady, false, meshv1alpha1.ReasonInvalidSpec, err.Error())
		set(meshv1alpha1.ConditionStalled, true, meshv1alpha1.ReasonInvalidSpec, err.Error())
	} else {
		meta.RemoveStatusCondition(conds, meshv1alpha1.ConditionStalled)
		result = r.evaluate(ctx, g, now, set)
	}
	meta.RemoveStatusCondition(conds, meshv1alpha1.ConditionReconciling)
	st.ObservedGeneration = g.Generation

	if err := r.Client.Status().Patch(ctx, g, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, err
	}
	if before.Status.Verdict != st.Verdict && st.Verdict != "" {
		typ := corev1.EventTypeNormal
		if st.Verdict != meshv1alpha1.VerdictPass {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(g, nil, typ, string(st.Verdict), "Evaluate", "verdict %s: %s", st.Verdict, readyMessage(g))
	}
	return result, nil
}

// evaluate runs the gate on its own target when due; a gate without target is only validated.
func (r *HealthGateReconciler) evaluate(ctx context.Context, g *meshv1alpha1.HealthGate, now time.Time, set func(string, bool, string, string)) ctrl.Result {
	st := &g.Status
	t := g.Spec.Target
	if t == nil {
		st.Verdict, st.Metrics, st.LastEvaluation, st.Address = "", nil, nil, ""
		set(meshv1alpha1.ConditionReady, true, "Valid", "queries are valid; the Rollouts that use this gate evaluate it (set spec.target to evaluate it on its own)")
		return ctrl.Result{}
	}
	interval := g.Spec.GetInterval()
	fresh := st.ObservedGeneration == g.Generation && st.LastEvaluation != nil
	if fresh && now.Sub(st.LastEvaluation.Time) < interval {
		return ctrl.Result{RequeueAfter: st.LastEvaluation.Add(interval).Sub(now)}
	}
	canary := t.CanaryService
	if canary == "" {
		canary = t.Service
	}
	minSamples := int32(0)
	if t.MinSamples != nil {
		minSamples = *t.MinSamples
	}
	res := r.Evaluator.Evaluate(ctx, g, gates.Target{
		Namespace: g.Namespace, Service: t.Service, CanaryService: canary, StableService: t.StableService,
		Revision: t.Revision, Window: g.Spec.GetWindow(interval), MinSamples: minSamples,
	})
	last := metav1.NewTime(now)
	st.Verdict, st.Metrics, st.LastEvaluation, st.Address = res.Verdict, res.Metrics, &last, res.Address
	if res.Verdict == meshv1alpha1.VerdictPass {
		set(meshv1alpha1.ConditionReady, true, string(res.Verdict), res.Message)
	} else {
		set(meshv1alpha1.ConditionReady, false, string(res.Verdict), res.Message)
	}
	return ctrl.Result{RequeueAfter: interval}
}

func readyMessage(g *meshv1alpha1.HealthGate) string {
	if c := meta.FindStatusCondition(g.Status.Conditions, meshv1alpha1.ConditionReady); c != nil {
		return c.Message
	}
	return ""
}

// gateTarget is the Target of a Rollout's current release for one of its gates.
func gateTarget(r *meshv1alpha1.Rollout, g *meshv1alpha1.HealthGate) gates.Target {
	stable := r.Status.StableSlot
	if stable == "" {
		stable = meshv1alpha1.SlotA
	}
	return gates.Target{
		Namespace: r.Namespace, Service: r.GetServiceName(),
		CanaryService: r.GetSlotServiceName(stable.Other()), StableService: r.GetSlotServiceName(stable),
		Revision: r.Status.CanaryRevision, Window: g.Spec.GetWindow(r.Spec.Analysis.GetInterval()),
		MinSamples: r.Spec.Analysis.GetMinSamples(),
	}
}

// describe is a short form of a gate result for messages.
func describe(gate string, res gates.Result) string {
	if res.Message == "" {
		return fmt.Sprintf("%s: %s", gate, res.Verdict)
	}
	return fmt.Sprintf("%s: %s", gate, res.Message)
}
