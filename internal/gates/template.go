package gates

import (
	"fmt"
	"regexp"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/util/strutil"
)

// TemplateVars are the values a HealthGate query may use.
type TemplateVars struct {
	Namespace     string
	Service       string
	CanaryService string
	StableService string
	Revision      string
	// Window is a Prometheus duration ("1m", "30s", "1m30s"), inserted as it is; Expand
	// rejects anything model.ParseDuration does not accept.
	Window string
}

// SampleVars are plausible values used to check a template at admission.
var SampleVars = TemplateVars{
	Namespace: "shop", Service: "checkout", CanaryService: "checkout-b",
	StableService: "checkout-a", Revision: "5d8f7c9b4", Window: "1m",
}

// variableList is what error messages list as the known variables.
const variableList = ".Namespace, .Service, .CanaryService, .StableService, .Revision, .Window"

// labelVars are the variables whose values go into label matcher values (all but .Window).
var labelVars = []string{"Namespace", "Service", "CanaryService", "StableService", "Revision"}

func (v TemplateVars) labelValue(name string) string {
	switch name {
	case "Namespace":
		return v.Namespace
	case "Service":
		return v.Service
	case "CanaryService":
		return v.CanaryService
	case "StableService":
		return v.StableService
	case "Revision":
		return v.Revision
	}
	return ""
}

// Expand renders a HealthGate query template with vars so that no value can change the shape
// of the query.
//
// The rules, in the order they are checked:
//   - Actions may only be plain variables ({{ .Service }}, {{- .Window -}}): no functions,
//     pipelines, conditionals or template definitions, whose results could not be escaped.
//   - .Window is inserted as it is, anywhere (it belongs in a range, `[{{ .Window }}]`), and
//     must be a positive duration that model.ParseDuration accepts.
//   - Every other variable must sit inside the quoted value of a label matcher:
//     `{service="{{ .Service }}"}`, `{service=~".*-{{ .Service }}-.*"}` (single quotes work
//     too). Placed anywhere else (unquoted, in a metric or label name, in a function's
//     string argument, in a comment, in a backtick string) the template is rejected.
//   - A value inserted into a regular expression matcher (=~, !~) is first quoted with
//     regexp.QuoteMeta, so that its characters match literally; in an exact matcher (=, !=)
//     it is used as it is. Then it is written as PromQL string-literal content that can't end
//     the string: `\` becomes `\\`, the three quote characters and every byte outside
//     printable ASCII become \x.., \u.... or \U........ escapes.
//   - A used variable must be valid UTF-8 (Prometheus label values are) and not empty (an
//     empty value turns `service="{{ .Service }}"` into "series without a service label").
//
// The context of every variable is found by running PromQL's own lexer over the query with
// a placeholder in place of each value, so that it is the context Prometheus will see.
func Expand(query string, vars TemplateVars) (string, error) {
	t, used, err := parseTemplate(query)
	if err != nil {
		return "", err
	}
	if used["Window"] {
		if err := checkWindow(vars.Window); err != nil {
			return "", err
		}
	}
	for _, name := range labelVars {
		if used[name] {
			if err := checkValue(name, vars.labelValue(name)); err != nil {
				return "", err
			}
		}
	}
	marks := newMarkers(query)
	data := TemplateVars{
		Namespace: marks.of("Namespace"), Service: marks.of("Service"), CanaryService: marks.of("CanaryService"),
		StableService: marks.of("StableService"), Revision: marks.of("Revision"), Window: vars.Window,
	}
	var placed strings.Builder
	if err := t.Execute(&placed, data); err != nil {
		return "", fmt.Errorf("template does not expand (variables are %s): %s", variableList, trimTemplateErr(err))
	}
	return marks.substitute(placed.String(), vars)
}

// CheckTemplate expands a query template with SampleVars and parses the result as PromQL,
// so that a template or PromQL error, or an unknown variable, is reported at admission
// instead of at the first analysis. The query must return an instant vector or a scalar.
func CheckTemplate(query string) error {
	expanded, err := Expand(query, SampleVars)
	if err != nil {
		return err
	}
	expr, err := newPromQLParser().ParseExpr(expanded)
	if err != nil {
		return fmt.Errorf("query does not parse: %w", err)
	}
	switch expr.Type() {
	case parser.ValueTypeVector, parser.ValueTypeScalar:
		return nil
	default:
		return fmt.Errorf("query returns a %s; it must return an instant vector or a scalar", parser.DocumentedType(expr.Type()))
	}
}

