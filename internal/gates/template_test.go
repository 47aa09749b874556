package gates

import (
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func TestCheckTemplate(t *testing.T) {
	cases := []struct {
		name, query, wantErr string
	}{
		{"plain PromQL", `sum(rate(x[1m]))`, ""},
		{"every variable", `rate(x{ns="{{ .Namespace }}",s="{{ .Service }}",c="{{ .CanaryService }}",st="{{ .StableService }}",r="{{ .Revision }}"}[{{ .Window }}])`, ""},
		{"unknown variable", `rate(x{s="{{ .Svc }}"}[1m])`, "can't evaluate field Svc"},
		{"unclosed action", `rate(x{s="{{ .Service"}[1m])`, "does not parse"},
		{"regex matcher, single quotes", `rate(x{s=~'.*-{{ .Service }}-.*'}[{{ .Window }}])`, ""},
		{"PromQL syntax error", `sum(rate(x{s="{{ .Service }}"}[1m])`, "query does not parse: unclosed left parenthesis"},
		{"PromQL type error", `sum(rate(x{s="{{ .Service }}"}))`, `query does not parse: 1:10: parse error: expected type range vector in call to function "rate"`},
		{"range vector result", `x{s="{{ .Service }}"}[1m]`, "query returns a range vector; it must return an instant vector or a scalar"},
		{"unquoted variable", `x{s={{ .Service }}}`, `{{ .Service }} must be inside the quoted value of a label matcher, like service="{{ .Service }}"`},
		{"variable in a metric name", `{{ .Service }}_requests_total`, "(found in a name, outside any string)"},
		{"variable in a quoted label name", `x{"{{ .Service }}"="a"}`, "(found in a quoted metric or label name)"},
		{"variable in a function's string", `label_replace(x, "a", "{{ .Service }}", "b", "c")`, "(found in a string outside a label matcher)"},
		{"variable in a comment", "x{s=\"a\"} # {{ .Service }}", "(found in a comment)"},
		{"variable in a backtick string", "x{s=`{{ .Service }}`}", "(found in a backtick string, which has no escapes)"},
		{"variable in a number", `x{s="a"} * 1{{ .Revision }}`, `query does not parse: bad number or duration syntax: "1"`},
		{"regex backslash before a variable", `x{s=~"a\\{{ .Service }}"}`, "{{ .Service }} follows a backslash in a regular expression"},
		{"pipeline", `x{s="{{ .Service | printf "%s" }}"}`, `template does not parse: {{.Service | printf "%s"}} is not allowed: use only plain variables`},
		{"conditional", `x{s="{{ if .Service }}a{{ end }}"}`, "is not allowed: use only plain variables"},
		{"definition", `{{ define "a" }}x{{ end }}x{s="{{ .Service }}"}`, "{{ define }} and {{ block }} are not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckTemplate(tc.query)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestExpandEscapesValues(t *testing.T) {
	vars := TemplateVars{
		Namespace: "shop", Service: `a"b\c`, CanaryService: "x.y*", StableService: "é\n\x00'`",
		Revision: "zzsluicevarServicezz", Window: "1m30s",
	}
	cases := []struct{ name, query, want string }{
		{"exact", `x{s="{{ .Service }}"}`, `x{s="a\x22b\\c"}`},
		{"exact keeps regex characters", `x{s!="{{ .CanaryService }}"}`, `x{s!="x.y*"}`},
		{"regex quotes them", `x{s=~"{{ .CanaryService }}|b"}`, `x{s=~"x\\.y\\*|b"}`},
		{"negative regex", `x{s!~".*{{ .Service }}"}`, `x{s!~".*a\x22b\\\\c"}`},
		{"single quotes", `x{s='{{ .StableService }}'}`, `x{s='\u00e9\x0a\x00\x27\x60'}`},
		{"window anywhere", `rate(x[{{ .Window }}] offset {{ .Window }})`, `rate(x[1m30s] offset 1m30s)`},
		{"a value is never searched for another marker", `x{a="{{ .Revision }}{{ .Service }}"}`, `x{a="zzsluicevarServicezza\x22b\\c"}`},
		{"the template's own text is kept", `x{a="zzsluicevar{{ .Namespace }}"}`, `x{a="zzsluicevarshop"}`},
		{"unused variables are not checked", `x{a="{{ .Namespace }}"}`, `x{a="shop"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Expand(tc.query, vars)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if _, err := parser.NewParser(parser.Options{}).ParseExpr(got); err != nil {
				t.Errorf("does not parse: %v", err)
			}
		})
	}
}

func TestExpandRejectsValuesItCannotUse(t *testing.T) {
	ok := SampleVars
	cases := []struct {
		name    string
		query   string
		edit    func(*TemplateVars)
		wantErr string
	}{
		{"window not a duration", `rate(x[{{ .Window }}])`, func(v *TemplateVars) { v.Window = "1m] or vector(1) or x[1m" }, `.Window "1m] or vector(1) or x[1m" is not a Prometheus duration`},
		{"window in Go syntax", `rate(x[{{ .Window }}])`, func(v *TemplateVars) { v.Window = "1m0s0ms0us" }, "is not a Prometheus duration"},
		{"empty window", `rate(x[{{ .Window }}])`, func(v *TemplateVars) { v.Window = "" }, "is not a Prometheus duration"},
		{"zero window", `rate(x[{{ .Window }}])`, func(v *TemplateVars) { v.Window = "0s" }, `.Window "0s" must be longer than zero`},
		{"empty value", `x{s="{{ .StableService }}"}`, func(v *TemplateVars) { v.StableService = "" }, "it uses .StableService, which is empty"},
		{"invalid UTF-8", `x{s="{{ .Revision }}"}`, func(v *TemplateVars) { v.Revision = "\xff" }, ".Revision is not valid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := ok
			tc.edit(&v)
			got, err := Expand(tc.query, v)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %q, error %v, want one containing %q", got, err, tc.wantErr)
			}
		})
	}
}

// TestExpandKeepsTheShapeWithTheIssuesValue is the example of the issue: a value that would
// close the matcher and add "or vector(1)" stays one literal label value.
func TestExpandKeepsTheShapeWithTheIssuesValue(t *testing.T) {
	const evil = `a"} or vector(1) or {x="`
	query := `sum(rate(traefik_service_requests_total{service=~".*-svc-{{ .Namespace }}-{{ .CanaryService }}-.*",code="{{ .Service }}"}[{{ .Window }}]))`
	vars := SampleVars
	vars.CanaryService, vars.Service = evil, evil
	got, err := Expand(query, vars)
	if err != nil {
		t.Fatal(err)
	}
	sample, err := Expand(query, SampleVars)
	if err != nil {
		t.Fatal(err)
	}
	if s, g := shape(t, sample), shape(t, got); s != g {
		t.Fatalf("shape changed:\n%s\n%s", s, g)
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(got)
	if err != nil {
		t.Fatal(err)
	}
	var matchers []*labels.Matcher
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			matchers = append(matchers, n.LabelMatchers...)
		case *parser.Call:
			if n.Func.Name != "rate" {
				t.Errorf("unexpected call %s", n.Func.Name)
			}
		case *parser.BinaryExpr:
			t.Errorf("unexpected binary expression %s", n)
		}
		return nil
	})
	want := []string{`service=~".*-svc-shop-a\"\\} or vector\\(1\\) or \\{x=\"-.*"`, `code="a\"} or vector(1) or {x=\""`, `__name__="traefik_service_requests_total"`}
	if len(matchers) != len(want) {
		t.Fatalf("matchers %v, want %v", matchers, want)
	}
	for i, m := range matchers {
		if m.String() != want[i] {
			t.Errorf("matcher %s, want %s", m, want[i])
		}
	}
	if !matchers[0].Matches("httproute-x-svc-shop-" + evil + "-80@kubernetesgateway") {
		t.Errorf("%s does not match the literal value", matchers[0])
	}
}
