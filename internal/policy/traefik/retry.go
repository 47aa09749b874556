package traefik

import (
	"strings"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// retryBackoff is the first wait between tries when responses are retried by status: Envoy's
// default base interval, so such retries pace alike whichever data plane runs them. Retries of
// connection failures alone go at once (Traefik's default): the round robin then hands the
// retry the next endpoint, where after a wait other requests would have moved it on, often
// back to the endpoint that just refused (measured on the e2e stack: 9 of 163 requests still
// failed with a 25 ms wait and one endpoint of three refusing).
const retryBackoff = "25ms"

// retryStatus are the status ranges of the retryOn values Traefik answers by status, in a fixed
// order so equal sets give equal objects.
var retryStatus = []struct {
	on     meshv1alpha1.RetryOn
	status string
}{
	{"retriable-4xx", "409"}, // Envoy's retriable-4xx, the meaning the API borrows, is 409 only
	{"5xx", "500-599"},
	{"gateway-error", "502-504"},
}

// notRetried are the retryOn values Traefik's Retry middleware can't act on, and why.
var notRetried = map[meshv1alpha1.RetryOn]string{
	"reset": "Traefik retries a connection error only before the request is sent; a reset after that comes back as a 502, retried only when 5xx or gateway-error is set too",
	"refused-stream": "Traefik's Retry middleware does not retry HTTP/2 refused streams " +
		"(only Go's HTTP/2 client, for h2c and HTTPS backends, retries those by itself, for requests without a body)",
}

// retrySpec builds the Retry middleware, or nil when no retryOn value is one Traefik can
// retry (the gaps say why).
func retrySpec(r *meshv1alpha1.Retries) (map[string]any, []meshv1alpha1.UnsupportedField) {
	on := map[meshv1alpha1.RetryOn]bool{}
	for _, v := range r.GetRetryOn() {
		on[v] = true
	}
	var status []any
	for _, s := range retryStatus {
		// 5xx already holds 502-504.
		if on[s.on] && (s.on != "gateway-error" || !on["5xx"]) {
			status = append(status, s.status)
		}
	}
	var reasons []string
	for _, v := range []meshv1alpha1.RetryOn{"reset", "refused-stream"} {
		if on[v] {
			reasons = append(reasons, string(v)+": "+notRetried[v])
		}
	}
	var gaps []meshv1alpha1.UnsupportedField
	if len(reasons) > 0 {
		gaps = append(gaps, meshv1alpha1.UnsupportedField{Field: "retries.retryOn", Reason: strings.Join(reasons, "; ")})
	}

	network := on["connect-failure"]
	if !network && len(status) == 0 {
		return nil, gaps // Traefik refuses a Retry with neither network errors nor statuses
	}
	spec := map[string]any{
		// Traefik's attempts count the first try; the policy's count retries after it.
		"attempts": int64(r.Attempts) + 1,
	}
	if len(status) > 0 {
		spec["status"] = status
		spec["initialInterval"] = retryBackoff
	}
	if !network {
		spec["disableRetryOnNetworkError"] = true
	}
	return spec, gaps
}