// newPromQLParser is lenient about experimental PromQL: the Prometheus server that runs the
// query is the judge of which features it enables; admission only catches what can never work.
func newPromQLParser() parser.Parser {
	return parser.NewParser(parser.Options{
		EnableExperimentalFunctions:  true,
		ExperimentalDurationExpr:     true,
		EnableExtendedRangeSelectors: true,
		EnableBinopFillModifiers:     true,
	})
}

// parseTemplate parses query as a text/template whose actions are all plain variables and
// returns which variables it uses.
func parseTemplate(query string) (*template.Template, map[string]bool, error) {
	t, err := template.New("query").Option("missingkey=error").Parse(query)
	if err != nil {
		return nil, nil, fmt.Errorf("template does not parse: %s", trimTemplateErr(err))
	}
	if len(t.Templates()) > 1 {
		return nil, nil, fmt.Errorf("template does not parse: {{ define }} and {{ block }} are not allowed; use only plain variables (%s)", variableList)
	}
	used := map[string]bool{}
	if t.Tree == nil || t.Root == nil {
		return t, used, nil
	}
	for _, n := range t.Root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
		case *parse.ActionNode:
			name, ok := plainVariable(n)
			if !ok {
				return nil, nil, fmt.Errorf("template does not parse: %s is not allowed: use only plain variables (%s), whose values Sluice escapes", n, variableList)
			}
			used[name] = true
		default:
			return nil, nil, fmt.Errorf("template does not parse: %s is not allowed: use only plain variables (%s), whose values Sluice escapes", n, variableList)
		}
	}
	return t, used, nil
}

// plainVariable returns the field name of an action that is exactly {{ .Field }}.
func plainVariable(a *parse.ActionNode) (string, bool) {
	p := a.Pipe
	if p == nil || len(p.Decl) != 0 || p.IsAssign || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return "", false
	}
	f, ok := p.Cmds[0].Args[0].(*parse.FieldNode)
	if !ok || len(f.Ident) != 1 {
		return "", false
	}
	return f.Ident[0], true
}

func checkWindow(w string) error {
	d, err := model.ParseDuration(w)
	if err != nil {
		return fmt.Errorf("template does not expand: .Window %q is not a Prometheus duration: %w", w, err)
	}
	if d <= 0 {
		return fmt.Errorf("template does not expand: .Window %q must be longer than zero", w)
	}
	return nil
}

func checkValue(name, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("template does not expand: it uses .%s, which is empty", name)
	case !utf8.ValidString(v):
		return fmt.Errorf("template does not expand: .%s is not valid UTF-8", name)
	}
	return nil
}

// markers are the placeholders standing for the label variables while the query's lexical
// structure is examined. They are identifier-like (so a misplaced one lexes as a whole token
// and is found), start with a letter no escape sequence or duration unit can continue, and
// never occur in the template text itself.
type markers struct {
	byName map[string]string
	byMark map[string]string
}

func newMarkers(query string) markers {
	prefix := "zzsluicevar"
	for strings.Contains(query, prefix) {
		prefix += "z"
	}
	m := markers{byName: map[string]string{}, byMark: map[string]string{}}
	for _, name := range labelVars {
		mark := prefix + name + "zz"
		m.byName[name], m.byMark[mark] = mark, name
	}
	return m
}

func (m markers) of(name string) string { return m.byName[name] }

// names lists, in order, the variables whose markers occur in s.
func (m markers) names(s string) []string {
	var out []string
	for _, name := range labelVars {
		if strings.Contains(s, m.byName[name]) {
			out = append(out, name)
		}
	}
	return out
}

func (m markers) count(s string) int {
	n := 0
	for _, name := range labelVars {
		n += strings.Count(s, m.byName[name])
	}
	return n
}

