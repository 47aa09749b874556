package config_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// promtoolHint says where promtool comes from; CI installs it with the other prerequisites.
const promtoolHint = "install Debian's prometheus package (apt-get install prometheus; hack/prereqs.sh test does it as root)"

// TestAlertRules runs promtool's unit tests (prometheus/alerts_test.yaml) on the alerts that
// config/prometheus ships. promtool reads plain rule files, so the PrometheusRule's groups are
// written to alerts.rules.yaml in a temporary folder, next to a copy of the tests.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not on PATH: %v; %s", err, promtoolHint)
	}
	rule := find(t, build(t, "prometheus"), "PrometheusRule", "controller-manager-alerts")
	groups, found, err := unstructured.NestedSlice(rule.Object, "spec", "groups")
	if err != nil || !found || len(groups) == 0 {
		t.Fatalf("PrometheusRule %s: no spec.groups (%v)", rule.GetName(), err)
	}
	rules, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("prometheus", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{"alerts.rules.yaml": rules, "alerts_test.yaml": tests} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"check", "rules", "alerts.rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		} else {
			t.Logf("promtool %v:\n%s", args, out)
		}
	}

	// Every alert is tested, and has what a person needs to act on it.
	for _, g := range groups {
		group, _ := g.(map[string]any)
		rules, _, _ := unstructured.NestedSlice(group, "rules")
		for _, r := range rules {
			r, _ := r.(map[string]any)
			alert, _ := r["alert"].(string)
			if alert == "" {
				continue
			}
			if !regexp.MustCompile(`alertname: ` + alert + `\n`).Match(tests) {
				t.Errorf("alert %s: no alert_rule_test in alerts_test.yaml", alert)
			}
			for _, key := range []string{"summary", "description", "runbook_url"} {
				if v, _, _ := unstructured.NestedString(r, "annotations", key); v == "" {
					t.Errorf("alert %s: no %s annotation", alert, key)
				}
			}
			if v, _, _ := unstructured.NestedString(r, "labels", "severity"); v == "" {
				t.Errorf("alert %s: no severity label", alert)
			}
		}
	}

	// The install ships the alerts with the ServiceMonitor.
	def := find(t, build(t, "default"), "PrometheusRule", "sluice-controller-manager-alerts")
	if def.GetNamespace() != installNamespace {
		t.Errorf("PrometheusRule in namespace %q, want %s", def.GetNamespace(), installNamespace)
	}
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []dashboardPanel `json:"panels"`
}

type dashboardPanel struct {
	ID         int               `json:"id"`
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource map[string]string `json:"datasource"`
	Targets    []struct {
		Expr       string            `json:"expr"`
		Datasource map[string]string `json:"datasource"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a collapsed row's panels
}

// TestGrafanaDashboard builds config/grafana: one ConfigMap the Grafana sidecar picks up, with
// the dashboard as it is in the repository; every query on the dashboard's Prometheus
// variable, and every variable a query uses defined.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("grafana", "sluice.json"))
	if err != nil {
		t.Fatal(err)
	}
	objs := build(t, "grafana")
	if len(objs) != 1 || objs[0].GetKind() != "ConfigMap" {
		t.Fatalf("config/grafana builds %d objects, want one ConfigMap", len(objs))
	}
	cm := objs[0]
	if cm.GetName() != "sluice-grafana-dashboard" || cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("ConfigMap %s with labels %v, want sluice-grafana-dashboard labelled grafana_dashboard=1", cm.GetName(), cm.GetLabels())
	}
	if data, _, _ := unstructured.NestedString(cm.Object, "data", "sluice.json"); data != string(raw) {
		t.Errorf("the ConfigMap's sluice.json differs from config/grafana/sluice.json")
	}

	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("sluice.json: %v", err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid: Grafana would make a new one on every load")
	}
	defined := map[string]bool{}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
	}
	for _, want := range []string{"datasource", "namespace", "rollout"} {
		if !defined[want] {
			t.Errorf("no %s variable", want)
		}
	}
	variable := regexp.MustCompile(`\$\{?(\w+)`)
	checkVars := func(where, expr string) {
		for _, m := range variable.FindAllStringSubmatch(expr, -1) {
			if name := m[1]; !defined[name] && !slices.Contains([]string{"__rate_interval", "__interval", "__range"}, name) {
				t.Errorf("%s: variable $%s is not defined", where, name)
			}
		}
	}
	for _, v := range d.Templating.List {
		if q, ok := v.Query.(string); ok && v.Type == "query" {
			checkVars("variable "+v.Name, q)
		}
	}
	ids := map[int]string{}
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			if other, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no queries", p.Title)
			}
			if p.Datasource["uid"] != "${datasource}" {
				t.Errorf("panel %q: datasource %v, want the ${datasource} variable", p.Title, p.Datasource)
			}
			for _, q := range p.Targets {
				if q.Datasource["uid"] != "${datasource}" {
					t.Errorf("panel %q: a query's datasource is %v, want the ${datasource} variable", p.Title, q.Datasource)
				}
				checkVars("panel "+p.Title, q.Expr)
			}
		}
	}
	walk(d.Panels)
}
