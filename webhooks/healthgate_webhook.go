package webhooks

import (
	"context"
	"fmt"
	"net/url"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/egress"
	"github.com/sluice-mesh/sluice/internal/gates"
)

// +kubebuilder:webhook:path=/mutate-mesh-sluice-dev-v1alpha1-healthgate,mutating=true,failurePolicy=ignore,sideEffects=None,groups=mesh.sluice.dev,resources=healthgates,verbs=create;update,versions=v1alpha1,name=mhealthgate.sluice.dev,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-mesh-sluice-dev-v1alpha1-healthgate,mutating=false,failurePolicy=fail,sideEffects=None,groups=mesh.sluice.dev,resources=healthgates,verbs=create;update,versions=v1alpha1,name=vhealthgate.sluice.dev,admissionReviewVersions=v1,timeoutSeconds=5

// HealthGateDefaulter writes the getters' defaults into the spec.
type HealthGateDefaulter struct{}

// Default fills unset fields with the getters' defaults.
func (HealthGateDefaulter) Default(_ context.Context, g *meshv1alpha1.HealthGate) error {
	s := &g.Spec
	if s.Prometheus.Timeout == nil {
		s.Prometheus.Timeout = &metav1.Duration{Duration: s.Prometheus.GetTimeout()}
	}
	s.NoData = s.GetNoData()
	if s.Target != nil && s.Interval == nil {
		s.Interval = &metav1.Duration{Duration: s.GetInterval()}
	}
	for i := range s.Metrics {
		if c := s.Metrics[i].CompareToStable; c != nil {
			c.Direction = s.Metrics[i].GetDirection()
		}
	}
	return nil
}

// HealthGateValidator checks what CEL can't: that every metric's query, custom or builtin,
// expands with sample values and parses as PromQL; and it warns about a Prometheus address
// the manager's egress allow-list refuses.
type HealthGateValidator struct {
	// Egress is the manager's allow-list (--gate-egress-allow); nil checks nothing.
	Egress *egress.Policy
}

// ValidateCreate rejects a query that does not expand (template error, unknown variable, a
// variable outside a label matcher's quoted value) or whose expansion is not valid PromQL.
func (v HealthGateValidator) ValidateCreate(_ context.Context, g *meshv1alpha1.HealthGate) (admission.Warnings, error) {
	return v.egressWarnings(g), gates.ValidateSpec(&g.Spec)
}

// ValidateUpdate checks the same as on create.
func (v HealthGateValidator) ValidateUpdate(_ context.Context, _, g *meshv1alpha1.HealthGate) (admission.Warnings, error) {
	return v.egressWarnings(g), gates.ValidateSpec(&g.Spec)
}

// egressWarnings names the Prometheus addresses the manager will refuse to call: a warning,
// not a refusal (the allow-list is the manager's flag and may change; the gate's status says
// it at evaluation too), but at apply time, where the person who wrote it sees it. Only what
// needs no DNS is judged here: an IP literal, or a name when the list holds names only.
func (v HealthGateValidator) egressWarnings(g *meshv1alpha1.HealthGate) admission.Warnings {
	if v.Egress == nil {
		return nil
	}
	var out admission.Warnings
	for i, addr := range g.Spec.Prometheus.Addresses {
		u, err := url.Parse(addr)
		if err != nil || u.Hostname() == "" {
			continue // the schema's pattern reports it
		}
		if err := v.Egress.CheckHost(u.Hostname()); err != nil {
			out = append(out, fmt.Sprintf("spec.prometheus.addresses[%d]: the manager will not query %s: %v", i, addr, err))
		}
	}
	return out
}

// ValidateDelete allows every deletion.
func (HealthGateValidator) ValidateDelete(context.Context, *meshv1alpha1.HealthGate) (admission.Warnings, error) {
	return nil, nil
}

// validateQueries expands every metric's query with gates.SampleVars and parses it with the
// PromQL parser; an error names the metric and is reported on its query (or builtin) field.
