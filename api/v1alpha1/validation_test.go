package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{}, &env, nil) }

// invalidCase is a valid sample with a JSON merge patch that breaks exactly one rule.
type invalidCase struct {
	name   string
	sample string // file in config/samples
	patch  string // JSON merge patch (YAML), null deletes
	field  string // the field the error must name
}

var invalidCases = []invalidCase{
	// Rollout
	{"name too long for slot Services", "rollout_canary", `metadata: {name: a-rollout-name-that-is-far-too-long-for-the-slot-service-names-xx}`, "metadata.name"},
	{"preview Service equals the apex Service", "rollout_bluegreen", `spec: {strategy: {blueGreen: {previewService: storefront}}}`, "spec.strategy.blueGreen.previewService"},
	{"analysis step without spec.analysis", "rollout_canary", `spec: {analysis: null}`, "spec.analysis"},
	{"blue-green checks without spec.analysis", "rollout_bluegreen", `spec: {analysis: null}`, "spec.analysis"},
	{"progressDeadline below 10s", "rollout_canary", `spec: {progressDeadline: 5s}`, "spec.progressDeadline"},
	{"progressDeadline not a duration", "rollout_canary", `spec: {progressDeadline: ten minutes}`, "spec.progressDeadline"},
	{"duration longer than 32 characters", "rollout_canary", `spec: {progressDeadline: 1m1m1m1m1m1m1m1m1m1m1m1m1m1m1m1m1m}`, "spec.progressDeadline"},
	{"target is not a Deployment", "rollout_canary", `spec: {targetRef: {kind: StatefulSet}}`, "spec.targetRef.kind"},
	{"target without name", "rollout_canary", `spec: {targetRef: {name: null}}`, "spec.targetRef.name"},
	{"service port 0", "rollout_canary", `spec: {service: {port: 0}}`, "spec.service.port"},
	{"service port above 65535", "rollout_canary", `spec: {service: {port: 70000}}`, "spec.service.port"},
	{"targetPort 0", "rollout_canary", `spec: {service: {targetPort: 0}}`, "spec.service.targetPort"},
	{"targetPort name too long", "rollout_canary", `spec: {service: {targetPort: a-very-long-port-name}}`, "spec.service.targetPort"},
	{"service name not DNS-1035", "rollout_canary", `spec: {service: {name: Checkout}}`, "spec.service.name"},
	{"both parentRefs and httpRouteRef", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {httpRouteRef: {name: checkout}}}}`, "spec.trafficRouting.gatewayAPI"},
	{"neither parentRefs nor httpRouteRef", "rollout_bluegreen", `spec: {trafficRouting: {gatewayAPI: {httpRouteRef: null}}}`, "spec.trafficRouting.gatewayAPI"},
	{"hostnames with httpRouteRef", "rollout_bluegreen", `spec: {trafficRouting: {gatewayAPI: {hostnames: [shop.example.com]}}}`, "spec.trafficRouting.gatewayAPI.hostnames"},
	{"hostname not a DNS name", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {hostnames: [Shop_Example]}}}`, "spec.trafficRouting.gatewayAPI.hostnames[0]"},
	{"Service parent with the Gateway group", "rollout_gamma", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{group: gateway.networking.k8s.io, kind: Service, name: inventory}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs[0]"},
	{"parent kind not Gateway or Service", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{kind: Route, name: edge}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs[0].kind"},
	{"both canary and blueGreen", "rollout_canary", `spec: {strategy: {blueGreen: {autoPromote: true}}}`, "spec.strategy"},
	{"both steps and stepWeight", "rollout_canary", `spec: {strategy: {canary: {stepWeight: 10}}}`, "spec.strategy.canary"},
	{"maxWeight without stepWeight", "rollout_canary", `spec: {strategy: {canary: {maxWeight: 50}}}`, "spec.strategy.canary.maxWeight"},
	{"maxWeight below stepWeight", "rollout_gamma", `spec: {strategy: {canary: {stepWeight: 60}}}`, "spec.strategy.canary.maxWeight"},
	{"setWeight above 100", "rollout_canary", `spec: {strategy: {canary: {steps: [{setWeight: 101}]}}}`, "spec.strategy.canary.steps[0].setWeight"},
	{"weights decrease", "rollout_canary", `spec: {strategy: {canary: {steps: [{setWeight: 50}, {setWeight: 10}]}}}`, "spec.strategy.canary.steps"},
	{"step with two actions", "rollout_canary", `spec: {strategy: {canary: {steps: [{setWeight: 5, pause: {}}]}}}`, "spec.strategy.canary.steps[0]"},
	{"empty step list", "rollout_canary", `spec: {strategy: {canary: {steps: []}}}`, "spec.strategy.canary.steps"},
	{"analysis step with 0 checks", "rollout_canary", `spec: {strategy: {canary: {steps: [{analysis: {checks: 0}}]}}}`, "spec.strategy.canary.steps[0].analysis.checks"},
	{"pause duration in days", "rollout_canary", `spec: {strategy: {canary: {steps: [{pause: {duration: 1d}}]}}}`, "spec.strategy.canary.steps[0].pause.duration"},
	{"match without conditions", "rollout_gamma", `spec: {strategy: {canary: {match: [{}]}}}`, "spec.strategy.canary.match[0]"},
	{"header match of unknown type", "rollout_gamma", `spec: {strategy: {canary: {match: [{headers: [{type: Prefix, name: x-canary, value: a}]}]}}}`, "spec.strategy.canary.match[0].headers[0].type"},
	{"header name with a space", "rollout_gamma", `spec: {strategy: {canary: {match: [{headers: [{name: "x canary", value: a}]}]}}}`, "spec.strategy.canary.match[0].headers[0].name"},
	{"cookie value with a semicolon", "rollout_gamma", `spec: {strategy: {canary: {match: [{cookies: [{name: beta, value: "a;b"}]}]}}}`, "spec.strategy.canary.match[0].cookies[0].value"},
	{"mirror 0 percent", "rollout_gamma", `spec: {strategy: {canary: {mirror: {percent: 0}}}}`, "spec.strategy.canary.mirror.percent"},
	{"analysis interval below 1s", "rollout_canary", `spec: {analysis: {interval: 500ms}}`, "spec.analysis.interval"},
	{"maxHold shorter than interval", "rollout_canary", `spec: {analysis: {maxHold: 10s}}`, "spec.analysis.maxHold"},
	{"onUnreachable unknown", "rollout_canary", `spec: {analysis: {onUnreachable: Ignore}}`, "spec.analysis.onUnreachable"},
	{"failureLimit negative", "rollout_canary", `spec: {analysis: {failureLimit: -1}}`, "spec.analysis.failureLimit"},
	{"no HealthGates", "rollout_canary", `spec: {analysis: {healthGates: []}}`, "spec.analysis.healthGates"},
	{"HealthGate named twice", "rollout_canary", `spec: {analysis: {healthGates: [{name: a}, {name: a}]}}`, "spec.analysis.healthGates[1]"},
	{"blue-green checks above 100", "rollout_bluegreen", `spec: {strategy: {blueGreen: {prePromotionChecks: 101}}}`, "spec.strategy.blueGreen.prePromotionChecks"},
	// Names: label values (63) and, without spec.service.name, Service names (DNS-1035, 61 + "-a").
	{"name of 64 characters with a Service name", "rollout_gamma", `metadata: {name: ` + strings.Repeat("n", 64) + `}`, "metadata.name"},
	{"name of 62 characters without a Service name", "rollout_canary", `metadata: {name: ` + strings.Repeat("n", 62) + `}`, "metadata.name"},
	{"name with a dot without a Service name", "rollout_canary", `metadata: {name: checkout.v2}`, "metadata.name"},
	{"name starting with a digit without a Service name", "rollout_canary", `metadata: {name: 2checkout}`, "metadata.name"},
	// Names of referenced objects: subdomains, never a path.
	{"target name with a slash", "rollout_canary", `spec: {targetRef: {name: checkout/status}}`, "spec.targetRef.name"},
	{"target name in upper case", "rollout_canary", `spec: {targetRef: {name: Checkout}}`, "spec.targetRef.name"},
	{"HealthGate name with a slash", "rollout_canary", `spec: {analysis: {healthGates: [{name: a/b}]}}`, "spec.analysis.healthGates[0].name"},
	{"parent name with a slash", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge/status}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs[0].name"},
	// targetPort names as a Service takes them.
	{"targetPort name of digits only", "rollout_canary", `spec: {service: {targetPort: "8080"}}`, "spec.service.targetPort"},
	{"targetPort name with a double hyphen", "rollout_canary", `spec: {service: {targetPort: a--b}}`, "spec.service.targetPort"},
	{"targetPort name with a leading hyphen", "rollout_canary", `spec: {service: {targetPort: -http}}`, "spec.service.targetPort"},
	// parentRefs as the Gateway API takes them in the generated HTTPRoute.
	{"the same Gateway twice", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, namespace: gateways}, {name: edge, namespace: gateways}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs"},
	{"the same Gateway twice, kind defaulted in one", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge}, {kind: Gateway, name: edge}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs"},
	{"the same Gateway with the same sectionName twice", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, sectionName: https}, {name: edge, sectionName: https, port: 443}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs"},
	{"the same Gateway with and without sectionName", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, namespace: gateways}, {name: edge, namespace: gateways, sectionName: https}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs"},
	{"the same Gateway with and without port", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, sectionName: http, port: 80}, {name: edge, sectionName: https}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs"},
	{"Gateway group with kind unset", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{group: "", name: edge}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs[0]"},
	{"sectionName in upper case", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, sectionName: HTTPS}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs[0].sectionName"},
	{"sectionName with an underscore", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, sectionName: web_https}]}}}`, "spec.trafficRouting.gatewayAPI.parentRefs[0].sectionName"},
	// Probe paths as the Gateway API takes them in an Exact path match.
	{"probe path with a double slash", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {probe: {path: //x}}}}`, "spec.trafficRouting.gatewayAPI.probe.path"},
	{"probe path ending in a dot segment", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {probe: {path: /a/.}}}}`, "spec.trafficRouting.gatewayAPI.probe.path"},
	{"probe path with a dot-dot segment", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {probe: {path: /a/../b}}}}`, "spec.trafficRouting.gatewayAPI.probe.path"},
	{"probe path with a bad escape", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {probe: {path: /a%zz}}}}`, "spec.trafficRouting.gatewayAPI.probe.path"},
	{"probe path with an encoded slash", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {probe: {path: /a%2Fb}}}}`, "spec.trafficRouting.gatewayAPI.probe.path"},
	// Canary matches the route writer (internal/traffic/gatewayapi/match.go) can express.
	{"a header twice in another case", "rollout_gamma", `spec: {strategy: {canary: {match: [{headers: [{name: X-Canary, value: a}, {name: x-canary, value: b}]}]}}}`, "spec.strategy.canary.match[0].headers"},
	{"a query parameter twice", "rollout_gamma", `spec: {strategy: {canary: {match: [{queryParams: [{name: canary, value: a}, {name: canary, value: b}]}]}}}`, "spec.strategy.canary.match[0].queryParams"},
	{"query parameter value of 1025 characters", "rollout_gamma", `spec: {strategy: {canary: {match: [{queryParams: [{name: canary, value: ` + strings.Repeat("v", 1025) + `}]}]}}}`, "spec.strategy.canary.match[0].queryParams"},
	{"header value with DEL", "rollout_gamma", `spec: {strategy: {canary: {match: [{headers: [{name: x-canary, value: "a\x7Fb"}]}]}}}`, "spec.strategy.canary.match[0].headers[0].value"},
	{"header value with a line break", "rollout_gamma", `spec: {strategy: {canary: {match: [{headers: [{name: x-canary, value: "a\r\nX-Injected: 1"}]}]}}}`, "spec.strategy.canary.match[0].headers[0].value"},
	{"query parameter value with a C1 control", "rollout_gamma", `spec: {strategy: {canary: {match: [{queryParams: [{name: canary, value: "a\u0080b"}]}]}}}`, "spec.strategy.canary.match[0].queryParams[0].value"},
	{"cookie value with U+FFFF", "rollout_gamma", `spec: {strategy: {canary: {match: [{cookies: [{name: beta, value: "a\uFFFFb"}]}]}}}`, "spec.strategy.canary.match[0].cookies[0].value"},
	{"a cookie twice", "rollout_gamma", `spec: {strategy: {canary: {match: [{cookies: [{name: beta, value: a}, {name: beta, value: b}]}]}}}`, "spec.strategy.canary.match[0].cookies"},
	{"a Cookie header and cookies", "rollout_gamma", `spec: {strategy: {canary: {match: [{headers: [{name: Cookie, value: a=1}], cookies: [{name: beta, value: b}]}]}}}`, "spec.strategy.canary.match[0].headers"},
	{"three cookies", "rollout_gamma", `spec: {strategy: {canary: {match: [{cookies: [{name: a, value: "1"}, {name: b, value: "2"}, {name: c, value: "3"}]}]}}}`, "spec.strategy.canary.match[0].cookies"},
	{"cookie value of 125 characters", "rollout_gamma", `spec: {strategy: {canary: {match: [{cookies: [{name: beta, value: ` + strings.Repeat("v", 125) + `}]}]}}}`, "spec.strategy.canary.match[0].cookies[0].value"},
	// Durations: past the bound, and past what a time.Duration holds (CEL's duration() fails,
	// which the API server reports on the field).
	{"canary scaleDownDelay above the bound", "rollout_canary", `spec: {strategy: {canary: {scaleDownDelay: 2562047h1m}}}`, "spec.strategy.canary.scaleDownDelay"},
	{"canary scaleDownDelay past a time.Duration", "rollout_canary", `spec: {strategy: {canary: {scaleDownDelay: 2562048h}}}`, "spec.strategy.canary.scaleDownDelay"},
	{"pause duration above the bound", "rollout_canary", `spec: {strategy: {canary: {steps: [{pause: {duration: 2562047h1m}}]}}}`, "spec.strategy.canary.steps[0].pause.duration"},
	{"pause duration past a time.Duration", "rollout_canary", `spec: {strategy: {canary: {steps: [{pause: {duration: 99999999999999999999h}}]}}}`, "spec.strategy.canary.steps[0].pause.duration"},
	{"blue-green scaleDownDelay above the bound", "rollout_bluegreen", `spec: {strategy: {blueGreen: {scaleDownDelay: 2562047h1m}}}`, "spec.strategy.blueGreen.scaleDownDelay"},
	{"maxHold above the bound", "rollout_canary", `spec: {analysis: {maxHold: 2562047h1m}}`, "spec.analysis.maxHold"},
	{"maxHold past a time.Duration", "rollout_canary", `spec: {analysis: {maxHold: 2562048h}}`, "spec.analysis.maxHold"},
	{"progressDeadline past a time.Duration", "rollout_canary", `spec: {progressDeadline: 2562048h}`, "spec.progressDeadline"},

	// HealthGate
	{"builtin without dataPlane", "healthgate_success_rate", `spec: {dataPlane: null}`, "spec.dataPlane"},
	{"both builtin and query", "healthgate_success_rate", `spec: {metrics: [{name: m, builtin: request-success-rate, query: "up", thresholdRange: {min: 1}}]}`, "spec.metrics[0]"},
	{"neither builtin nor query", "healthgate_success_rate", `spec: {metrics: [{name: m, thresholdRange: {min: 1}}]}`, "spec.metrics[0]"},
	{"no threshold and no comparison", "healthgate_success_rate", `spec: {metrics: [{name: m, builtin: request-success-rate}]}`, "spec.metrics[0]"},
	{"threshold min above max", "healthgate_success_rate", `spec: {metrics: [{name: m, builtin: request-success-rate, thresholdRange: {min: 0.9, max: 0.5}}]}`, "spec.metrics[0].thresholdRange"},
	{"empty threshold range", "healthgate_success_rate", `spec: {metrics: [{name: m, builtin: request-success-rate, thresholdRange: {}}]}`, "spec.metrics[0].thresholdRange"},
	{"comparison of a custom query without direction", "healthgate_latency", `spec: {metrics: [{name: p99, query: "up", compareToStable: {maxDegradation: 0.1}}]}`, "spec.metrics[0].compareToStable"},
	{"negative maxDegradation", "healthgate_success_rate", `spec: {metrics: [{name: m, builtin: request-success-rate, compareToStable: {maxDegradation: -0.1}}]}`, "spec.metrics[0].compareToStable.maxDegradation"},
	{"comparison with a target but no stable service", "healthgate_latency", `spec: {metrics: [{name: p99, query: "up", compareToStable: {maxDegradation: 0.1, direction: LowerIsBetter}}], target: {stableService: null}}`, "spec.target"},
	{"Prometheus address not http", "healthgate_success_rate", `spec: {prometheus: {addresses: ["ftp://prometheus:9090"]}}`, "spec.prometheus.addresses"},
	{"Prometheus address not a URL", "healthgate_success_rate", `spec: {prometheus: {addresses: ["prometheus:9090 "]}}`, "spec.prometheus.addresses"},
	{"no Prometheus address", "healthgate_success_rate", `spec: {prometheus: {addresses: []}}`, "spec.prometheus.addresses"},
	{"query timeout above 5m", "healthgate_success_rate", `spec: {prometheus: {timeout: 10m}}`, "spec.prometheus.timeout"},
	{"query timeout longer than 32 characters", "healthgate_success_rate", `spec: {prometheus: {timeout: 1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s}}`, "spec.prometheus.timeout"},
	{"noData unknown", "healthgate_success_rate", `spec: {noData: Maybe}`, "spec.noData"},
	{"metric name not a DNS label", "healthgate_success_rate", `spec: {metrics: [{name: Success_Rate, builtin: request-success-rate, thresholdRange: {min: 1}}]}`, "spec.metrics[0].name"},
	{"no metrics", "healthgate_success_rate", `spec: {metrics: []}`, "spec.metrics"},
	{"window below 1s", "healthgate_latency", `spec: {window: 100ms}`, "spec.window"},
	{"interval below 1s", "healthgate_latency", `spec: {interval: 100ms}`, "spec.interval"},
	{"window past a time.Duration", "healthgate_latency", `spec: {window: 2562048h}`, "spec.window"},

	// MeshPolicy
	{"policy that sets nothing", "meshpolicy_catalog", `spec: {retries: null, rateLimit: null, loadBalancer: null}`, "spec"},
	{"target is not a Service", "meshpolicy_payments", `spec: {targetRefs: [{kind: Deployment, name: payments}]}`, "spec.targetRefs[0].kind"},
	{"unknown provider", "meshpolicy_payments", `spec: {provider: envoy}`, "spec.provider"},
	{"unknown mTLS mode", "meshpolicy_payments", `spec: {mtls: {mode: Optional}}`, "spec.mtls.mode"},
	{"source with service account and namespace", "meshpolicy_payments", `spec: {authorization: {rules: [{from: [{serviceAccount: shop/checkout, namespace: shop}]}]}}`, "spec.authorization.rules[0].from[0]"},
	{"service account without namespace", "meshpolicy_payments", `spec: {authorization: {rules: [{from: [{serviceAccount: checkout}]}]}}`, "spec.authorization.rules[0].from[0].serviceAccount"},
	{"destination without methods or paths", "meshpolicy_payments", `spec: {authorization: {rules: [{to: [{}]}]}}`, "spec.authorization.rules[0].to[0]"},
	{"relative path", "meshpolicy_payments", `spec: {authorization: {rules: [{to: [{paths: ["api/*"]}]}]}}`, "spec.authorization.rules[0].to[0].paths[0]"},
	{"unknown method", "meshpolicy_payments", `spec: {authorization: {rules: [{to: [{methods: [FETCH]}]}]}}`, "spec.authorization.rules[0].to[0].methods[0]"},
	{"per-try timeout above request timeout", "meshpolicy_payments", `spec: {retries: {perTryTimeout: 10s}}`, "spec.retries.perTryTimeout"},
	{"zero retry attempts", "meshpolicy_payments", `spec: {retries: {attempts: 0}}`, "spec.retries.attempts"},
	{"unknown retry condition", "meshpolicy_payments", `spec: {retries: {retryOn: [timeout]}}`, "spec.retries.retryOn[0]"},
	{"burst below rate", "meshpolicy_catalog", `spec: {rateLimit: {requestsPerSecond: 100, burst: 10}}`, "spec.rateLimit.burst"},
	{"consistent hash without a key", "meshpolicy_catalog", `spec: {loadBalancer: {consistentHash: null}}`, "spec.loadBalancer"},
	{"consistent hash on header and cookie", "meshpolicy_catalog", `spec: {loadBalancer: {consistentHash: {header: x-user}}}`, "spec.loadBalancer.consistentHash"},
	{"ejection percent 0", "meshpolicy_payments", `spec: {circuitBreaker: {outlierDetection: {maxEjectionPercent: 0}}}`, "spec.circuitBreaker.outlierDetection.maxEjectionPercent"},
	{"circuit breaker that sets nothing", "meshpolicy_payments", `spec: {circuitBreaker: {maxConnections: null, maxPendingRequests: null, outlierDetection: null}}`, "spec.circuitBreaker"},
	{"timeouts that set nothing", "meshpolicy_payments", `spec: {timeouts: {request: null, idle: null}}`, "spec.timeouts"},
	{"request timeout not a duration", "meshpolicy_payments", `spec: {timeouts: {request: 5 seconds}}`, "spec.timeouts.request"},
	{"request timeout longer than 32 characters", "meshpolicy_payments", `spec: {timeouts: {request: 1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s1s}}`, "spec.timeouts.request"},
	{"path with a C1 control", "meshpolicy_payments", `spec: {authorization: {rules: [{to: [{paths: ["/api\u0090/*"]}]}]}}`, "spec.authorization.rules[0].to[0].paths[0]"},
	{"hash cookie name with a space", "meshpolicy_catalog", `spec: {loadBalancer: {consistentHash: {cookie: {name: "my session"}}}}`, "spec.loadBalancer.consistentHash.cookie.name"},
	{"name of 64 characters", "meshpolicy_payments", `metadata: {name: ` + strings.Repeat("n", 64) + `}`, "metadata.name"},
	{"request timeout above the bound", "meshpolicy_payments", `spec: {timeouts: {request: 2562047h1m}}`, "spec.timeouts.request"},
	{"request timeout past a time.Duration", "meshpolicy_payments", `spec: {timeouts: {request: 2562048h}}`, "spec.timeouts.request"},
	{"idle timeout above the bound", "meshpolicy_payments", `spec: {timeouts: {idle: 2562047h1m}}`, "spec.timeouts.idle"},
	{"idle timeout past a time.Duration", "meshpolicy_payments", `spec: {timeouts: {idle: 99999999999999999999h}}`, "spec.timeouts.idle"},
	{"per-try timeout above the bound", "meshpolicy_payments", `spec: {timeouts: null, retries: {perTryTimeout: 2562047h1m}}`, "spec.retries.perTryTimeout"},
	{"ejection sweep interval above the bound", "meshpolicy_payments", `spec: {circuitBreaker: {outlierDetection: {interval: 2562047h1m}}}`, "spec.circuitBreaker.outlierDetection.interval"},
	{"base ejection time above the bound", "meshpolicy_payments", `spec: {circuitBreaker: {outlierDetection: {baseEjectionTime: 2562047h1m}}}`, "spec.circuitBreaker.outlierDetection.baseEjectionTime"},
	{"base ejection time past a time.Duration", "meshpolicy_payments", `spec: {circuitBreaker: {outlierDetection: {baseEjectionTime: 2562048h}}}`, "spec.circuitBreaker.outlierDetection.baseEjectionTime"},
	{"hash cookie TTL above the bound", "meshpolicy_catalog", `spec: {loadBalancer: {consistentHash: {cookie: {ttl: 2562047h1m}}}}`, "spec.loadBalancer.consistentHash.cookie.ttl"},
}

