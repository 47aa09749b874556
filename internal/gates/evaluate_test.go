package gates

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// fakeSource answers expanded queries from a table and records what was asked.
type fakeSource struct {
	mu      sync.Mutex
	answers map[string]fakeAnswer
	queries []string
}

type fakeAnswer struct {
	tmpl, svc string // the query template and the {{ .CanaryService }} it is expanded with
	value     model.Value
	err       error
}

func (f *fakeSource) Query(_ context.Context, q string, _ time.Time) (Answer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	a, ok := f.answers[q]
	if !ok {
		return Answer{}, &QueryError{Address: "fake", Type: "bad_data", Msg: "unexpected query " + q}
	}
	if a.err != nil {
		return Answer{Address: "fake"}, a.err
	}
	return Answer{Value: a.value, Address: "http://fake:9090"}, nil
}

const (
	qOK   = `sum(rate(ok{svc="{{ .CanaryService }}"}[{{ .Window }}]))`
	qLat  = `max(latency{svc="{{ .CanaryService }}"})`
	qFlat = `sum(rate(ok{svc="{{ .Service }}"}[{{ .Window }}]))` // ignores the canary
)

var baseTarget = Target{
	Namespace: "shop", Service: "checkout", CanaryService: "checkout-b", StableService: "checkout-a",
	Revision: "7b9e21", Window: time.Minute,
}

func vec(vals ...float64) model.Vector {
	v := model.Vector{}
	for i, f := range vals {
		v = append(v, &model.Sample{Metric: model.Metric{"i": model.LabelValue(strconv.Itoa(i))}, Value: model.SampleValue(f)})
	}
	return v
}

func canary(tmpl string, v model.Value) fakeAnswer {
	return fakeAnswer{tmpl: tmpl, svc: "checkout-b", value: v}
}
func stable(tmpl string, v model.Value) fakeAnswer {
	return fakeAnswer{tmpl: tmpl, svc: "checkout-a", value: v}
}

func fptr(f float64) *float64 { return &f }

func thr(name, q string, lo, hi *float64) meshv1alpha1.HealthMetric {
	return meshv1alpha1.HealthMetric{Name: name, Query: q, ThresholdRange: &meshv1alpha1.ThresholdRange{Min: lo, Max: hi}}
}

func cmp(name, q string, maxDeg float64, dir meshv1alpha1.Direction) meshv1alpha1.HealthMetric {
	return meshv1alpha1.HealthMetric{Name: name, Query: q, CompareToStable: &meshv1alpha1.CompareToStable{MaxDegradation: maxDeg, Direction: dir}}
}

var unreachable = &UnreachableError{Attempts: []AddressError{{Address: "http://prom:9090", Err: errors.New("connection refused")}}}

