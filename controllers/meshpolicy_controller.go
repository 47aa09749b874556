package controllers

import (
	ctrl "sigs.k8s.io/controller-runtime"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=meshpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=meshpolicies/status,verbs=get;update;patch

// MeshPolicyMessage is what a MeshPolicy's status says until policy translation lands.
const MeshPolicyMessage = "MeshPolicy translation is not implemented yet: this policy is stored and validated, but Sluice generates no data-plane resources"

// SetupMeshPolicyController registers the MeshPolicy controller.
func SetupMeshPolicyController(mgr ctrl.Manager) error {
	return setupPending(mgr, "meshpolicy", func() *meshv1alpha1.MeshPolicy { return &meshv1alpha1.MeshPolicy{} }, MeshPolicyMessage)
}
