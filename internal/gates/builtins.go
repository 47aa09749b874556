package gates

import (
	"fmt"
	"strings"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// dataPlaneMetrics are the metric names and label matchers one data plane's builtin queries
// use. Every selector is a query template: {{ .Namespace }} and {{ .CanaryService }} select
// the canary slot's Service, {{ .Window }} is the rate window.
type dataPlaneMetrics struct {
	// requests is a counter of requests (or responses) with one series per status.
	requests string
	// canary is the label matchers that select the canary's traffic.
	canary string
	// failed is the extra matcher that selects failed (5xx) requests.
	failed string
	// durationBuckets is a classic histogram of request durations.
	durationBuckets string
	// durationInMilliseconds: the histogram is in milliseconds and the p99 is divided by 1000.
	durationInMilliseconds bool
}

// builtinMetrics, per data plane. docs/healthgate.md shows the queries they give.
var builtinMetrics = map[meshv1alpha1.DataPlane]dataPlaneMetrics{
	// Traefik (Gateway API provider): one `service` label per route rule and backend,
	// httproute-<ns>-<route>-gw-<gwns>-<gw>-ep-<entrypoint>-<rule>-<hash>-svc-<ns>-<svc>-<port>@kubernetesgateway.
	// Anchoring on "-svc-<ns>-<svc>-<port digits>@kubernetesgateway" selects the canary
	// through any route or rule, and checkout-b never matches checkout-bb.
	meshv1alpha1.DataPlaneTraefik: {
		requests:        "traefik_service_requests_total",
		canary:          `service=~".*-svc-{{ .Namespace }}-{{ .CanaryService }}-[0-9]+@kubernetesgateway"`,
		failed:          `code=~"5.."`,
		durationBuckets: "traefik_service_request_duration_seconds_bucket",
	},
	// Istio sidecars (and gateways), as reported by the server-side proxy.
	meshv1alpha1.DataPlaneIstio: {
		requests:               "istio_requests_total",
		canary:                 `reporter="destination",destination_service_namespace="{{ .Namespace }}",destination_service_name="{{ .CanaryService }}"`,
		failed:                 `response_code=~"5.."`,
		durationBuckets:        "istio_request_duration_milliseconds_bucket",
		durationInMilliseconds: true,
	},
	// Linkerd proxies: outbound traffic of every meshed client to the canary Service, with
	// Linkerd's own success classification.
	meshv1alpha1.DataPlaneLinkerd: {
		requests:               "response_total",
		canary:                 `direction="outbound",dst_namespace="{{ .Namespace }}",dst_service="{{ .CanaryService }}"`,
		failed:                 `classification="failure"`,
		durationBuckets:        "response_latency_ms_bucket",
		durationInMilliseconds: true,
	},
	// Envoy upstream cluster statistics with Contour's cluster stat names,
	// <namespace>_<service>_<port> (Kubernetes names have no "_", so this is unambiguous).
	meshv1alpha1.DataPlaneEnvoy: {
		requests:               "envoy_cluster_upstream_rq",
		canary:                 `envoy_cluster_name=~"{{ .Namespace }}_{{ .CanaryService }}_[0-9]+"`,
		failed:                 `envoy_response_code=~"5.."`,
		durationBuckets:        "envoy_cluster_upstream_rq_time_bucket",
		durationInMilliseconds: true,
	},
	// ingress-nginx: `namespace` is the Ingress's namespace, `service` its backend Service.
	meshv1alpha1.DataPlaneNginx: {
		requests:        "nginx_ingress_controller_requests",
		canary:          `namespace="{{ .Namespace }}",service="{{ .CanaryService }}"`,
		failed:          `status=~"5.."`,
		durationBuckets: "nginx_ingress_controller_request_duration_seconds_bucket",
	},
}

// dataPlaneNames and builtinNames are listed in error messages, in the API's order.
var (
	dataPlaneNames = []meshv1alpha1.DataPlane{
		meshv1alpha1.DataPlaneTraefik, meshv1alpha1.DataPlaneIstio, meshv1alpha1.DataPlaneLinkerd,
		meshv1alpha1.DataPlaneEnvoy, meshv1alpha1.DataPlaneNginx,
	}
	builtinNames = []meshv1alpha1.BuiltinMetric{meshv1alpha1.BuiltinRequestSuccessRate, meshv1alpha1.BuiltinRequestDurationP99}
)

// BuiltinQuery returns the query template of a builtin metric for a data plane, to be
// expanded with Expand. Both builtins select the canary's traffic ({{ .Namespace }},
// {{ .CanaryService }}) over {{ .Window }}:
//   - request-success-rate: the share of non-5xx responses, 0..1. Without traffic the query
//     returns no series (no series at all) or NaN (series, but no request in the window);
//     never 1.
//   - request-duration-p99: the 99th percentile of request duration, in seconds; NaN or no
//     series without traffic.
func BuiltinQuery(dp meshv1alpha1.DataPlane, m meshv1alpha1.BuiltinMetric) (string, error) {
	d, err := metricsOf(dp)
	if err != nil {
		return "", err
	}
	switch m {
	case meshv1alpha1.BuiltinRequestSuccessRate:
		// Failures are counted, not successes: a canary failing every request has no non-5xx
		// series at all, and "successes / total" would then be no data instead of 0. The
		// `or vector(0)` only fills in "no failure"; the denominator alone decides whether
		// there is data, so no traffic never reads as 1.
		return fmt.Sprintf("1 - (sum(rate(%s{%s,%s}[{{ .Window }}])) or vector(0)) / sum(rate(%s{%s}[{{ .Window }}]))",
			d.requests, d.canary, d.failed, d.requests, d.canary), nil
	case meshv1alpha1.BuiltinRequestDurationP99:
		q := fmt.Sprintf("histogram_quantile(0.99, sum by (le) (rate(%s{%s}[{{ .Window }}])))", d.durationBuckets, d.canary)
		if d.durationInMilliseconds {
			q += " / 1000"
		}
		return q, nil
	default:
		return "", fmt.Errorf("unknown builtin metric %q: allowed are %s", m, joinNames(builtinNames))
	}
}

// SampleCountQuery returns the query template of the number of requests the canary received
// in {{ .Window }}, the population the builtins judge (for minSamples). No series without
// traffic.
func SampleCountQuery(dp meshv1alpha1.DataPlane) (string, error) {
	d, err := metricsOf(dp)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("sum(increase(%s{%s}[{{ .Window }}]))", d.requests, d.canary), nil
}

func metricsOf(dp meshv1alpha1.DataPlane) (dataPlaneMetrics, error) {
	d, ok := builtinMetrics[dp]
	if !ok {
		return dataPlaneMetrics{}, fmt.Errorf("unknown data plane %q: allowed are %s", dp, joinNames(dataPlaneNames))
	}
	return d, nil
}

func joinNames[T ~string](names []T) string {
	s := make([]string, len(names))
	for i, n := range names {
		s[i] = string(n)
	}
	return strings.Join(s, ", ")
}
