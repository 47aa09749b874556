package webhooks

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// +kubebuilder:webhook:path=/mutate-mesh-sluice-dev-v1alpha1-meshpolicy,mutating=true,failurePolicy=ignore,sideEffects=None,groups=mesh.sluice.dev,resources=meshpolicies,verbs=create;update,versions=v1alpha1,name=mmeshpolicy.sluice.dev,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-mesh-sluice-dev-v1alpha1-meshpolicy,mutating=false,failurePolicy=fail,sideEffects=None,groups=mesh.sluice.dev,resources=meshpolicies,verbs=create;update,versions=v1alpha1,name=vmeshpolicy.sluice.dev,admissionReviewVersions=v1,timeoutSeconds=5

// MeshPolicyDefaulter writes the getters' defaults into the spec.
type MeshPolicyDefaulter struct{}

// Default fills unset fields with the getters' defaults.
func (MeshPolicyDefaulter) Default(_ context.Context, p *meshv1alpha1.MeshPolicy) error {
	s := &p.Spec
	s.Provider = s.GetProvider()
	if s.Retries != nil {
		s.Retries.RetryOn = s.Retries.GetRetryOn()
	}
	if s.RateLimit != nil && s.RateLimit.Burst == nil {
		b := s.RateLimit.GetBurst()
		s.RateLimit.Burst = &b
	}
	return nil
}

// MeshPolicyValidator checks a MeshPolicy against the Services it targets.
type MeshPolicyValidator struct {
	refs referenceChecker
}

// ValidateCreate warns about target Services that don't exist.
func (v MeshPolicyValidator) ValidateCreate(ctx context.Context, p *meshv1alpha1.MeshPolicy) (admission.Warnings, error) {
	return v.targets(ctx, p), nil
}

// ValidateUpdate checks the same as on create.
func (v MeshPolicyValidator) ValidateUpdate(ctx context.Context, _, p *meshv1alpha1.MeshPolicy) (admission.Warnings, error) {
	return v.targets(ctx, p), nil
}

// ValidateDelete allows every deletion.
func (MeshPolicyValidator) ValidateDelete(context.Context, *meshv1alpha1.MeshPolicy) (admission.Warnings, error) {
	return nil, nil
}

func (v MeshPolicyValidator) targets(ctx context.Context, p *meshv1alpha1.MeshPolicy) admission.Warnings {
	var w admission.Warnings
	for i, t := range p.Spec.TargetRefs {
		w = append(w, v.refs.missing(ctx, corev1.SchemeGroupVersion.WithKind("Service"), p.Namespace, t.Name, fmt.Sprintf("spec.targetRefs[%d]", i))...)
	}
	return w
}
