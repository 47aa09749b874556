package traefik

import (
	"fmt"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Integers are int64 throughout: unstructured objects hold JSON numbers as int64.

// byHost groups requests by their Host header. Traefik's rate limiter groups by client IP when
// no criterion is set, which would give each client its own allowance; per Host the limit
// caps the target as a whole (per Traefik replica and route, as the matrix says).
func byHost() map[string]any { return map[string]any{"requestHost": true} }

// rateLimitSpec: a token bucket of requestsPerSecond per second, burst deep.
func rateLimitSpec(rl *meshv1alpha1.RateLimit) map[string]any {
	return map[string]any{
		"average":         int64(rl.RequestsPerSecond),
		"period":          "1s",
		"burst":           int64(rl.GetBurst()),
		"sourceCriterion": byHost(),
	}
}

// inFlightSpec caps concurrent requests; over the cap Traefik answers 429 at once.
func inFlightSpec(maxRequests int32) map[string]any {
	return map[string]any{"amount": int64(maxRequests), "sourceCriterion": byHost()}
}

// breakerExpression opens the breaker when most responses of the last 10 s (the window of
// Traefik's breaker metrics) are server errors. Traefik has no consecutive-error count, and a
// breaker cuts off the whole route, so the threshold is high: a failing canary taking a small
// share of the traffic must not cut off the stable version too.
const breakerExpression = "ResponseCodeRatio(500, 600, 0, 600) > 0.5"

// recoveryDuration is how long the breaker ramps traffic back after fallbackDuration (Traefik's
// default, written out so the object says what it does).
const recoveryDuration = "10s"

// circuitBreakerSpec maps outlier detection onto Traefik's circuit breaker: the sweep interval
// is how often it checks, the ejection time how long it stays open.
func circuitBreakerSpec(od *meshv1alpha1.OutlierDetection) (map[string]any, error) {
	check, err := formatDuration(od.GetInterval())
	if err != nil {
		return nil, fmt.Errorf("circuitBreaker.outlierDetection.interval: %w", err)
	}
	fallback, err := formatDuration(od.GetBaseEjectionTime())
	if err != nil {
		return nil, fmt.Errorf("circuitBreaker.outlierDetection.baseEjectionTime: %w", err)
	}
	return map[string]any{
		"expression":       breakerExpression,
		"checkPeriod":      check,
		"fallbackDuration": fallback,
		"recoveryDuration": recoveryDuration,
	}, nil
}
