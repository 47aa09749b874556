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
