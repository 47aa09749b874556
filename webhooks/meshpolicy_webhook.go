package webhooks

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/providers"
)

// +kubebuilder:webhook:path=/mutate-mesh-sluice-dev-v1alpha1-meshpolicy,mutating=true,failurePolicy=ignore,sideEffects=None,groups=mesh.sluice.dev,resources=meshpolicies,verbs=create;update,versions=v1alpha1,name=mmeshpolicy.sluice.dev,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:rbac:groups=mesh.sluice.dev,resources=meshpolicies,verbs=list

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

// ValidateCreate rejects fields an explicit provider can't express and warns about target
// Services that don't exist.
func (v MeshPolicyValidator) ValidateCreate(ctx context.Context, p *meshv1alpha1.MeshPolicy) (admission.Warnings, error) {
	if err := expressible(p); err != nil {
		return nil, err
	}
	return v.targets(ctx, p), nil
}

// ValidateUpdate checks the same as on create.
func (v MeshPolicyValidator) ValidateUpdate(ctx context.Context, _, p *meshv1alpha1.MeshPolicy) (admission.Warnings, error) {
	if err := expressible(p); err != nil {
		return nil, err
	}
	return v.targets(ctx, p), nil
}

// expressible rejects a policy whose explicit provider can't express a field it sets: by the
// provider's support matrix, and by its translation of the values (translated against
// stand-in Services with a selector and a port, and with every optional API and edition, so only
// what the policy itself asks decides). With provider auto the choice is the cluster's, and the
// controller reports gaps in status instead.
func expressible(p *meshv1alpha1.MeshPolicy) error {
	name := p.Spec.GetProvider()
	if name == meshv1alpha1.ProviderAuto {
		return nil
	}
	prov, ok := providers.ByName(name)
	if !ok {
		return fmt.Errorf("spec.provider %q: not a known provider", name)
	}
	unsupported, _ := policy.Check(prov.Matrix(), &p.Spec)
	services := standInServices(p)
	out, err := prov.Translate(policy.Input{Policy: p, Services: services, Capabilities: policy.Capabilities{HTTPRouteRetry: true, ConsulEnterprise: true}})
	if err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	gaps := policy.Merge(unsupported, out.Unsupported...)
	if len(gaps) == 0 {
		return nil
	}
	var lines []string
	for _, g := range gaps {
		lines = append(lines, fmt.Sprintf("spec.%s: %s", g.Field, g.Reason))
	}
	return fmt.Errorf("spec.provider %s cannot express %s (remove the field, or choose a provider that supports it: docs/meshpolicy.md)", name, strings.Join(lines, "; "))
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
	return append(w, v.governed(ctx, p)...)
}

// governed warns when another MeshPolicy already targets one of the policy's Services: the
// older of two governs, so a new policy would be Conflicted and apply nothing. A warning, not
// a rejection: the other policy may be on its way out in the same GitOps sync.
func (v MeshPolicyValidator) governed(ctx context.Context, p *meshv1alpha1.MeshPolicy) admission.Warnings {
	list := &meshv1alpha1.MeshPolicyList{}
	if err := v.refs.reader.List(ctx, list, client.InNamespace(p.Namespace)); err != nil {
		return admission.Warnings{fmt.Sprintf("could not check for other MeshPolicies on the same Services: %v", err)}
	}
	mine := map[string]bool{}
	for _, t := range p.Spec.TargetRefs {
		mine[t.Name] = true
	}
	var w admission.Warnings
	for i := range list.Items {
		q := &list.Items[i]
		if q.Name == p.Name || !q.DeletionTimestamp.IsZero() {
			continue
		}
		for _, t := range q.Spec.TargetRefs {
			if mine[t.Name] {
				w = append(w, fmt.Sprintf("spec.targetRefs: Service %s is already governed by MeshPolicy %s; the older policy wins, so unless this one is older it will be Conflicted and apply nothing", t.Name, q.Name))
			}
		}
	}
	return w
}

// standInServices are the policy's targets as translation input at admission, when the real
// Services may not exist yet: each with one HTTP port 80.
func standInServices(p *meshv1alpha1.MeshPolicy) []corev1.Service {
	var services []corev1.Service
	for _, t := range p.Spec.TargetRefs {
		services = append(services, corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: t.Name, Namespace: p.Namespace},
			Spec: corev1.ServiceSpec{
				Selector: map[string]string{"app": t.Name},
				Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		})
	}
	return services
}
