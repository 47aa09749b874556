package gates

import (
	"regexp"
	"regexp/syntax"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// wantMatcher is a label matcher a fuzz template means to produce. For an exact matcher,
// value is the whole value; for a regular expression, value is the part that must be a pure
// literal (a regexp/syntax literal) once the template's own regex syntax, prefix
// and suffix, is taken off; sample is a label value the matcher must match.
type wantMatcher struct {
	name           string
	typ            labels.MatchType
	value          string
	prefix, suffix string
	sample         string
}

type wantSelector struct {
	metric   string
	matchers []wantMatcher
}

// fuzzTemplates are the fixed templates FuzzExpand expands; want builds the selectors the
// template means for the values v, in the order they appear in the query.
var fuzzTemplates = []struct {
	name  string
	query string
	want  func(v TemplateVars) []wantSelector
}{
	{
		name:  "exact matchers",
		query: `sum(rate(http_requests_total{namespace="{{ .Namespace }}",service="{{ .Service }}"}[{{ .Window }}]))`,
		want: func(v TemplateVars) []wantSelector {
			return []wantSelector{{"http_requests_total", []wantMatcher{
				{name: "namespace", typ: labels.MatchEqual, value: v.Namespace},
				{name: "service", typ: labels.MatchEqual, value: v.Service},
			}}}
		},
	},
	{
		name:  "regex with prefix and suffix",
		query: `sum(rate(traefik_service_requests_total{service=~".*-svc-{{ .Namespace }}-{{ .CanaryService }}-[0-9]+@kubernetesgateway"}[{{ .Window }}]))`,
		want: func(v TemplateVars) []wantSelector {
			return []wantSelector{{"traefik_service_requests_total", []wantMatcher{{
				name: "service", typ: labels.MatchRegexp,
				prefix: ".*", value: "-svc-" + v.Namespace + "-" + v.CanaryService, suffix: "-[0-9]+@kubernetesgateway",
				sample: "httproute-shop-web-gw-gateways-edge-ep-web-0-1a2b3c-svc-" + v.Namespace + "-" + v.CanaryService + "-8080@kubernetesgateway",
			}}}}
		},
	},
	{
		name:  "several variables in one matcher",
		query: `max(build_info{id="{{ .Namespace }}/{{ .Service }}:{{ .Revision }}", pair=~"{{ .Revision }}\\.{{ .StableService }}"})`,
		want: func(v TemplateVars) []wantSelector {
			return []wantSelector{{"build_info", []wantMatcher{
				{name: "id", typ: labels.MatchEqual, value: v.Namespace + "/" + v.Service + ":" + v.Revision},
				{name: "pair", typ: labels.MatchRegexp, value: v.Revision + "." + v.StableService, sample: v.Revision + "." + v.StableService},
			}}}
		},
	},
	{
		name: "two selectors, negative matchers, single quotes",
		query: `sum(rate(a_total{ns='{{ .Namespace }}',svc=~'{{ .CanaryService }}'}[{{ .Window }}]))
			/ on() sum(rate(b_total{ns!="{{ .Namespace }}",svc!~"{{ .StableService }}.*"}[5m]))`,
		want: func(v TemplateVars) []wantSelector {
			return []wantSelector{
				{"a_total", []wantMatcher{
					{name: "ns", typ: labels.MatchEqual, value: v.Namespace},
					{name: "svc", typ: labels.MatchRegexp, value: v.CanaryService, sample: v.CanaryService},
				}},
				{"b_total", []wantMatcher{
					{name: "ns", typ: labels.MatchNotEqual, value: v.Namespace},
					{name: "svc", typ: labels.MatchNotRegexp, value: v.StableService, suffix: ".*", sample: v.StableService + "x"},
				}},
			}
		},
	},
}

func FuzzExpand(f *testing.F) {
	seeds := []string{
		`a"} or vector(1) or {x="`, `checkout-b`, `\`, `\\`, `\"`, "a\nb", "\x00", "\r\t\v",
		"é", "日本", "😀", "\uFFFD", "\u2028", `.*`, `|`, `}`, `{`, `"`, `'`, "`", `$1`, `(?i)`,
		`[a-z]`, `\E`, `\Q`, `#`, `{{ .Service }}`, "zzsluicevarServicezz", "zzsluicevarNamespacezz",
		"\xff", "",
	}
	for i, s := range seeds {
		o := seeds[(i+1)%len(seeds)]
		f.Add(s, "checkout", s, "checkout-a", o)
		f.Add("shop", s, o, s, "5d8f7c")
	}
	f.Fuzz(func(t *testing.T, ns, svc, canary, stable, rev string) {
		vars := TemplateVars{Namespace: ns, Service: svc, CanaryService: canary, StableService: stable, Revision: rev, Window: "1m"}
		for _, tc := range fuzzTemplates {
			checkFuzzTemplate(t, tc.name, tc.query, vars, tc.want(vars))
		}
	})
}

func checkFuzzTemplate(t *testing.T, name, query string, vars TemplateVars, want []wantSelector) {
	t.Helper()
	got, err := Expand(query, vars)
	if invalid := invalidValue(query, vars); invalid != "" {
		if err == nil || !strings.Contains(err.Error(), "."+invalid) {
			t.Fatalf("%s: invalid .%s accepted (error %v): %q", name, invalid, err, got)
		}
		return
	}
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(got)
	if err != nil {
		t.Fatalf("%s: expansion does not parse: %v\n%s", name, err, got)
	}
	sample, err := Expand(query, SampleVars)
	if err != nil {
		t.Fatal(err)
	}
	if s, g := shape(t, sample), shape(t, got); s != g {
		t.Fatalf("%s: the query's shape changed:\n sample: %s\n fuzzed: %s", name, s, g)
	}
	var selectors []*parser.VectorSelector
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			selectors = append(selectors, vs)
		}
		return nil
	})
	if len(selectors) != len(want) {
		t.Fatalf("%s: %d selectors, want %d: %s", name, len(selectors), len(want), got)
	}
	for i, vs := range selectors {
		checkSelector(t, name, vs, want[i])
	}
}

