package gates

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// maxMessage is the length limit of status messages (MetricVerdict.Message).
const maxMessage = 1024

// Target is what a HealthGate is evaluated for: the template values and the sample floor.
type Target struct {
	Namespace string
	Service   string
	// CanaryService is {{ .CanaryService }}; empty means Service (a standalone gate's default).
	CanaryService string
	// StableService is {{ .StableService }}; compareToStable needs it.
	StableService string
	Revision      string
	// Window is {{ .Window }}: spec.GetWindow(the analysis or gate interval). Must be > 0.
	Window time.Duration
	// MinSamples is the number of canary requests the window needs; 0 disables the check. It
	// is counted with the data plane's request counter, so gates without spec.dataPlane can't
	// check it (see Evaluate).
	MinSamples int32
}

// Result is the verdict of one evaluation of a HealthGate.
type Result struct {
	// Verdict over all metrics: Unreachable, else Fail, else Inconclusive, else Pass.
	Verdict meshv1alpha1.Verdict
	// Metrics has one entry per spec metric, in spec order.
	Metrics []meshv1alpha1.MetricVerdict
	// Address is the Prometheus address that answered ("" when none did).
	Address string
	// Message names the metric that decided Verdict, and why.
	Message string
}

// Evaluate runs every metric of spec for t and judges it. It never returns Fail because of
// the infrastructure: an unreachable Prometheus is Unreachable, and a query Prometheus rejects
// at run time (bad_data, execution) is Inconclusive — a broken query says nothing about the
// release, and the controller holds on Inconclusive instead of rolling back a good canary.
//
// All queries of one evaluation use the same instant, so canary and stable values compare
// like with like. With t.MinSamples > 0 and spec.dataPlane set, the canary's request count
// is queried first and, if short, every metric is Inconclusive without further queries.
// Without spec.dataPlane there is no known request counter: minSamples is not checked and
// Message says so.
func Evaluate(ctx context.Context, src MetricSource, spec *meshv1alpha1.HealthGateSpec, t Target) Result {
	if t.CanaryService == "" {
		t.CanaryService = t.Service
	}
	e := &evaluation{ctx: ctx, src: src, spec: spec, at: time.Now(), vars: TemplateVars{
		Namespace: t.Namespace, Service: t.Service, CanaryService: t.CanaryService,
		StableService: t.StableService, Revision: t.Revision, Window: model.Duration(t.Window).String(),
	}}
	var res Result
	var note string
	switch {
	case len(spec.Metrics) == 0: // admission requires one; an empty gate must not pass
		return e.all(meshv1alpha1.VerdictInconclusive, "the gate has no metrics")
	case t.Window <= 0:
		return e.all(meshv1alpha1.VerdictInconclusive, "no query window (target window is not set)")
	case t.MinSamples > 0 && spec.DataPlane == "":
		note = "minSamples not checked: spec.dataPlane is not set, so there is no request counter to count with"
	case t.MinSamples > 0:
		if r, done := e.checkSamples(t); done {
			return r
		}
	}

	// The metrics are queried at once: a check takes as long as its slowest query, not their
	// sum (a slow Prometheus then costs one timeout per check, not one per metric).
	res.Metrics = make([]meshv1alpha1.MetricVerdict, len(spec.Metrics))
	errs := make([]error, len(spec.Metrics))
	var wg sync.WaitGroup
	for i := range spec.Metrics {
		wg.Go(func() { res.Metrics[i], errs[i] = e.metric(&spec.Metrics[i]) })
	}
	wg.Wait()
	res.Address = e.answered()
	for i, err := range errs {
		if err != nil {
			// A partial evaluation must not pass or fail the canary.
			msg := truncate(err.Error())
			res.Metrics[i] = meshv1alpha1.MetricVerdict{Name: spec.Metrics[i].Name, Verdict: meshv1alpha1.VerdictUnreachable, Message: msg}
			if res.Verdict != meshv1alpha1.VerdictUnreachable {
				res.Verdict, res.Message = meshv1alpha1.VerdictUnreachable, truncate(spec.Metrics[i].Name+": "+msg)
			}
		}
	}
	if res.Verdict == meshv1alpha1.VerdictUnreachable {
		return res
	}
	res.Verdict, res.Message = overall(res.Metrics)
	if note != "" {
		res.Message = truncate(res.Message + "; " + note)
	}
	return res
}

