package controllers_test

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"

	// The manager links the webhooks (main.go); their init registers the admission metrics.
	_ "github.com/sluice-mesh/sluice/webhooks"
)

// dataPlaneMetrics are metrics the dashboard reads from the data plane, not from Sluice.
// Traefik documents them under Observability › Metrics, service metrics
// (https://doc.traefik.io/traefik/observability/metrics/overview/); docs/healthgate.md lists
// the names the builtin gates query, and internal/testenv's exporter serves them.
var dataPlaneMetrics = []string{"traefik_service_requests_total"}

// exportedOnEvents are registered by the manager but get a series only once something happens
// that a release does not cause: an admission review (webhooks), the policy ConfigMaps loaded
// and audited (the admission policy controller), a request to the webhook server. The test
// proves they are registered instead.
var exportedOnEvents = []string{
	"sluice_admission_policy_decisions_total",
	"sluice_admission_policy_review_seconds",
	"sluice_admission_policy_violations_total",
	"sluice_admission_policies",
	"sluice_admission_policy_load_errors",
	"sluice_policy_violations",
	"controller_runtime_webhook_requests_total",
}

// targetLabels are added by the scrape (the ServiceMonitor), not by the manager.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "endpoint", "container"}

// grafanaSamples stand in for the dashboard's variables, so its queries parse as PromQL.
var grafanaSamples = map[string]string{
	"datasource": "prometheus", "job": "sluice-controller-manager-metrics-service", "namespace": "shop", "rollout": "checkout",
	"__rate_interval": "2m", "__interval": "1m", "__range": "6h",
}

// query is one PromQL expression of the dashboard or the alerts.
type query struct {
	where, expr string
}

// used is what the queries select: label names per metric name.
type used map[string]map[string]bool

// dashboardQueries reads every query of config/grafana/sluice.json: panel targets (rows
// included) and the label_values() of the variables, with sample values for the variables.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "grafana", "sluice.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("sluice.json: %v", err)
	}
	variable := regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)
	substitute := func(where, expr string) string {
		return variable.ReplaceAllStringFunc(expr, func(v string) string {
			name := strings.Trim(v, "${}")
			s, ok := grafanaSamples[name]
			if !ok {
				t.Errorf("%s: no sample value for variable %s", where, v)
			}
			return s
		})
	}
	var out []query
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		q, _ := v.Query.(string)
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(<selector>, <label>)", v.Name, q)
			continue
		}
		where := "dashboard variable " + v.Name
		out = append(out, query{where, substitute(where, m[1])})
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var walk func([]json.RawMessage)
	walk = func(raws []json.RawMessage) {
		for _, r := range raws {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				t.Fatal(err)
			}
			for _, tg := range p.Targets {
				where := "dashboard panel " + p.Title
				out = append(out, query{where, substitute(where, tg.Expr)})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// alertQueries reads the expressions of config/prometheus/alerts.yaml.
func alertQueries(t *testing.T) []query {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert, Record, Expr string
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &rule); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	var out []query
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			out = append(out, query{"alert " + r.Alert + r.Record, r.Expr})
		}
	}
	return out
}

// parseQueries parses every query and returns the metrics they select, with the labels they
// match on.
func parseQueries(t *testing.T, queries []query) used {
	t.Helper()
	p := parser.NewParser(parser.Options{})
	u := used{}
	for _, q := range queries {
		expr, err := p.ParseExpr(q.expr)
		if err != nil {
			t.Errorf("%s: PromQL does not parse: %v\n%s", q.where, err, q.expr)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			if vs.Name == "" {
				t.Errorf("%s: a selector without a metric name: %s", q.where, vs)
				return nil
			}
			if u[vs.Name] == nil {
				u[vs.Name] = map[string]bool{}
			}
			for _, m := range vs.LabelMatchers {
				if m.Name != "__name__" {
					u[vs.Name][m.Name] = true
				}
			}
			return nil
		})
	}
	return u
}