// invalidValue names a variable the query uses whose value Expand must refuse.
func invalidValue(query string, v TemplateVars) string {
	for _, name := range labelVars {
		val := v.labelValue(name)
		if strings.Contains(query, "."+name+" ") && (val == "" || !utf8.ValidString(val)) {
			return name
		}
	}
	return ""
}

// shape prints a query with every label matcher's value blanked out.
func shape(t *testing.T, q string) string {
	t.Helper()
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(q)
	if err != nil {
		t.Fatalf("%v: %s", err, q)
	}
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for i, m := range vs.LabelMatchers {
				if m.Name != model.MetricNameLabel {
					vs.LabelMatchers[i] = &labels.Matcher{Type: m.Type, Name: m.Name, Value: "_"}
				}
			}
		}
		return nil
	})
	return expr.String()
}

func checkSelector(t *testing.T, name string, vs *parser.VectorSelector, want wantSelector) {
	t.Helper()
	if vs.Name != want.metric {
		t.Fatalf("%s: selector of %q, want %q", name, vs.Name, want.metric)
	}
	var got []*labels.Matcher
	for _, m := range vs.LabelMatchers {
		if m.Name != model.MetricNameLabel {
			got = append(got, m)
		}
	}
	sort.SliceStable(got, func(i, j int) bool { return got[i].Name < got[j].Name })
	wantM := append([]wantMatcher(nil), want.matchers...)
	sort.SliceStable(wantM, func(i, j int) bool { return wantM[i].name < wantM[j].name })
	if len(got) != len(wantM) {
		t.Fatalf("%s: %s has %d matchers, want %d", name, vs, len(got), len(wantM))
	}
	for i, m := range got {
		checkMatcher(t, name, m, wantM[i])
	}
}

func checkMatcher(t *testing.T, name string, m *labels.Matcher, w wantMatcher) {
	t.Helper()
	if m.Name != w.name || m.Type != w.typ {
		t.Fatalf("%s: matcher %s, want %s %s", name, m, w.name, w.typ)
	}
	if w.typ == labels.MatchEqual || w.typ == labels.MatchNotEqual {
		if m.Value != w.value {
			t.Fatalf("%s: %s value %q, want %q", name, m.Name, m.Value, w.value)
		}
		return
	}
	// Regular expression: the fuzzed part, between the template's own prefix and suffix,
	// must be a pure literal equal to the intended string ...
	if !strings.HasPrefix(m.Value, w.prefix) || !strings.HasSuffix(m.Value, w.suffix) || len(m.Value) < len(w.prefix)+len(w.suffix) {
		t.Fatalf("%s: %s regex %q lost its prefix %q or suffix %q", name, m.Name, m.Value, w.prefix, w.suffix)
	}
	middle := m.Value[len(w.prefix) : len(m.Value)-len(w.suffix)]
	if lit, ok := regexLiteral(middle); !ok || lit != w.value {
		t.Fatalf("%s: %s: the value part %q is not the literal %q (literal %q, %v)", name, m.Name, middle, w.value, lit, ok)
	}
	// ... and Prometheus's matcher must select the intended label value.
	positive := labels.MatchRegexp
	if _, err := regexp.Compile("^(?s:" + m.Value + ")$"); err != nil {
		t.Fatalf("%s: %s: regex %q does not compile: %v", name, m.Name, m.Value, err)
	}
	pm, err := labels.NewMatcher(positive, m.Name, m.Value)
	if err != nil {
		t.Fatal(err)
	}
	if !pm.Matches(w.sample) {
		t.Fatalf("%s: %s=~%q does not match %q", name, m.Name, m.Value, w.sample)
	}
	if m.Matches(w.sample) != (w.typ == labels.MatchRegexp) {
		t.Fatalf("%s: %s does not select %q as intended", name, m, w.sample)
	}
}

// regexLiteral returns the string a regular expression matches when it is a plain literal
// (no operator, class, repetition or case folding), as Prometheus's RE2 parses it.
func regexLiteral(expr string) (string, bool) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", false
	}
	switch {
	case re.Op == syntax.OpEmptyMatch:
		return "", true
	case re.Op == syntax.OpLiteral && re.Flags&syntax.FoldCase == 0:
		return string(re.Rune), true
	}
	return "", false
}
