package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// conditioned is a Sluice object with status conditions and an observed generation.
type conditioned interface {
	client.Object
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
	SetObservedGeneration(int64)
}

// pendingReconciler serves a kind whose behaviour has not landed yet. It does not pretend:
// Ready=False and Stalled=True with reason NotImplemented, so kubectl, Flux and Argo CD health
// checks all see that nothing is done with the object (kstatus reads Stalled as Failed).
type pendingReconciler[T conditioned] struct {
	client   client.Client
	recorder events.EventRecorder
	newObj   func() T
	message  string
}

func setupPending[T conditioned](mgr ctrl.Manager, name string, newObj func() T, message string) error {
	r := &pendingReconciler[T]{
		client:   mgr.GetClient(),
		recorder: mgr.GetEventRecorder("sluice-" + name),
		newObj:   newObj,
		message:  message,
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named(name).
		For(newObj(), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Complete(r)
}

func (r *pendingReconciler[T]) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj := r.newObj()
	if err := r.client.Get(ctx, req.NamespacedName, obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := obj.DeepCopyObject().(T)

	conds := obj.GetConditions()
	// A transition is a change of Ready's status or reason; SetStatusCondition also reports
	// a new observedGeneration or message as a change, which must not emit an event.
	prev := meta.FindStatusCondition(conds, meshv1alpha1.ConditionReady)
	transitioned := prev == nil || prev.Status != metav1.ConditionFalse || prev.Reason != meshv1alpha1.ReasonNotImplemented
	meta.SetStatusCondition(&conds, condition(meshv1alpha1.ConditionReady, false, meshv1alpha1.ReasonNotImplemented, r.message, obj.GetGeneration()))
	meta.SetStatusCondition(&conds, condition(meshv1alpha1.ConditionStalled, true, meshv1alpha1.ReasonNotImplemented, r.message, obj.GetGeneration()))
	meta.RemoveStatusCondition(&conds, meshv1alpha1.ConditionReconciling)
	obj.SetConditions(conds)
	obj.SetObservedGeneration(obj.GetGeneration())

	if equality.Semantic.DeepEqual(before, obj) {
		return ctrl.Result{}, nil
	}
	if err := r.client.Status().Patch(ctx, obj, client.MergeFrom(before)); err != nil {
		return ctrl.Result{}, err
	}
	if transitioned {
		r.recorder.Eventf(obj, nil, corev1.EventTypeWarning, meshv1alpha1.ReasonNotImplemented, "Reconcile", r.message)
	}
	return ctrl.Result{}, nil
}
