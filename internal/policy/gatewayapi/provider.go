// Package gatewayapi translates a MeshPolicy into Gateway API's own HTTPRoute rule settings
// (timeouts and, with the experimental channel, retry), for whichever Gateway implementation
// serves the routes; both are Extended features, which an implementation may lack (the matrix
// says so). It writes no objects: the controller copies Output.Rules into every HTTPRoute rule
// that routes to a target.
package gatewayapi

import (
	"errors"

	"k8s.io/apimachinery/pkg/runtime/schema"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// Provider is the gatewayAPI policy provider.
type Provider struct{}

// New returns the gatewayAPI provider.
func New() policy.Provider { return Provider{} }

// Name is the spec.provider value.
func (Provider) Name() meshv1alpha1.Provider { return meshv1alpha1.ProviderGatewayAPI }

// Kinds: only HTTPRoute, whose rules carry the settings.
func (Provider) Kinds() []schema.GroupVersionKind {
	return []schema.GroupVersionKind{{Group: gwv1.GroupName, Version: "v1", Kind: "HTTPRoute"}}
}

// Translate turns the policy into HTTPRoute rule settings; fields the matrix marks unsupported
// are left to policy.Check.
func (Provider) Translate(in policy.Input) (policy.Output, error) {
	if in.Policy == nil {
		return policy.Output{}, errors.New("gatewayAPI: no policy to translate")
	}
	spec := &in.Policy.Spec
	rules, gaps := RouteSettings(spec, in.Capabilities)
	return policy.Output{Rules: rules, Unsupported: policy.Merge(mtlsGaps(spec), gaps...)}, nil
}

// RouteSettings are the policy's request timeout and retries as HTTPRoute rule settings (nil
// when it sets neither), with what can't be written. Istio uses them too, for a Service whose
// traffic a GAMMA HTTPRoute already routes.
func RouteSettings(spec *meshv1alpha1.MeshPolicySpec, caps policy.Capabilities) (*policy.RuleSettings, []meshv1alpha1.UnsupportedField) {
	rules := &policy.RuleSettings{}
	var gaps []meshv1alpha1.UnsupportedField
	if spec.Timeouts != nil && spec.Timeouts.Request != nil {
		d, err := formatDuration(spec.Timeouts.Request.Duration)
		if err != nil {
			gaps = append(gaps, durationGap("timeouts.request", err))
		} else {
			rules.Timeouts = &gwv1.HTTPRouteTimeouts{Request: &d}
		}
	}
	gaps = append(gaps, translateRetries(spec, caps, rules)...)
	if rules.Empty() {
		return nil, gaps
	}
	return rules, gaps
}

// mtlsGaps: Gateway API can't ask for mutual TLS, so only Disabled (nothing to write) holds.
func mtlsGaps(spec *meshv1alpha1.MeshPolicySpec) []meshv1alpha1.UnsupportedField {
	if spec.MTLS == nil || spec.MTLS.Mode == meshv1alpha1.MTLSDisabled {
		return nil
	}
	return []meshv1alpha1.UnsupportedField{{
		Field:  "mtls.mode",
		Reason: "mode " + string(spec.MTLS.Mode) + " needs mutual TLS between workloads, which Gateway API has no resource for; only Disabled can be expressed",
	}}
}

func durationGap(field string, err error) meshv1alpha1.UnsupportedField {
	return meshv1alpha1.UnsupportedField{Field: field, Reason: "cannot be written as a Gateway API duration (GEP-2257): " + err.Error()}
}