// family is what the manager exported of one metric.
type family struct {
	typ    dto.MetricType
	labels map[string]bool
}

// gather adds what the registry holds now (what the manager's /metrics serves) to seen.
func gather(t *testing.T, seen map[string]family) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		fam, ok := seen[f.GetName()]
		if !ok {
			fam = family{typ: f.GetType(), labels: map[string]bool{}}
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				fam.labels[l.GetName()] = true
			}
		}
		seen[f.GetName()] = fam
	}
}

// exported finds the family a selected name belongs to: itself, or the histogram or summary
// whose _bucket, _count or _sum series it is. extra are the labels the suffix adds.
func exported(seen map[string]family, name string) (family, []string, bool) {
	if f, ok := seen[name]; ok {
		return f, nil, true
	}
	for suffix, extra := range map[string][]string{"_bucket": {"le"}, "_count": nil, "_sum": nil} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if f, ok := seen[base]; ok && (f.typ == dto.MetricType_HISTOGRAM || (f.typ == dto.MetricType_SUMMARY && suffix != "_bucket")) {
			return f, extra, true
		}
	}
	return family{}, nil, false
}

// registered says whether the registry holds a collector of that metric name, series or not:
// registering another collector of the name fails if so.
func registered(t *testing.T, name string) bool {
	t.Helper()
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe: is this name registered?"})
	err := metrics.Registry.Register(probe)
	if err == nil {
		metrics.Registry.Unregister(probe)
		return false
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) || strings.Contains(err.Error(), "previously registered descriptor with the same fully-qualified name") {
		return true
	}
	t.Fatalf("probing %s: %v", name, err)
	return false
}

