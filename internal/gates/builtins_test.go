package gates

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"

	"github.com/prometheus/prometheus/promql/parser"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

var (
	allDataPlanes = []meshv1alpha1.DataPlane{
		meshv1alpha1.DataPlaneTraefik, meshv1alpha1.DataPlaneIstio, meshv1alpha1.DataPlaneLinkerd,
		meshv1alpha1.DataPlaneEnvoy, meshv1alpha1.DataPlaneNginx,
	}
	allBuiltins = []meshv1alpha1.BuiltinMetric{meshv1alpha1.BuiltinRequestSuccessRate, meshv1alpha1.BuiltinRequestDurationP99}
)

// testSeries describes, per data plane, the labels of the series the canary (checkout-b in
// shop, SampleVars) produces, of series that must not count (checkout-bb, the stable slot),
// and the status label with a success and a failure value.
var testSeries = map[meshv1alpha1.DataPlane]struct {
	canary, others []string
	status, ok, ko string
	ms             bool
}{
	meshv1alpha1.DataPlaneTraefik: {
		canary: []string{
			`service="httproute-shop-checkout-gw-gateways-edge-ep-web-0-1a2b3c4d-svc-shop-checkout-b-80@kubernetesgateway"`,
			`service="httproute-shop-checkout-gw-gateways-edge-ep-web-1-5e6f7a8b-svc-shop-checkout-b-80@kubernetesgateway"`,
		},
		others: []string{
			`service="httproute-shop-checkout-gw-gateways-edge-ep-web-0-1a2b3c4d-svc-shop-checkout-bb-80@kubernetesgateway"`,
			`service="httproute-shop-checkout-gw-gateways-edge-ep-web-0-1a2b3c4d-svc-shop-checkout-a-80@kubernetesgateway"`,
			`service="httproute-other-checkout-gw-gateways-edge-ep-web-0-1a2b3c4d-svc-other-checkout-b-80@kubernetesgateway"`,
			`service="httproute-shop-checkout-gw-gateways-edge-ep-web-0-1a2b3c4d-wrr@kubernetesgateway"`,
		},
		status: "code", ok: "200", ko: "503",
	},
	meshv1alpha1.DataPlaneIstio: {
		canary: []string{`reporter="destination",destination_service_namespace="shop",destination_service_name="checkout-b"`},
		others: []string{
			`reporter="destination",destination_service_namespace="shop",destination_service_name="checkout-bb"`,
			`reporter="source",destination_service_namespace="shop",destination_service_name="checkout-b"`,
			`reporter="destination",destination_service_namespace="other",destination_service_name="checkout-b"`,
		},
		status: "response_code", ok: "200", ko: "503", ms: true,
	},
	meshv1alpha1.DataPlaneLinkerd: {
		canary: []string{`direction="outbound",dst_namespace="shop",dst_service="checkout-b"`},
		others: []string{
			`direction="outbound",dst_namespace="shop",dst_service="checkout-bb"`,
			`direction="inbound",dst_namespace="shop",dst_service="checkout-b"`,
		},
		status: "classification", ok: "success", ko: "failure", ms: true,
	},
	meshv1alpha1.DataPlaneEnvoy: {
		canary: []string{`envoy_cluster_name="shop_checkout-b_80"`, `envoy_cluster_name="shop_checkout-b_8080"`},
		others: []string{`envoy_cluster_name="shop_checkout-bb_80"`, `envoy_cluster_name="shop_checkout-a_80"`, `envoy_cluster_name="other_shop_checkout-b_80"`},
		status: "envoy_response_code", ok: "200", ko: "503", ms: true,
	},
	meshv1alpha1.DataPlaneNginx: {
		canary: []string{`namespace="shop",service="checkout-b"`},
		others: []string{`namespace="shop",service="checkout-bb"`, `namespace="other",service="checkout-b"`},
		status: "status", ok: "200", ko: "503",
	},
}