// overall applies the precedence Fail > Inconclusive > Pass and names the first metric with
// the deciding verdict (Unreachable is handled by Evaluate, which stops at it).
func overall(ms []meshv1alpha1.MetricVerdict) (meshv1alpha1.Verdict, string) {
	for _, v := range []meshv1alpha1.Verdict{meshv1alpha1.VerdictFail, meshv1alpha1.VerdictInconclusive} {
		first, n := -1, 0
		for i, m := range ms {
			if m.Verdict == v {
				if first < 0 {
					first = i
				}
				n++
			}
		}
		if first >= 0 {
			msg := ms[first].Name + ": " + ms[first].Message
			if n > 1 {
				msg += fmt.Sprintf(" (and %d more %s)", n-1, v)
			}
			return v, truncate(msg)
		}
	}
	return meshv1alpha1.VerdictPass, fmt.Sprintf("all %d metrics pass", len(ms))
}

type evaluation struct {
	ctx  context.Context
	src  MetricSource
	spec *meshv1alpha1.HealthGateSpec
	at   time.Time
	vars TemplateVars

	mu      sync.Mutex
	address string // last address that answered
}

func (e *evaluation) answeredBy(addr string) {
	e.mu.Lock()
	e.address = addr
	e.mu.Unlock()
}

func (e *evaluation) answered() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.address
}

// all gives every metric the same verdict and message.
func (e *evaluation) all(v meshv1alpha1.Verdict, msg string) Result {
	msg = truncate(msg)
	r := Result{Verdict: v, Message: msg, Address: e.answered()}
	for _, m := range e.spec.Metrics {
		r.Metrics = append(r.Metrics, meshv1alpha1.MetricVerdict{Name: m.Name, Verdict: v, Message: msg})
	}
	return r
}

// checkSamples queries the canary's request count; done means the result is final.
func (e *evaluation) checkSamples(t Target) (Result, bool) {
	tmpl, err := SampleCountQuery(e.spec.DataPlane)
	if err != nil {
		return e.all(meshv1alpha1.VerdictInconclusive, "minSamples: "+err.Error()), true
	}
	r, err := e.read(tmpl, e.vars)
	if err != nil {
		return e.all(meshv1alpha1.VerdictUnreachable, "minSamples: "+err.Error()), true
	}
	count := r.value
	switch {
	case r.noData:
		count = 0 // no request series at all: the canary has had no traffic
	case r.problem != "":
		return e.all(meshv1alpha1.VerdictInconclusive, "minSamples: request count "+r.problem), true
	}
	if count < float64(t.MinSamples) {
		return e.all(meshv1alpha1.VerdictInconclusive, fmt.Sprintf("%s requests in window %s, need %d",
			strconv.FormatFloat(math.Floor(count), 'f', 0, 64), e.vars.Window, t.MinSamples)), true
	}
	return Result{}, false
}

