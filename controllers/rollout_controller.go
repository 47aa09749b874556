// Package controllers holds Sluice's reconcilers. They are thin: they gather observations,
// let the pure logic of internal/ decide, apply the actions and patch status once.
package controllers

import (
	ctrl "sigs.k8s.io/controller-runtime"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=rollouts/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// RolloutMessage is what a Rollout's status says until the rollout engine lands.
const RolloutMessage = "the rollout engine is not implemented yet: this Rollout is stored and validated, but Sluice does not create slots or move traffic"

// SetupRolloutController registers the Rollout controller.
func SetupRolloutController(mgr ctrl.Manager) error {
	return setupPending(mgr, "rollout", func() *meshv1alpha1.Rollout { return &meshv1alpha1.Rollout{} }, RolloutMessage)
}