func TestBuiltinQueriesExpandAndParse(t *testing.T) {
	for _, dp := range allDataPlanes {
		queries := map[string]func() (string, error){"sample count": func() (string, error) { return SampleCountQuery(dp) }}
		for _, b := range allBuiltins {
			queries[string(b)] = func() (string, error) { return BuiltinQuery(dp, b) }
		}
		for what, get := range queries {
			t.Run(string(dp)+"/"+what, func(t *testing.T) {
				tmpl, err := get()
				if err != nil {
					t.Fatal(err)
				}
				for _, v := range []string{"{{ .Namespace }}", "{{ .CanaryService }}", "{{ .Window }}"} {
					if !strings.Contains(tmpl, v) {
						t.Errorf("template lacks %s: %s", v, tmpl)
					}
				}
				q, err := Expand(tmpl, SampleVars)
				if err != nil {
					t.Fatal(err)
				}
				expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
				if err != nil {
					t.Fatalf("%v\n%s", err, q)
				}
				if expr.Type() != parser.ValueTypeVector {
					t.Errorf("query returns a %s: %s", expr.Type(), q)
				}
				checkSelectsOnlyTheCanary(t, dp, expr)
			})
		}
	}
}

// checkSelectsOnlyTheCanary checks every selector of a builtin against the test series: it
// selects every canary series and none of the others.
func checkSelectsOnlyTheCanary(t *testing.T, dp meshv1alpha1.DataPlane, expr parser.Expr) {
	t.Helper()
	ts := testSeries[dp]
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, s := range append(append([]string(nil), ts.canary...), ts.others...) {
			lbls, err := parser.NewParser(parser.Options{}).ParseMetric("{" + s + "," + ts.status + `="` + ts.ko + `",le="+Inf"}`)
			if err != nil {
				t.Fatal(err)
			}
			selected := true
			for _, m := range vs.LabelMatchers {
				if m.Name != model.MetricNameLabel && !m.Matches(lbls.Get(m.Name)) {
					selected = false
				}
			}
			if want := slices.Contains(ts.canary, s); selected != want {
				t.Errorf("%s selects %s: %v, want %v", vs, s, selected, want)
			}
		}
		return nil
	})
}

func TestBuiltinsRejectUnknownNames(t *testing.T) {
	_, err := BuiltinQuery("haproxy", meshv1alpha1.BuiltinRequestSuccessRate)
	wantErr(t, err, `unknown data plane "haproxy": allowed are traefik, istio, linkerd, envoy, nginx`)
	_, err = BuiltinQuery(meshv1alpha1.DataPlaneIstio, "error-rate")
	wantErr(t, err, `unknown builtin metric "error-rate": allowed are request-success-rate, request-duration-p99`)
	_, err = SampleCountQuery("")
	wantErr(t, err, `unknown data plane "": allowed are traefik, istio, linkerd, envoy, nginx`)
}

func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestBuiltinSemanticsWithPromtool runs the builtins on synthetic series with `promtool test
// rules` (the Prometheus of this machine) for every data plane: the success rate is the
// share of non-5xx, 0 when everything fails, NaN when the canary has series but no request
// in the window, no series at all when it has none (never 1 without traffic); the p99 is in
// seconds; the sample count counts the canary's requests only.
func TestBuiltinSemanticsWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is missing: apt-get install -y --no-install-recommends prometheus (.ci/run does)")
	}
	var doc strings.Builder
	doc.WriteString("evaluation_interval: 1m\ntests:\n")
	for _, dp := range allDataPlanes {
		writePromtoolTests(t, &doc, dp)
	}
	file := filepath.Join(t.TempDir(), "builtins_test.yaml")
	if err := os.WriteFile(file, []byte(doc.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "test", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s\n%s", err, out, doc.String())
	}
}