func TestEvaluate(t *testing.T) {
	V := meshv1alpha1.VerdictPass
	F := meshv1alpha1.VerdictFail
	I := meshv1alpha1.VerdictInconclusive
	U := meshv1alpha1.VerdictUnreachable
	both := thr("ok", qOK, fptr(0.9), nil)
	both.CompareToStable = &meshv1alpha1.CompareToStable{MaxDegradation: 0.01}
	countTmpl := func() string {
		q, err := SampleCountQuery(meshv1alpha1.DataPlaneTraefik)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}

	for _, tc := range []struct {
		name        string
		metrics     []meshv1alpha1.HealthMetric
		dataPlane   meshv1alpha1.DataPlane
		noData      meshv1alpha1.NoDataVerdict
		target      func(*Target)
		answers     []fakeAnswer
		want        meshv1alpha1.Verdict
		wantMetrics []meshv1alpha1.Verdict
		wantValue   string // of the first metric, when set
		wantMsg     string // substring of Result.Message
		wantQueries int    // when > 0
	}{
		{name: "min pass", metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec(0.995))}, want: V, wantValue: "0.995", wantMsg: "all 1 metrics pass"},
		{name: "min fail", metrics: []meshv1alpha1.HealthMetric{thr("success-rate", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec(0.8))}, want: F, wantMsg: "success-rate: 0.800 < min 0.990"},
		{name: "min edge is inclusive", metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec(0.99))}, want: V},
		{name: "min fail close to the bound shows the digits that differ", metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.9999), nil)},
			answers: []fakeAnswer{canary(qOK, vec(0.9995))}, want: F, wantMsg: "0.9995 < min 0.9999"},
		{name: "max edge is inclusive", metrics: []meshv1alpha1.HealthMetric{thr("p99", qLat, nil, fptr(0.5))},
			answers: []fakeAnswer{canary(qLat, vec(0.5))}, want: V},
		{name: "max fail", metrics: []meshv1alpha1.HealthMetric{thr("p99", qLat, nil, fptr(0.5))},
			answers: []fakeAnswer{canary(qLat, vec(0.734))}, want: F, wantMsg: "p99: 0.734 > max 0.500"},
		{name: "range inside", metrics: []meshv1alpha1.HealthMetric{thr("r", qOK, fptr(1), fptr(10))},
			answers: []fakeAnswer{canary(qOK, vec(10))}, want: V},
		{name: "range below", metrics: []meshv1alpha1.HealthMetric{thr("r", qOK, fptr(1), fptr(10))},
			answers: []fakeAnswer{canary(qOK, vec(0.5))}, want: F},
		{name: "range above", metrics: []meshv1alpha1.HealthMetric{thr("r", qOK, fptr(1), fptr(10))},
			answers: []fakeAnswer{canary(qOK, vec(10.5))}, want: F},
		{name: "scalar result", metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, &model.Scalar{Value: 1})}, want: V, wantValue: "1"},
		{name: "NaN is inconclusive", metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec(math.NaN()))}, want: I, wantValue: "NaN", wantMsg: "NaN"},
		{name: "+Inf is inconclusive even above a min", metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec(math.Inf(1)))}, want: I, wantValue: "+Inf"},
		{name: "-Inf is inconclusive even below a max", metrics: []meshv1alpha1.HealthMetric{thr("p99", qLat, nil, fptr(0.5))},
			answers: []fakeAnswer{canary(qLat, vec(math.Inf(-1)))}, want: I, wantValue: "-Inf"},
		{name: "no data default is inconclusive", metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec())}, want: I, wantMsg: "ok: no data"},
		{name: "no data Inconclusive", noData: meshv1alpha1.NoDataInconclusive, metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec())}, want: I},
		{name: "no data Fail", noData: meshv1alpha1.NoDataFail, metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec())}, want: F, wantMsg: "no data (noData: Fail)"},
		{name: "no data Pass", noData: meshv1alpha1.NoDataPass, metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec())}, want: V},
		{name: "several series", metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec(1, 1))}, want: I, wantMsg: "query returned 2 series, want one"},
		{name: "range vector", metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, model.Matrix{})}, want: I, wantMsg: "matrix"},
		{name: "minSamples short: every metric inconclusive, no metric queried", dataPlane: meshv1alpha1.DataPlaneTraefik,
			target:  func(t *Target) { t.MinSamples = 100 },
			metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil), thr("p99", qLat, nil, fptr(0.5))},
			answers: []fakeAnswer{canary(countTmpl(), vec(37.6)), canary(qOK, vec(1)), canary(qLat, vec(0.1))},
			want:    I, wantMetrics: []meshv1alpha1.Verdict{I, I}, wantMsg: "37 requests in window 1m, need 100", wantQueries: 1},
		{name: "minSamples no request series counts as zero", dataPlane: meshv1alpha1.DataPlaneTraefik,
			target:  func(t *Target) { t.MinSamples = 100 },
			metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(countTmpl(), vec())}, want: I, wantMsg: "0 requests in window 1m, need 100"},
		{name: "minSamples met", dataPlane: meshv1alpha1.DataPlaneTraefik,
			target:  func(t *Target) { t.MinSamples = 100 },
			metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(countTmpl(), vec(100)), canary(qOK, vec(1))}, want: V, wantQueries: 2},
		{name: "minSamples without dataPlane is not checked, and says so",
			target:  func(t *Target) { t.MinSamples = 100 },
			metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{canary(qOK, vec(1))}, want: V, wantMsg: "minSamples not checked", wantQueries: 1},
		{name: "minSamples query unreachable", dataPlane: meshv1alpha1.DataPlaneTraefik,
			target:  func(t *Target) { t.MinSamples = 100 },
			metrics: []meshv1alpha1.HealthMetric{thr("ok", qOK, fptr(0.99), nil)},
			answers: []fakeAnswer{{tmpl: countTmpl(), svc: "checkout-b", err: unreachable}}, want: U, wantQueries: 1},
		{name: "higher is better: canary 5% worse than stable, 1% allowed", metrics: []meshv1alpha1.HealthMetric{cmp("vs-stable", qOK, 0.01, "")},
			answers: []fakeAnswer{canary(qOK, vec(0.95)), stable(qOK, vec(1))}, want: F, wantMsg: "canary 0.950 < stable 1.000"},
		{name: "higher is better: exactly at the margin passes", metrics: []meshv1alpha1.HealthMetric{cmp("vs-stable", qOK, 0.25, meshv1alpha1.HigherIsBetter)},
			answers: []fakeAnswer{canary(qOK, vec(0.75)), stable(qOK, vec(1))}, want: V},
		// 0.2 × (1 − 0.1) is 0.18000000000000002 in float64: 0.18 is at the margin.
		{name: "higher is better: at the margin despite float rounding passes", metrics: []meshv1alpha1.HealthMetric{cmp("vs-stable", qOK, 0.1, "")},
			answers: []fakeAnswer{canary(qOK, vec(0.18)), stable(qOK, vec(0.2))}, want: V},
		// 0.95 × (1 + 0.01) is 0.9594999999999999 in float64.
		{name: "lower is better: at the margin despite float rounding passes", metrics: []meshv1alpha1.HealthMetric{cmp("lat", qLat, 0.01, meshv1alpha1.LowerIsBetter)},
			answers: []fakeAnswer{canary(qLat, vec(0.9595)), stable(qLat, vec(0.95))}, want: V},
		{name: "higher is better: just past the margin fails", metrics: []meshv1alpha1.HealthMetric{cmp("vs-stable", qOK, 0.25, "")},
			answers: []fakeAnswer{canary(qOK, vec(0.7499)), stable(qOK, vec(1))}, want: F},
		{name: "higher is better: canary better than stable", metrics: []meshv1alpha1.HealthMetric{cmp("vs-stable", qOK, 0, "")},
			answers: []fakeAnswer{canary(qOK, vec(1)), stable(qOK, vec(0.9))}, want: V},
		{name: "lower is better: exactly at the margin passes", metrics: []meshv1alpha1.HealthMetric{cmp("lat", qLat, 0.25, meshv1alpha1.LowerIsBetter)},
			answers: []fakeAnswer{canary(qLat, vec(0.125)), stable(qLat, vec(0.1))}, want: V},
		{name: "lower is better: past the margin fails", metrics: []meshv1alpha1.HealthMetric{cmp("lat", qLat, 0.25, meshv1alpha1.LowerIsBetter)},
			answers: []fakeAnswer{canary(qLat, vec(0.13)), stable(qLat, vec(0.1))}, want: F, wantMsg: "canary 0.130 > stable 0.100"},
		{name: "lower is better: a lower canary passes", metrics: []meshv1alpha1.HealthMetric{cmp("lat", qLat, 0, meshv1alpha1.LowerIsBetter)},
			answers: []fakeAnswer{canary(qLat, vec(0.05)), stable(qLat, vec(0.1))}, want: V},
		{name: "stable no data is inconclusive", metrics: []meshv1alpha1.HealthMetric{cmp("vs-stable", qOK, 0.01, "")},
			answers: []fakeAnswer{canary(qOK, vec(0.5)), stable(qOK, vec())}, want: I, wantMsg: "no data for stable"},
		{name: "compare without a stable service", target: func(t *Target) { t.StableService = "" },
			metrics: []meshv1alpha1.HealthMetric{cmp("vs-stable", qOK, 0.01, "")},
			answers: []fakeAnswer{canary(qOK, vec(0.5))}, want: I, wantMsg: "no stable service"},
		{name: "compare with a query blind to the canary", metrics: []meshv1alpha1.HealthMetric{cmp("vs-stable", qFlat, 0.01, "")},
			answers: []fakeAnswer{canary(qFlat, vec(0.5))}, want: I, wantMsg: "does not use {{ .CanaryService }}"},
		{name: "threshold and compare: threshold fails", metrics: []meshv1alpha1.HealthMetric{both},
			answers: []fakeAnswer{canary(qOK, vec(0.85)), stable(qOK, vec(0.85))}, want: F, wantMsg: "< min"},
		{name: "threshold and compare: compare fails", metrics: []meshv1alpha1.HealthMetric{both},
			answers: []fakeAnswer{canary(qOK, vec(0.95)), stable(qOK, vec(1))}, want: F, wantMsg: "< stable"},
		{name: "threshold and compare: both pass", metrics: []meshv1alpha1.HealthMetric{both},
			answers: []fakeAnswer{canary(qOK, vec(0.999)), stable(qOK, vec(1))}, want: V},
		{name: "one unreachable query makes the gate unreachable; the others were queried at the same time",
			metrics: []meshv1alpha1.HealthMetric{thr("a", qOK, fptr(0.99), nil), thr("b", qLat, nil, fptr(0.5))},
			answers: []fakeAnswer{{tmpl: qOK, svc: "checkout-b", err: unreachable}, canary(qLat, vec(0.1))},
			want:    U, wantMetrics: []meshv1alpha1.Verdict{U, V}, wantMsg: "a: prometheus unreachable", wantQueries: 2},
		{name: "unreachable outranks an earlier fail",
			metrics: []meshv1alpha1.HealthMetric{thr("a", qOK, fptr(0.99), nil), thr("b", qLat, nil, fptr(0.5))},
			answers: []fakeAnswer{canary(qOK, vec(0.5)), {tmpl: qLat, svc: "checkout-b", err: unreachable}},
			want:    U, wantMetrics: []meshv1alpha1.Verdict{F, U}},
		{name: "unreachable on the stable query",
			metrics: []meshv1alpha1.HealthMetric{cmp("vs-stable", qOK, 0.01, "")},
			answers: []fakeAnswer{canary(qOK, vec(0.5)), {tmpl: qOK, svc: "checkout-a", err: unreachable}}, want: U},
		{name: "query rejected at run time is inconclusive, not fail",
			metrics: []meshv1alpha1.HealthMetric{thr("a", qOK, fptr(0.99), nil), thr("b", qLat, nil, fptr(0.5))},
			answers: []fakeAnswer{{tmpl: qOK, svc: "checkout-b", err: &QueryError{Address: "http://p:9090", Type: "bad_data", Msg: "parse error"}}, canary(qLat, vec(0.1))},
			want:    I, wantMetrics: []meshv1alpha1.Verdict{I, V}, wantMsg: "query rejected by Prometheus, fix the HealthGate: parse error"},
		{name: "fail outranks inconclusive and names the failing metric",
			metrics: []meshv1alpha1.HealthMetric{thr("a", qOK, fptr(0.99), nil), thr("b", qLat, nil, fptr(0.5)), thr("c", qFlat, fptr(1), nil)},
			answers: []fakeAnswer{canary(qOK, vec()), canary(qLat, vec(0.9)), canary(qFlat, vec(0))},
			want:    F, wantMetrics: []meshv1alpha1.Verdict{I, F, F}, wantMsg: "b: 0.900 > max 0.500 (and 1 more Fail)"},
		{name: "inconclusive outranks pass",
			metrics: []meshv1alpha1.HealthMetric{thr("a", qOK, fptr(0.99), nil), thr("b", qLat, nil, fptr(0.5))},
			answers: []fakeAnswer{canary(qOK, vec(1)), canary(qLat, vec(math.NaN()))},
			want:    I, wantMetrics: []meshv1alpha1.Verdict{V, I}, wantMsg: "b: value is NaN"},
		{name: "a gate without metrics does not pass", want: I, wantMsg: "no metrics"},
		{name: "no window", target: func(t *Target) { t.Window = 0 },
			metrics: []meshv1alpha1.HealthMetric{thr("a", qOK, fptr(0.99), nil)}, want: I, wantMsg: "no query window"},
		{name: "builtin p99 compares lower-is-better", dataPlane: meshv1alpha1.DataPlaneTraefik,
			metrics: []meshv1alpha1.HealthMetric{{Name: "p99", Builtin: meshv1alpha1.BuiltinRequestDurationP99,
				CompareToStable: &meshv1alpha1.CompareToStable{MaxDegradation: 0.1}}},
			answers: []fakeAnswer{
				canary(builtin(t, meshv1alpha1.BuiltinRequestDurationP99), vec(0.3)),
				stable(builtin(t, meshv1alpha1.BuiltinRequestDurationP99), vec(0.2))},
			want: F, wantMsg: "canary 0.300 > stable 0.200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := baseTarget
			if tc.target != nil {
				tc.target(&target)
			}
			src := &fakeSource{answers: map[string]fakeAnswer{}}
			for _, a := range tc.answers {
				vars := TemplateVars{Namespace: target.Namespace, Service: target.Service, CanaryService: a.svc,
					StableService: target.StableService, Revision: target.Revision, Window: "1m"}
				q, err := Expand(a.tmpl, vars)
				if err != nil {
					t.Fatalf("Expand(%q): %v", a.tmpl, err)
				}
				src.answers[q] = a
			}
			spec := &meshv1alpha1.HealthGateSpec{DataPlane: tc.dataPlane, NoData: tc.noData, Metrics: tc.metrics}
			res := Evaluate(context.Background(), src, spec, target)

			if res.Verdict != tc.want {
				t.Errorf("verdict %s, want %s (message %q, metrics %+v)", res.Verdict, tc.want, res.Message, res.Metrics)
			}
			if len(res.Metrics) != len(tc.metrics) {
				t.Fatalf("%d metric verdicts, want one per metric (%d)", len(res.Metrics), len(tc.metrics))
			}
			for i, want := range tc.wantMetrics {
				if got := res.Metrics[i]; got.Verdict != want || got.Name != tc.metrics[i].Name {
					t.Errorf("metric %d: %s %s, want %s %s (%s)", i, got.Name, got.Verdict, tc.metrics[i].Name, want, got.Message)
				}
			}
			if tc.wantValue != "" && res.Metrics[0].Value != tc.wantValue {
				t.Errorf("value %q, want %q", res.Metrics[0].Value, tc.wantValue)
			}
			if !strings.Contains(res.Message, tc.wantMsg) {
				t.Errorf("message %q, want it to contain %q", res.Message, tc.wantMsg)
			}
			if tc.wantQueries > 0 && len(src.queries) != tc.wantQueries {
				t.Errorf("%d queries, want %d: %q", len(src.queries), tc.wantQueries, src.queries)
			}
			for _, m := range res.Metrics {
				if len(m.Message) > maxMessage || len(m.Value) > 64 {
					t.Errorf("metric %s: message or value too long for status: %q %q", m.Name, m.Message, m.Value)
				}
			}
		})
	}
}

