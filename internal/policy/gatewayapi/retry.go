package gatewayapi

import (
	"slices"
	"strings"

	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// noRetryField is why retries can't be written when the HTTPRoute CRD is the standard one.
const noRetryField = "the installed HTTPRoute CRD has no rules[].retry (Gateway API standard channel); install Gateway API's experimental channel to get retries"

// retryCodes are the response codes each retryOn value retries. Connection errors
// (connect-failure, reset, refused-stream) have no code: the spec says an implementation
// SHOULD retry them whenever a rule has a retry stanza.
var retryCodes = map[meshv1alpha1.RetryOn][]gwv1.HTTPRouteRetryStatusCode{
	// The four codes every implementation MUST accept; other 5xx codes are optional in the spec.
	"5xx":           {500, 502, 503, 504},
	"gateway-error": {502, 503, 504},
	// Envoy's retriable-4xx, the meaning the API borrows, is 409 Conflict only.
	"retriable-4xx": {409},
}

// translateRetries sets rules.Retry (and the per-try timeout as timeouts.backendRequest) when
// the cluster's HTTPRoute has a retry field; otherwise every retries field set is a gap.
func translateRetries(spec *meshv1alpha1.MeshPolicySpec, caps policy.Capabilities, rules *policy.RuleSettings) []meshv1alpha1.UnsupportedField {
	r := spec.Retries
	if r == nil {
		return nil
	}
	if !caps.HTTPRouteRetry {
		var gaps []meshv1alpha1.UnsupportedField
		for _, f := range policy.SetFields(spec) {
			if strings.HasPrefix(f, "retries.") {
				gaps = append(gaps, meshv1alpha1.UnsupportedField{Field: f, Reason: noRetryField})
			}
		}
		return gaps
	}

	retry := &gwv1.HTTPRouteRetry{Attempts: ptr.To(int(r.Attempts))}
	for _, on := range r.GetRetryOn() {
		retry.Codes = append(retry.Codes, retryCodes[on]...)
	}
	slices.Sort(retry.Codes) // the CRD's list is a set: one of each, in a stable order
	retry.Codes = slices.Compact(retry.Codes)
	rules.Retry = retry

	if r.PerTryTimeout != nil {
		d, err := formatDuration(r.PerTryTimeout.Duration)
		if err != nil {
			return []meshv1alpha1.UnsupportedField{durationGap("retries.perTryTimeout", err)}
		}
		// Valid with timeouts.request: the MeshPolicy CRD keeps perTryTimeout <= request, which
		// is the HTTPRoute CRD's rule too, and both are converted exactly.
		if rules.Timeouts == nil {
			rules.Timeouts = &gwv1.HTTPRouteTimeouts{}
		}
		rules.Timeouts.BackendRequest = &d
	}
	return nil
}
