package linkerd

import (
	"strconv"
	"strings"
	"time"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// The Service annotations Linkerd's policy controller reads (Linkerd 2.16 and later) and sends
// to the proxies of meshed callers. They are ignored for a Service while a ServiceProfile
// exists for it.
const (
	annRequestTimeout = "timeout.linkerd.io/request"
	annIdleTimeout    = "timeout.linkerd.io/idle"
	annRetryHTTP      = "retry.linkerd.io/http"
	annRetryLimit     = "retry.linkerd.io/limit"
	annRetryTimeout   = "retry.linkerd.io/timeout"

	annAccrual            = "balancer.linkerd.io/failure-accrual"
	annAccrualMaxFailures = "balancer.linkerd.io/failure-accrual-consecutive-max-failures"
	annAccrualMinPenalty  = "balancer.linkerd.io/failure-accrual-consecutive-min-penalty"
	annAccrualMaxPenalty  = "balancer.linkerd.io/failure-accrual-consecutive-max-penalty"

	// The EndpointSlice controller sets zone hints for such a Service; Linkerd's destination
	// controller sends each caller the endpoints hinted for its zone.
	annTopologyMode = "service.kubernetes.io/topology-mode"
)

// maxPenaltyFloor caps the probation backoff like Envoy's default max_ejection_time, so a
// failing endpoint stays out longer after each failed probe, up to 5 minutes.
const maxPenaltyFloor = 5 * time.Minute

// retryConditions maps retryOn values to retry.linkerd.io/http elements. Values that need no
// element are handled by the proxy whenever retries are on (see retryOnImplicit); the rest
// are gaps.
var retryConditions = map[meshv1alpha1.RetryOn]string{
	"5xx":           "5xx",
	"gateway-error": "gateway-error",
	// Envoy's retriable-4xx is 409 Conflict only.
	"retriable-4xx": "409",
}

// retryOnImplicit: Linkerd's balancer sends requests only to endpoints it is connected to (a
// failed connect never fails the request; an exhausted balancer's fail-fast error is
// retried), and a REFUSED_STREAM reset is retried whenever a retry policy exists.
var retryOnImplicit = map[meshv1alpha1.RetryOn]bool{"connect-failure": true, "refused-stream": true}

// serviceAnnotations are the annotations for every target Service; nil when none applies.
func serviceAnnotations(spec *meshv1alpha1.MeshPolicySpec, g *gaps) map[string]string {
	ann := map[string]string{}
	if t := spec.Timeouts; t != nil {
		if t.Request != nil {
			ann[annRequestTimeout] = duration(t.Request.Duration)
		}
		if t.Idle != nil {
			ann[annIdleTimeout] = duration(t.Idle.Duration)
		}
	}
	if r := spec.Retries; r != nil {
		retryAnnotations(r, ann, g)
	}
	if cb := spec.CircuitBreaker; cb != nil && cb.OutlierDetection != nil {
		accrualAnnotations(cb.OutlierDetection, ann, g)
	}
	if l := spec.Locality; l != nil && l.PreferClose {
		ann[annTopologyMode] = "Auto"
	}
	if len(ann) == 0 {
		return nil
	}
	return ann
}

// retryAnnotations: the limit is always written, so the proxy has a retry policy (and with it
// the implicit retries) even when no status code is retried.
func retryAnnotations(r *meshv1alpha1.Retries, ann map[string]string, g *gaps) {
	ann[annRetryLimit] = strconv.Itoa(int(r.Attempts))
	if r.PerTryTimeout != nil {
		ann[annRetryTimeout] = duration(r.PerTryTimeout.Duration)
	}
	var codes []string
	for _, on := range r.GetRetryOn() {
		if c, ok := retryConditions[on]; ok {
			codes = append(codes, c)
			continue
		}
		if !retryOnImplicit[on] {
			g.add("retries.retryOn", "Linkerd does not retry a request whose connection drops before the response (retryOn "+string(on)+"); of resets it retries refused streams only")
		}
	}
	if len(codes) > 0 {
		ann[annRetryHTTP] = strings.Join(codes, ",")
	}
}

// accrualAnnotations: consecutive-failures accrual counts 5xx responses per endpoint.
func accrualAnnotations(o *meshv1alpha1.OutlierDetection, ann map[string]string, g *gaps) {
	base := o.GetBaseEjectionTime()
	ann[annAccrual] = "consecutive"
	ann[annAccrualMaxFailures] = strconv.Itoa(int(o.Consecutive5xx))
	ann[annAccrualMinPenalty] = duration(base)
	ann[annAccrualMaxPenalty] = duration(max(base, maxPenaltyFloor))
	// Only an explicit cap is a gap: the matrix note covers the default.
	if o.MaxEjectionPercent != nil && *o.MaxEjectionPercent < 100 {
		g.add("circuitBreaker.outlierDetection.maxEjectionPercent",
			"Linkerd has no cap on the endpoints failure accrual makes unavailable, so a cap of "+
				strconv.Itoa(int(*o.MaxEjectionPercent))+"% can't be kept")
	}
}
