package webhooks

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// +kubebuilder:webhook:path=/mutate-mesh-sluice-dev-v1alpha1-rollout,mutating=true,failurePolicy=ignore,sideEffects=None,groups=mesh.sluice.dev,resources=rollouts,verbs=create;update,versions=v1alpha1,name=mrollout.sluice.dev,admissionReviewVersions=v1,timeoutSeconds=5
// The validating webhook only warns (a reference not there yet): failurePolicy ignore, so that
// a Sluice outage never fails a GitOps sync for the sake of a warning.
// +kubebuilder:webhook:path=/validate-mesh-sluice-dev-v1alpha1-rollout,mutating=false,failurePolicy=ignore,sideEffects=None,groups=mesh.sluice.dev,resources=rollouts,verbs=create;update,versions=v1alpha1,name=vrollout.sluice.dev,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=healthgates,verbs=get

// RolloutDefaulter writes the defaults of the API's getters into the spec, so that what the
// controller will do is visible in the stored object.
type RolloutDefaulter struct{}

// Default fills unset fields with the getters' defaults.
func (RolloutDefaulter) Default(_ context.Context, r *meshv1alpha1.Rollout) error {
	s := &r.Spec
	if s.TargetRef.APIVersion == "" {
		s.TargetRef.APIVersion = "apps/v1"
	}
	if s.TargetRef.Kind == "" {
		s.TargetRef.Kind = "Deployment"
	}
	for i := range s.TrafficRouting.GatewayAPI.ParentRefs {
		p := &s.TrafficRouting.GatewayAPI.ParentRefs[i]
		p.Kind = p.GetKind()
		p.Group = ptr.To(p.GetGroup())
	}
	if gw := &s.TrafficRouting.GatewayAPI; gw.Probe == nil || gw.Probe.Mode == "" {
		mode := gw.GetProbeMode()
		if gw.Probe == nil {
			gw.Probe = &meshv1alpha1.DataPlaneProbe{}
		}
		gw.Probe.Mode = mode
	}
	if c := s.Strategy.Canary; c != nil {
		if c.StepWeight != nil && c.MaxWeight == nil {
			c.MaxWeight = ptr.To(c.GetMaxWeight())
		}
		if c.ScaleDownDelay == nil {
			c.ScaleDownDelay = &metav1.Duration{Duration: s.Strategy.GetScaleDownDelay()}
		}
		for i := range c.Match {
			for j := range c.Match[i].Headers {
				c.Match[i].Headers[j].Type = c.Match[i].Headers[j].GetType()
			}
			for j := range c.Match[i].QueryParams {
				c.Match[i].QueryParams[j].Type = c.Match[i].QueryParams[j].GetType()
			}
		}
	}
	if b := s.Strategy.BlueGreen; b != nil {
		if b.ScaleDownDelay == nil {
			b.ScaleDownDelay = &metav1.Duration{Duration: s.Strategy.GetScaleDownDelay()}
		}
		if b.PrePromotionChecks == nil {
			b.PrePromotionChecks = ptr.To(b.GetPrePromotionChecks())
		}
	}
	if a := s.Analysis; a != nil {
		if a.Interval == nil {
			a.Interval = &metav1.Duration{Duration: a.GetInterval()}
		}
		if a.FailureLimit == nil {
			a.FailureLimit = ptr.To(a.GetFailureLimit())
		}
		if a.MinSamples == nil {
			a.MinSamples = ptr.To(a.GetMinSamples())
		}
		a.OnUnreachable = a.GetOnUnreachable()
		if a.MaxHold == nil {
			a.MaxHold = &metav1.Duration{Duration: a.GetMaxHold()}
		}
		if a.InconclusiveLimit == nil {
			a.InconclusiveLimit = ptr.To(a.GetInconclusiveLimit())
		}
	}
	if s.ProgressDeadline == nil {
		s.ProgressDeadline = &metav1.Duration{Duration: s.GetProgressDeadline()}
	}
	return nil
}

// RolloutValidator checks a Rollout against the objects it refers to.
type RolloutValidator struct {
	refs referenceChecker
}

// ValidateCreate warns about a missing target Deployment, HealthGate or HTTPRoute.
func (v RolloutValidator) ValidateCreate(ctx context.Context, r *meshv1alpha1.Rollout) (admission.Warnings, error) {
	return v.references(ctx, r), nil
}

// ValidateUpdate checks the same as on create.
func (v RolloutValidator) ValidateUpdate(ctx context.Context, _, r *meshv1alpha1.Rollout) (admission.Warnings, error) {
	return v.references(ctx, r), nil
}

// ValidateDelete allows every deletion.
func (RolloutValidator) ValidateDelete(context.Context, *meshv1alpha1.Rollout) (admission.Warnings, error) {
	return nil, nil
}

func (v RolloutValidator) references(ctx context.Context, r *meshv1alpha1.Rollout) admission.Warnings {
	ns := r.Namespace
	w := v.refs.missing(ctx, appsv1.SchemeGroupVersion.WithKind("Deployment"), ns, r.Spec.TargetRef.Name, "spec.targetRef")
	if r.Spec.Analysis != nil {
		for i, g := range r.Spec.Analysis.HealthGates {
			w = append(w, v.refs.missing(ctx, meshv1alpha1.GroupVersion.WithKind("HealthGate"), ns, g.Name, fmt.Sprintf("spec.analysis.healthGates[%d]", i))...)
		}
	}
	return w
}
