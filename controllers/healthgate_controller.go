package controllers

import (
	ctrl "sigs.k8s.io/controller-runtime"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=healthgates,verbs=get;list;watch
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=healthgates/status,verbs=get;update;patch

// HealthGateMessage is what a HealthGate's status says until gate evaluation lands.
const HealthGateMessage = "HealthGate evaluation is not implemented yet: this gate is stored and validated, but Sluice does not query Prometheus"

// SetupHealthGateController registers the HealthGate controller.
func SetupHealthGateController(mgr ctrl.Manager) error {
	return setupPending(mgr, "healthgate", func() *meshv1alpha1.HealthGate { return &meshv1alpha1.HealthGate{} }, HealthGateMessage)
}