// validCase is a valid sample with a JSON merge patch that stays just inside a rule: the
// neighbour of an invalid case, which must still be accepted.
type validCase struct {
	name   string
	sample string
	patch  string
}

var validCases = []validCase{
	// Rollout
	{"name of 63 characters with a Service name", "rollout_gamma", `metadata: {name: ` + strings.Repeat("n", 63) + `}`},
	{"name with dots with a Service name", "rollout_gamma", `metadata: {name: inventory.v2}`},
	{"name of 61 characters without a Service name", "rollout_canary", `metadata: {name: ` + strings.Repeat("n", 61) + `}`},
	{"target name with dots", "rollout_canary", `spec: {targetRef: {name: checkout.v2}}`},
	{"targetPort name with a digit and a hyphen", "rollout_canary", `spec: {service: {targetPort: http-2}}`},
	{"targetPort name of 15 characters", "rollout_canary", `spec: {service: {targetPort: abcdefghijklmno}}`},
	{"targetPort number", "rollout_canary", `spec: {service: {targetPort: 8080}}`},
	{"the same Gateway with two sectionNames", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, namespace: gateways, sectionName: http}, {name: edge, namespace: gateways, sectionName: https}]}}}`},
	{"the same Gateway with two sectionNames and ports", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, sectionName: http, port: 80}, {name: edge, sectionName: https, port: 443}]}}}`},
	{"Gateways of the same name in two namespaces", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, namespace: gateways}, {name: edge}]}}}`},
	{"a Gateway and a Service of the same name", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge}, {group: "", kind: Service, name: edge}]}}}`},
	{"Gateway group with kind unset", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{group: gateway.networking.k8s.io, name: edge}]}}}`},
	{"sectionName with dots", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {parentRefs: [{name: edge, sectionName: web.https}]}}}`},
	{"probe path with escapes and dots", "rollout_canary", `spec: {trafficRouting: {gatewayAPI: {probe: {path: "/.well-known/a%20b/v1.2/~x"}}}}`},
	{"two headers differing in more than case", "rollout_gamma", `spec: {strategy: {canary: {match: [{headers: [{name: X-Canary, value: a}, {name: x-canary-2, value: b}]}]}}}`},
	{"query parameters differing in case", "rollout_gamma", `spec: {strategy: {canary: {match: [{queryParams: [{name: canary, value: a}, {name: Canary, value: b}]}]}}}`},
	{"query parameter value of 1024 characters and header value of 4096", "rollout_gamma", `spec: {strategy: {canary: {match: [{queryParams: [{name: canary, value: ` + strings.Repeat("v", 1024) + `}], headers: [{name: x-canary, value: ` + strings.Repeat("h", 4096) + `}]}]}}}`},
	{"values with a tab and non-ASCII letters", "rollout_gamma", `spec: {strategy: {canary: {match: [{headers: [{name: x-canary, value: "a\tb ☃ é"}], queryParams: [{name: q, value: "日本語"}], cookies: [{name: beta, value: "é🙂"}]}]}}}`},
	{"a Cookie header condition alone", "rollout_gamma", `spec: {strategy: {canary: {match: [{headers: [{name: Cookie, value: a=1}]}, {cookies: [{name: beta, value: b}]}]}}}`},
	{"two cookies with values of 124 characters", "rollout_gamma", `spec: {strategy: {canary: {match: [{cookies: [{name: a, value: ` + strings.Repeat("v", 124) + `}, {name: b, value: ` + strings.Repeat("w", 124) + `}]}]}}}`},
	{"durations at the bound", "rollout_canary", `spec: {strategy: {canary: {scaleDownDelay: 2562047h, steps: [{pause: {duration: 2562047h}}]}}, analysis: {maxHold: 2562047h}}`},
	{"blue-green scaleDownDelay at the bound", "rollout_bluegreen", `spec: {strategy: {blueGreen: {scaleDownDelay: 2562047h}}}`},

	// MeshPolicy
	{"name of 63 characters", "meshpolicy_payments", `metadata: {name: ` + strings.Repeat("n", 63) + `}`},
	{"durations at the bound", "meshpolicy_payments", `spec: {timeouts: {request: 2562047h, idle: 2562047h}, retries: {perTryTimeout: 2562047h}, circuitBreaker: {outlierDetection: {interval: 2562047h, baseEjectionTime: 2562047h}}}`},
	{"path with non-ASCII letters", "meshpolicy_payments", `spec: {authorization: {rules: [{to: [{paths: ["/käse/*"]}]}]}}`},
	{"hash cookie TTL at the bound", "meshpolicy_catalog", `spec: {loadBalancer: {consistentHash: {cookie: {ttl: 2562047h}}}}`},
}

