package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/checks"
	"github.com/sluice-mesh/sluice/internal/gates"
)

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=healthgates,verbs=list;watch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=healthgates/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// HealthGateReconciler validates HealthGates and evaluates those with a target every interval,
// reporting verdicts in status (Ready=True only while the last verdict is Pass), so that a gate
// can hold back other things, e.g. a Flux Kustomization that depends on it.
type HealthGateReconciler struct {
	Client    client.Client
	Recorder  events.EventRecorder
	Evaluator GateEvaluator
	Now       func() time.Time
	// Evaluations run off the workers, one per gate at a time (a Prometheus that never
	// answers must not hold a worker).
	Evaluations *checks.Runner[gateEvaluation]
}

// gateEvaluation is a finished evaluation of a gate on its own target.
type gateEvaluation struct {
	result gates.Result
	at     time.Time
}

// SetupHealthGateController registers the HealthGate controller with the given number of workers.
func SetupHealthGateController(mgr ctrl.Manager, ev GateEvaluator, workers int) error {
	r := &HealthGateReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("sluice-healthgate"), Evaluator: ev, Now: time.Now,
		Evaluations: &checks.Runner[gateEvaluation]{}}
	return ctrl.NewControllerManagedBy(mgr).Named("healthgate").
		For(&meshv1alpha1.HealthGate{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(workers, 1)}).
		WatchesRawSource(source.Func(func(_ context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) error {
			r.Evaluations.Wake = func(key types.NamespacedName) { q.Add(reconcile.Request{NamespacedName: key}) }
			return nil
		})).
		Complete(r)
}

// Reconcile validates the gate and, with a target, evaluates it when an interval has passed.
func (r *HealthGateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	g := &meshv1alpha1.HealthGate{}
	if err := r.Client.Get(ctx, req.NamespacedName, g); err != nil {
		if apierrors.IsNotFound(err) {
			r.Evaluations.Forget(req.NamespacedName)
			forgetGateThresholds(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	recordGateThresholds(g)
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
		result = r.evaluate(g, now, set)
	}
	meta.RemoveStatusCondition(conds, meshv1alpha1.ConditionReconciling)
	st.ObservedGeneration = g.Generation

	if !equality.Semantic.DeepEqual(before.Status, g.Status) {
		if err := r.Client.Status().Patch(ctx, g, client.MergeFrom(before)); err != nil {
			return ctrl.Result{}, err
		}
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
func (r *HealthGateReconciler) evaluate(g *meshv1alpha1.HealthGate, now time.Time, set func(string, bool, string, string)) ctrl.Result {
	st := &g.Status
	t := g.Spec.Target
	if t == nil {
		st.Verdict, st.Metrics, st.LastEvaluation, st.Address = "", nil, nil, ""
		set(meshv1alpha1.ConditionReady, true, "Valid", "queries are valid; the Rollouts that use this gate evaluate it (set spec.target to evaluate it on its own)")
		return ctrl.Result{}
	}
	interval := g.Spec.GetInterval()
	key := client.ObjectKeyFromObject(g)
	ticket := fmt.Sprint(g.Generation) // an evaluation of an older spec says nothing
	if ev, ok := r.Evaluations.Take(key, ticket); ok {
		res := ev.result
		last := metav1.NewTime(ev.at)
		st.Verdict, st.Metrics, st.LastEvaluation, st.Address = res.Verdict, res.Metrics, &last, res.Address
		if res.Verdict == meshv1alpha1.VerdictPass {
			set(meshv1alpha1.ConditionReady, true, string(res.Verdict), res.Message)
		} else {
			set(meshv1alpha1.ConditionReady, false, string(res.Verdict), res.Message)
		}
		return ctrl.Result{RequeueAfter: max(ev.at.Add(interval).Sub(now), time.Millisecond)}
	}
	fresh := st.ObservedGeneration == g.Generation && st.LastEvaluation != nil
	if fresh && now.Sub(st.LastEvaluation.Time) < interval {
		return ctrl.Result{RequeueAfter: st.LastEvaluation.Add(interval).Sub(now)}
	}
	if st.LastEvaluation == nil || !fresh {
		set(meshv1alpha1.ConditionReady, false, "Evaluating", "first evaluation of this generation under way")
	}
	r.startEvaluation(key, ticket, g.DeepCopy(), now)
	return ctrl.Result{}
}

// startEvaluation evaluates the gate on its own target off the worker; the next reconcile
// (woken when it is done) writes the verdict.
func (r *HealthGateReconciler) startEvaluation(key types.NamespacedName, ticket string, g *meshv1alpha1.HealthGate, now time.Time) {
	t := g.Spec.Target
	canary := t.CanaryService
	if canary == "" {
		canary = t.Service
	}
	minSamples := int32(0)
	if t.MinSamples != nil {
		minSamples = *t.MinSamples
	}
	target := gates.Target{
		Namespace: g.Namespace, Service: t.Service, CanaryService: canary, StableService: t.StableService,
		Revision: t.Revision, Window: g.Spec.GetWindow(g.Spec.GetInterval()), MinSamples: minSamples,
	}
	deadline := gateDeadline(g)
	r.Evaluations.Start(key, ticket, deadline,
		func(ctx context.Context) gateEvaluation {
			return gateEvaluation{result: r.Evaluator.Evaluate(ctx, g, target), at: now}
		},
		func() gateEvaluation {
			msg := fmt.Sprintf("the evaluation did not finish within %s", deadline)
			res := gates.Result{Verdict: meshv1alpha1.VerdictUnreachable, Message: msg}
			for _, m := range g.Spec.Metrics {
				res.Metrics = append(res.Metrics, meshv1alpha1.MetricVerdict{Name: m.Name, Verdict: meshv1alpha1.VerdictUnreachable, Message: msg})
			}
			return gateEvaluation{result: res, at: now}
		})
}

// gateDeadline bounds one evaluation of g: each Prometheus address may take its full timeout
// for the sample count and then for the metrics (which run at once), plus a little slack.
func gateDeadline(g *meshv1alpha1.HealthGate) time.Duration {
	n := max(len(g.Spec.Prometheus.Addresses), 1)
	return time.Duration(2*n)*g.Spec.Prometheus.GetTimeout() + 2*time.Second
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