// metric judges one metric. The error is only ever an *UnreachableError.
func (e *evaluation) metric(m *meshv1alpha1.HealthMetric) (meshv1alpha1.MetricVerdict, error) {
	mv := meshv1alpha1.MetricVerdict{Name: m.Name, Verdict: meshv1alpha1.VerdictInconclusive}
	tmpl := m.Query
	if tmpl == "" {
		var err error
		if tmpl, err = BuiltinQuery(e.spec.DataPlane, m.Builtin); err != nil {
			mv.Message = truncate(err.Error())
			return mv, nil
		}
	}
	canary, err := e.read(tmpl, e.vars)
	if err != nil {
		return mv, err
	}
	mv.Value = canary.text
	switch {
	case canary.noData:
		mv.Message = "no data"
		if nd := e.spec.GetNoData(); nd == meshv1alpha1.NoDataFail || nd == meshv1alpha1.NoDataPass {
			mv.Verdict = meshv1alpha1.Verdict(nd)
			mv.Message += " (noData: " + string(nd) + ")"
		}
		return mv, nil
	case canary.problem != "":
		mv.Message = truncate(canary.problem)
		return mv, nil
	}

	var passed []string
	if tr := m.ThresholdRange; tr != nil {
		v := canary.value
		switch {
		case tr.Min != nil && v < *tr.Min:
			mv.Verdict, mv.Message = meshv1alpha1.VerdictFail, fmt.Sprintf("%s < min %s", pair(v, *tr.Min)...)
			return mv, nil
		case tr.Max != nil && v > *tr.Max:
			mv.Verdict, mv.Message = meshv1alpha1.VerdictFail, fmt.Sprintf("%s > max %s", pair(v, *tr.Max)...)
			return mv, nil
		}
		passed = append(passed, fmt.Sprintf("%s in [%s, %s]", num(v), bound(tr.Min, "-Inf"), bound(tr.Max, "+Inf")))
	}
	if c := m.CompareToStable; c != nil {
		verdict, msg, err := e.compare(m, tmpl, canary, c.MaxDegradation)
		if err != nil {
			return mv, err
		}
		if verdict != meshv1alpha1.VerdictPass {
			mv.Verdict, mv.Message = verdict, truncate(msg)
			return mv, nil
		}
		passed = append(passed, msg)
	}
	mv.Verdict, mv.Message = meshv1alpha1.VerdictPass, truncate(strings.Join(passed, "; ")+canary.warnings)
	return mv, nil
}

// compare runs the metric's query for the stable service and checks the canary's value is not
// worse than stable by more than maxDeg (relative to stable). A stable value of 0 allows no
// degradation at all: relative to zero, any worse value is infinitely worse.
func (e *evaluation) compare(m *meshv1alpha1.HealthMetric, tmpl string, c reading, maxDeg float64) (meshv1alpha1.Verdict, string, error) {
	if e.vars.StableService == "" {
		return meshv1alpha1.VerdictInconclusive, "compareToStable: the target has no stable service", nil
	}
	sv := e.vars
	sv.CanaryService = e.vars.StableService
	q, err := Expand(tmpl, sv)
	switch {
	case err != nil:
		return meshv1alpha1.VerdictInconclusive, "compareToStable: query template: " + err.Error(), nil
	case q == c.query:
		// Comparing a query with itself would always pass.
		return meshv1alpha1.VerdictInconclusive, "compareToStable: the query does not use {{ .CanaryService }}, so canary and stable are the same query", nil
	}
	canary := c.value
	stable, err := e.run(q)
	if err != nil {
		return "", "", err
	}
	switch {
	case stable.noData:
		return meshv1alpha1.VerdictInconclusive, "compareToStable: no data for stable", nil
	case stable.problem != "":
		return meshv1alpha1.VerdictInconclusive, "compareToStable: stable " + stable.problem, nil
	}
	s := stable.value
	// A relative tolerance keeps a value exactly at the margin passing despite float rounding.
	const eps = 1e-9
	if m.GetDirection() == meshv1alpha1.LowerIsBetter {
		limit := s * (1 + maxDeg)
		if canary > limit+eps*math.Abs(limit) {
			return meshv1alpha1.VerdictFail, fmt.Sprintf("canary %s > stable %s * (1 + %g) = %s", num(canary), num(s), maxDeg, num(limit)), nil
		}
		return meshv1alpha1.VerdictPass, fmt.Sprintf("canary %s vs stable %s: within %g (lower is better)", num(canary), num(s), maxDeg), nil
	}
	limit := s * (1 - maxDeg)
	if canary < limit-eps*math.Abs(limit) {
		return meshv1alpha1.VerdictFail, fmt.Sprintf("canary %s < stable %s * (1 - %g) = %s", num(canary), num(s), maxDeg, num(limit)), nil
	}
	return meshv1alpha1.VerdictPass, fmt.Sprintf("canary %s vs stable %s: within %g (higher is better)", num(canary), num(s), maxDeg), nil
}