func TestValidNeighboursAreAccepted(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "valid")
	for _, tc := range validCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := patchedSample(t, tc.sample, tc.patch)
			obj.SetNamespace(ns)
			if err := env.Client.Create(ctx, obj, client.FieldValidation("Strict"), client.DryRunAll); err != nil {
				t.Fatalf("rejected: %v", err)
			}
		})
	}
}

func TestInvalidObjectsAreRejectedNamingTheField(t *testing.T) {
	if len(invalidCases) < 25 {
		t.Fatalf("the table must have at least 25 invalid objects, has %d", len(invalidCases))
	}
	ctx := context.Background()
	ns := createNamespace(t, "invalid")
	var errs []string
	for _, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			obj := patchedSample(t, tc.sample, tc.patch)
			obj.SetNamespace(ns)
			err := env.Client.Create(ctx, obj, client.FieldValidation("Strict"))
			if err == nil {
				t.Fatalf("accepted; want a rejection naming %s", tc.field)
			}
			msg := err.Error()
			errs = append(errs, msg)
			if !namesField(msg, tc.field) {
				t.Fatalf("error does not name %q:\n%s", tc.field, msg)
			}
		})
	}

	// Every CEL rule of every CRD must be proven by some case above: its message must appear
	// in one of the rejections.
	for _, m := range celMessages(t) {
		found := false
		for _, e := range errs {
			if strings.Contains(e, m) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no invalid case triggers the CEL rule %q", m)
		}
	}
}

