package webhooks

import (
	ctrl "sigs.k8s.io/controller-runtime"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Setup registers the defaulting and validating webhooks of the three kinds. Reference checks
// read through the uncached API reader: one GET per review, and no cache of every Deployment
// and Service in the cluster.
func Setup(mgr ctrl.Manager) error {
	refs := referenceChecker{reader: mgr.GetAPIReader()}
	if err := ctrl.NewWebhookManagedBy(mgr, &meshv1alpha1.Rollout{}).
		WithDefaulter(RolloutDefaulter{}).WithValidator(RolloutValidator{refs: refs}).Complete(); err != nil {
		return err
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &meshv1alpha1.HealthGate{}).
		WithDefaulter(HealthGateDefaulter{}).WithValidator(HealthGateValidator{}).Complete(); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &meshv1alpha1.MeshPolicy{}).
		WithDefaulter(MeshPolicyDefaulter{}).WithValidator(MeshPolicyValidator{refs: refs}).Complete()
}