func builtin(t *testing.T, m meshv1alpha1.BuiltinMetric) string {
	t.Helper()
	q, err := BuiltinQuery(meshv1alpha1.DataPlaneTraefik, m)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestEvaluateSameInstant checks that every query of one evaluation is asked at one instant,
// so canary and stable compare like with like.
func TestEvaluateSameInstant(t *testing.T) {
	rec := &instantRecorder{}
	spec := &meshv1alpha1.HealthGateSpec{Metrics: []meshv1alpha1.HealthMetric{cmp("a", qOK, 0.1, ""), thr("b", qLat, nil, fptr(1))}}
	Evaluate(context.Background(), rec, spec, baseTarget)
	if len(rec.at) != 3 {
		t.Fatalf("%d queries, want 3", len(rec.at))
	}
	for _, at := range rec.at[1:] {
		if !at.Equal(rec.at[0]) {
			t.Errorf("queries at %v, want all at %v", rec.at, rec.at[0])
		}
	}
}

// instantRecorder records the instant of each query; Evaluate asks them concurrently.
type instantRecorder struct {
	mu sync.Mutex
	at []time.Time
}

func (r *instantRecorder) Query(_ context.Context, _ string, at time.Time) (Answer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at = append(r.at, at)
	return Answer{Value: vec(0.1), Address: "x"}, nil
}

func TestTruncateKeepsRunes(t *testing.T) {
	s := truncate(strings.Repeat("é", maxMessage))
	if len(s) > maxMessage || !strings.HasSuffix(s, "…") || strings.ContainsRune(s, '\uFFFD') {
		t.Errorf("truncate: %d bytes, %q...", len(s), s[len(s)-8:])
	}
	for _, r := range s {
		if r == '\uFFFD' {
			t.Fatal("split a rune")
		}
	}
}