// writePromtoolTests writes five scenarios for one data plane: 10% failures, all failures,
// no failure, idle (series but no request in the window) and no canary series at all. Traffic to the
// other services always fails and is slow, so that selecting it shows.
func writePromtoolTests(t *testing.T, doc *strings.Builder, dp meshv1alpha1.DataPlane) {
	t.Helper()
	ts := testSeries[dp]
	vars := SampleVars
	vars.Window = "5m"
	expand := func(tmpl string, err error) string {
		if err != nil {
			t.Fatal(err)
		}
		q, err := Expand(tmpl, vars)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	d := builtinMetrics[dp]
	rate := expand(BuiltinQuery(dp, meshv1alpha1.BuiltinRequestSuccessRate))
	p99 := expand(BuiltinQuery(dp, meshv1alpha1.BuiltinRequestDurationP99))
	count := expand(SampleCountQuery(dp))
	le := []string{"0.1", "0.5", "+Inf"}
	if ts.ms {
		le = []string{"100", "500", "+Inf"}
	}
	type scenario struct {
		name           string
		ok, ko         string // per-minute increments of the canary's counters ("" = no series)
		rate, p99, cnt string // expected values: a number, "NaN" or "" (no series)
	}
	for _, sc := range []scenario{
		{"10% failures", "90", "10", "0.9", "0.5", "500"},
		{"all failures", "", "100", "0", "0.5", "500"},
		{"no failure", "100", "", "1", "0.5", "500"},
		{"idle", "0", "0", "NaN", "NaN", "0"},
		{"no canary series", "", "", "", "", ""},
	} {
		fmt.Fprintf(doc, "- name: %s %s\n  interval: 1m\n  input_series:\n", dp, sc.name)
		series := func(metric, lbls, values string) {
			fmt.Fprintf(doc, "  - series: '%s{%s}'\n    values: '%s'\n", metric, lbls, values)
		}
		for _, o := range ts.others {
			series(d.requests, o+","+ts.status+`="`+ts.ko+`"`, "0+1000x10")
			series(d.durationBuckets, o+`,le="+Inf"`, "0+1000x10")
		}
		c := ts.canary[0]
		if sc.ok != "" {
			series(d.requests, c+","+ts.status+`="`+ts.ok+`"`, "0+"+sc.ok+"x10")
		}
		if sc.ko != "" {
			series(d.requests, c+","+ts.status+`="`+ts.ko+`"`, "0+"+sc.ko+"x10")
		}
		if sc.ok != "" || sc.ko != "" {
			// Of every 100 requests, 90 under the first bound and 99 under the second.
			bucket := map[string]string{le[0]: "0+90x10", le[1]: "0+99x10", le[2]: "0+100x10"}
			if sc.cnt == "0" {
				bucket = map[string]string{le[0]: "0+0x10", le[1]: "0+0x10", le[2]: "0+0x10"}
			}
			for _, b := range le {
				series(d.durationBuckets, c+`,le="`+b+`"`, bucket[b])
			}
		}
		doc.WriteString("  promql_expr_test:\n")
		for _, e := range []struct{ q, want string }{{rate, sc.rate}, {p99, sc.p99}, {count, sc.cnt}} {
			writeExprTest(doc, e.q, e.want)
		}
	}
}

// writeExprTest expects q to return one sample of value want, a NaN, or nothing.
func writeExprTest(doc *strings.Builder, q, want string) {
	switch want {
	case "":
		fmt.Fprintf(doc, "  - expr: '%s'\n    eval_time: 10m\n    exp_samples: []\n", q)
	case "NaN":
		fmt.Fprintf(doc, "  - expr: 'count((%s) != (%s))'\n    eval_time: 10m\n    exp_samples: [{labels: '{}', value: 1}]\n", q, q)
	default:
		fmt.Fprintf(doc, "  - expr: '%s'\n    eval_time: 10m\n    exp_samples: [{labels: '{}', value: %s}]\n", q, want)
	}
}