func TestSamplesAreAccepted(t *testing.T) {
	ctx := context.Background()
	ns := createNamespace(t, "samples")
	for _, name := range sampleNames(t) {
		t.Run(name, func(t *testing.T) {
			obj := patchedSample(t, name, "")
			obj.SetNamespace(ns)
			// Strict: an unknown field (one the schema would prune silently) is an error too.
			if err := env.Client.Create(ctx, obj, client.FieldValidation("Strict")); err != nil {
				t.Fatalf("sample %s rejected: %v", name, err)
			}
		})
	}
}

// namesField reports whether an API error names the field: as "<field>: " or "<field>[" in a
// field error, or, for object-level rules, in the message itself.
func namesField(msg, field string) bool {
	return strings.Contains(msg, field+": ") || strings.Contains(msg, field+" ") || strings.Contains(msg, field+",")
}

func samplesDir() string { return filepath.Join(testenv.RepoRoot(), "config", "samples") }

func sampleNames(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(samplesDir(), "mesh_v1alpha1_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "mesh_v1alpha1_"), ".yaml"))
	}
	return names
}

func patchedSample(t testing.TB, sample, patch string) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(samplesDir(), "mesh_v1alpha1_"+sample+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if patch != "" {
		p, err := yaml.YAMLToJSON([]byte(patch))
		if err != nil {
			t.Fatalf("bad patch %q: %v", patch, err)
		}
		if doc, err = jsonpatch.MergePatch(doc, p); err != nil {
			t.Fatal(err)
		}
	}
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(doc); err != nil {
		t.Fatal(err)
	}
	return obj
}

func createNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// celMessages lists the message of every x-kubernetes-validations rule of the CRDs.
func celMessages(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "*.yaml"))
	seen := map[string]bool{}
	var walk func(s *apiextensionsv1.JSONSchemaProps)
	walk = func(s *apiextensionsv1.JSONSchemaProps) {
		if s == nil {
			return
		}
		for _, r := range s.XValidations {
			seen[r.Message] = true
		}
		for _, p := range s.Properties {
			walk(&p)
		}
		if s.Items != nil {
			walk(s.Items.Schema)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.Unmarshal(data, &crd); err != nil {
			t.Fatal(fmt.Errorf("%s: %w", f, err))
		}
		for _, v := range crd.Spec.Versions {
			walk(v.Schema.OpenAPIV3Schema)
		}
	}
	var out []string
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