// substitute lexes placed (the query with markers) and replaces every marker inside a label
// matcher's quoted value with the escaped value; any marker anywhere else is an error.
func (m markers) substitute(placed string, vars TemplateVars) (string, error) {
	var out strings.Builder
	last, replaced := 0, 0
	inBraces := false
	var prev parser.ItemType
	l := parser.Lex(placed)
	for {
		var it parser.Item
		l.NextItem(&it)
		switch it.Typ {
		case parser.EOF:
			if replaced != m.count(placed) {
				return "", m.misplaced(m.names(placed), "split across PromQL tokens")
			}
			out.WriteString(placed[last:])
			return out.String(), nil
		case parser.ERROR:
			return "", fmt.Errorf("query does not parse: %s", m.readable(it.Val))
		case parser.LEFT_BRACE:
			inBraces = true
		case parser.RIGHT_BRACE:
			inBraces = false
		}
		if names := m.names(it.Val); len(names) > 0 {
			escaped, err := m.escapeString(it, prev, inBraces, names, vars)
			if err != nil {
				return "", err
			}
			out.WriteString(placed[last:it.Pos])
			out.WriteString(escaped)
			last = int(it.Pos) + len(it.Val)
			replaced += m.count(it.Val)
		}
		if it.Typ != parser.COMMENT {
			prev = it.Typ
		}
	}
}

// escapeString returns the string literal it with its markers replaced by escaped values,
// after checking that it is the value of a label matcher.
func (m markers) escapeString(it parser.Item, prev parser.ItemType, inBraces bool, names []string, vars TemplateVars) (string, error) {
	if it.Typ != parser.STRING || !inBraces {
		return "", m.misplaced(names, fmt.Sprintf("found in %s", describeItem(it)))
	}
	if it.Val[0] == '`' {
		return "", m.misplaced(names, "found in a backtick string, which has no escapes")
	}
	var regex bool
	switch prev {
	case parser.EQL, parser.NEQ:
	case parser.EQL_REGEX, parser.NEQ_REGEX:
		regex = true
		if err := m.checkRegexContext(it.Val, names); err != nil {
			return "", err
		}
	default:
		return "", m.misplaced(names, "found in a quoted metric or label name")
	}
	pairs := make([]string, 0, 2*len(names))
	for _, name := range names {
		v := vars.labelValue(name)
		if regex {
			v = regexp.QuoteMeta(v)
		}
		pairs = append(pairs, m.byName[name], escapeStringContent(v))
	}
	// One pass, so that a value is never searched for another variable's marker.
	return strings.NewReplacer(pairs...).Replace(it.Val), nil
}

// checkRegexContext rejects a regular expression in which a backslash of the template
// would escape the first character of an inserted value.
func (m markers) checkRegexContext(literal string, names []string) error {
	re, err := strutil.Unquote(literal)
	if err != nil {
		return fmt.Errorf("query does not parse: string %s: %w", m.readable(literal), err)
	}
	for _, name := range names {
		mark := m.byName[name]
		for rest, at := re, 0; ; {
			i := strings.Index(rest, mark)
			if i < 0 {
				break
			}
			slashes := 0
			for j := at + i - 1; j >= 0 && re[j] == '\\'; j-- {
				slashes++
			}
			if slashes%2 == 1 {
				return fmt.Errorf("template: {{ .%s }} follows a backslash in a regular expression, which would escape the value's first character", name)
			}
			rest, at = rest[i+len(mark):], at+i+len(mark)
		}
	}
	return nil
}

func (m markers) misplaced(names []string, where string) error {
	vars := make([]string, len(names))
	for i, n := range names {
		vars[i] = "{{ ." + n + " }}"
	}
	return fmt.Errorf("template: %s must be inside the quoted value of a label matcher, like service=\"%s\" or service=~\".*%s.*\" (%s)",
		strings.Join(vars, ", "), vars[0], vars[0], where)
}

// readable puts the variables back in place of their markers in a message.
func (m markers) readable(s string) string {
	pairs := make([]string, 0, 2*len(m.byMark))
	for mark, name := range m.byMark {
		pairs = append(pairs, mark, "{{ ."+name+" }}")
	}
	return strings.NewReplacer(pairs...).Replace(s)
}

func describeItem(it parser.Item) string {
	switch it.Typ {
	case parser.STRING:
		return "a string outside a label matcher"
	case parser.COMMENT:
		return "a comment"
	case parser.IDENTIFIER, parser.METRIC_IDENTIFIER:
		return "a name, outside any string"
	default:
		return "unquoted PromQL"
	}
}

// escapeStringContent writes v as the content of a PromQL string literal, in either quote
// style: printable ASCII stays as it is except the backslash and the three quote characters;
// everything else becomes an escape sequence of fixed length, so the result can neither end
// the literal nor combine with the text around it. v must be valid UTF-8.
func escapeStringContent(v string) string {
	var b strings.Builder
	for _, r := range v {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"' || r == '\'' || r == '`':
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
	}
	return b.String()
}

func trimTemplateErr(err error) string {
	return strings.TrimPrefix(err.Error(), "template: ")
}