// reading is one query's answer reduced to a number, or why it could not be.
type reading struct {
	query    string // as sent
	value    float64
	text     string // value as text, NaN and ±Inf included; "" when there is no single value
	noData   bool
	problem  string // non-empty: no usable number (Inconclusive)
	warnings string
}

// read expands and runs a query. The error is only ever an *UnreachableError; every other
// problem is in the reading.
func (e *evaluation) read(tmpl string, vars TemplateVars) (reading, error) {
	q, err := Expand(tmpl, vars)
	if err != nil {
		return reading{problem: "query template: " + err.Error()}, nil
	}
	return e.run(q)
}

// run runs an expanded query; errors as for read.
func (e *evaluation) run(q string) (reading, error) {
	ans, err := e.src.Query(e.ctx, q, e.at)
	if err != nil {
		var qe *QueryError
		if errors.As(err, &qe) {
			e.answeredBy(qe.Address)
			return reading{problem: "query rejected by Prometheus, fix the HealthGate: " + qe.Msg}, nil
		}
		var ue *UnreachableError
		if !errors.As(err, &ue) {
			// An unknown error from some other MetricSource: no answer either.
			ue = &UnreachableError{Attempts: []AddressError{{Address: "source", Err: err}}}
		}
		return reading{}, ue
	}
	e.answeredBy(ans.Address)
	r := reading{query: q}
	if len(ans.Warnings) > 0 {
		r.warnings = " (prometheus warning: " + strings.Join(ans.Warnings, "; ") + ")"
	}
	switch v := ans.Value.(type) {
	case *model.Scalar:
		r.value = float64(v.Value)
	case model.Vector:
		switch len(v) {
		case 0:
			r.noData = true
			return r, nil
		case 1:
			r.value = float64(v[0].Value)
		default:
			r.problem = fmt.Sprintf("query returned %d series, want one (aggregate it, e.g. with sum)", len(v))
			return r, nil
		}
	case nil:
		r.noData = true
		return r, nil
	default:
		r.problem = fmt.Sprintf("query returned a %s, want an instant vector with one series or a scalar", ans.Value.Type())
		return r, nil
	}
	r.text = numText(r.value)
	if math.IsNaN(r.value) || math.IsInf(r.value, 0) {
		r.problem = "value is " + r.text + " (e.g. no requests in the window: 0/0)"
	}
	return r, nil
}

// numText is the shortest exact text of v, with NaN and infinities spelled as Prometheus does.
func numText(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// num formats a value for a message: three decimals, or three significant digits for small
// and large values.
func num(v float64) string { return numPrec(v, 3) }

func numPrec(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return numText(v)
	}
	if a := math.Abs(v); a != 0 && (a < 0.01 || a >= 1e6) {
		return strconv.FormatFloat(v, 'g', prec, 64)
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// pair formats a value and the bound it broke with enough digits that they read differently
// ("0.9995 < min 0.9999", not "1.000 < min 1.000").
func pair(v, limit float64) []any {
	for prec := 3; prec < 17; prec++ {
		a, b := numPrec(v, prec), numPrec(limit, prec)
		if a != b {
			return []any{a, b}
		}
	}
	return []any{numText(v), numText(limit)}
}

func bound(b *float64, open string) string {
	if b == nil {
		return open
	}
	return num(*b)
}

// truncate keeps a message within the status field's limit without splitting a rune.
func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