// The dashboard and the alerts only use metrics that exist. Every query parses (Grafana's
// variables replaced by sample values); the manager runs releases against the real API server
// and a real Prometheus — one promoted, one rolled back by its gate, one holding on a
// Prometheus that stopped until it stalls — and every metric a query selects must then be
// exported (gathered from the registry /metrics serves, with the labels the query matches on),
// registered for events a release does not cause (exportedOnEvents), or the data plane's
// (dataPlaneMetrics). docs/observability.md must document every sluice_ metric.
func TestDashboardsAndAlertsUseExportedMetrics(t *testing.T) {
	queries := append(dashboardQueries(t), alertQueries(t)...)
	u := parseQueries(t, queries)
	if len(u) == 0 {
		t.Fatal("no metric selected by the dashboard or the alerts")
	}
	t.Logf("%d queries select %d metrics", len(queries), len(u))

	c := newCluster(t, "metrics")
	exp := testenv.StartExporter(t)
	prom := testenv.StartPrometheus(t, exp.Addr())
	var ev *controllers.PrometheusEvaluator
	mgr := newRolloutManager(t, func(m ctrl.Manager) controllers.GateChecker {
		ev = &controllers.PrometheusEvaluator{Reader: m.GetAPIReader()}
		return &controllers.RolloutGates{Client: m.GetClient(), Evaluator: ev}
	}, c.ns)
	if err := controllers.SetupHealthGateController(mgr, ev, 1); err != nil {
		t.Fatal(err)
	}
	stop := testenv.RunManager(mgr)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	seen := map[string]family{}
	exp.Set(c.ns, "checkout-b", 40, 0, 10*time.Millisecond) // the first canary answers well
	create(t, successRateGate(c.ns, prom.URL(), nil))
	c.target(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	ro.Spec.Strategy.Canary.Steps = []meshv1alpha1.CanaryStep{
		{SetWeight: ptr.To(int32(20))},
		{Analysis: &meshv1alpha1.AnalysisStep{Checks: 2}},
		{SetWeight: ptr.To(int32(60))},
		{Analysis: &meshv1alpha1.AnalysisStep{Checks: 1}},
	}
	ro.Spec.Analysis.HealthGates = []meshv1alpha1.LocalObjectReference{{Name: "success-rate"}}
	ro.Spec.Analysis.MaxHold = &metav1.Duration{Duration: 3 * time.Second}
	create(t, ro)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	// 1. A good release: gathered while its gate passes at 20%, and once promoted.
	c.setImage(t, "checkout", "demo:v2")
	// Gathered at every poll: the gate's value is exported only until the next check replaces
	// it (an inconclusive check right after the weight moved carries none), a second later.
	c.waitRollout(t, "checkout", "a passing check at 20% whose value is exported", func(r *meshv1alpha1.Rollout) bool {
		gather(t, seen)
		_, valueSeen := seen["sluice_rollout_gate_value"]
		return r.Status.CanaryWeight == 20 && r.Status.Analysis != nil && r.Status.Analysis.Passed >= 1 && valueSeen
	})
	r := c.healthyOn(t, "checkout", meshv1alpha1.SlotB)
	gather(t, seen)
	// Every check the release recorded in status was counted once, by its verdict.
	a := r.Status.Analysis
	want := map[string]float64{"Pass": float64(a.Passed), "Fail": float64(a.Failed), "Inconclusive": float64(a.Inconclusive), "Unreachable": float64(a.Unreachable)}
	if got := checksCounted(t, c.ns, "checkout"); !maps.Equal(got, want) {
		t.Errorf("sluice_rollout_gate_checks_total after the first release: %v, want the status's counts %v", got, want)
	} else {
		t.Logf("first release: gate checks %v", got)
	}

	// 2. A bad release: half its requests fail, the gate fails it, it is rolled back.
	exp.Set(c.ns, "checkout-a", 40, 0.5, 10*time.Millisecond)
	c.setImage(t, "checkout", "demo:v3")
	r = waitLong(t, c, "checkout", "RolledBack", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })
	if r.Status.AbortReason != "HealthGateFailed" {
		t.Errorf("rolled back for %q, want HealthGateFailed", r.Status.AbortReason)
	}
	gather(t, seen)

	// 3. Prometheus stops: the next release holds, past maxHold it is Stalled.
	prom.Stop()
	c.setImage(t, "checkout", "demo:v4")
	waitLong(t, c, "checkout", "Stalled after maxHold", func(r *meshv1alpha1.Rollout) bool { return condIs(r, meshv1alpha1.ConditionStalled, "MaxHoldExceeded") })
	gather(t, seen)

	var missing []string
	for _, name := range sortedKeys(u) {
		f, extra, ok := exported(seen, name)
		switch {
		case ok:
			for l := range u[name] {
				if !f.labels[l] && !slices.Contains(extra, l) && !slices.Contains(targetLabels, l) {
					t.Errorf("%s: the queries match on label %q, which the manager does not export (labels %v)", name, l, sortedKeys(f.labels))
				}
			}
		case slices.Contains(dataPlaneMetrics, name):
		case slices.Contains(exportedOnEvents, strings.TrimSuffix(name, "_bucket")):
		default:
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("the dashboard or the alerts use metrics the manager did not export during the releases: %v", missing)
	}
	for _, name := range exportedOnEvents {
		if !registered(t, name) {
			t.Errorf("%s is listed as exported on events, but nothing registers it", name)
		}
	}

	docs, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "observability.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(sortedKeys(seen), exportedOnEvents...) {
		if strings.HasPrefix(name, "sluice_") && !strings.Contains(string(docs), "`"+name+"`") {
			t.Errorf("docs/observability.md does not document %s", name)
		}
	}
}

// checksCounted is sluice_rollout_gate_checks_total of one Rollout, by verdict.
func checksCounted(t *testing.T, ns, name string) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "sluice_rollout_gate_checks_total" {
			continue
		}
		for _, m := range f.Metric {
			if label(m, "namespace") == ns && label(m, "rollout") == name {
				out[label(m, "verdict")] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
