package gates

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	"k8s.io/apimachinery/pkg/util/wait"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/egress"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// Acceptance tests: the builtin Traefik queries run by a real Prometheus (Debian's 2.42)
// scraping an exporter that speaks Traefik's metric names and labels. Every test has its own
// Prometheus and exporter, so they run in parallel.

const (
	window      = 10 * time.Second // ≥ 2 scrapes at 1 s, short enough to react within a test
	pollTimeout = 30 * time.Second // rates need about 4 s of scrapes after traffic starts
	latency     = 20 * time.Millisecond
)

type stack struct {
	exp  *testenv.Exporter
	prom *testenv.Prometheus
}

// newStack starts an exporter with a healthy stable slot and a noisy neighbour whose name
// extends the canary's (checkout-bx, every request failing and slow): a builtin selector that
// is too broad would pull it in and fail the healthy cases.
func newStack(t testing.TB) *stack {
	exp := testenv.StartExporter(t)
	exp.Set("shop", "checkout-a", 50, 0, latency)
	exp.Set("shop", "checkout-bx", 50, 1, 3*time.Second)
	return &stack{exp: exp, prom: testenv.StartPrometheus(t, exp.Addr())}
}

func traefikGate(addrs []string, metrics ...meshv1alpha1.HealthMetric) *meshv1alpha1.HealthGateSpec {
	return &meshv1alpha1.HealthGateSpec{
		Prometheus: meshv1alpha1.PrometheusSource{Addresses: addrs, Timeout: &metav1.Duration{Duration: 2 * time.Second}},
		DataPlane:  meshv1alpha1.DataPlaneTraefik,
		Metrics:    metrics,
	}
}

// successRate: at least 99% of the canary's requests succeed.
func successRate() meshv1alpha1.HealthMetric {
	return meshv1alpha1.HealthMetric{Name: "success-rate", Builtin: meshv1alpha1.BuiltinRequestSuccessRate,
		ThresholdRange: &meshv1alpha1.ThresholdRange{Min: ptr.To(0.99)}}
}

// p99: the canary's 99th percentile latency is at most 0.5 s.
func p99() meshv1alpha1.HealthMetric {
	return meshv1alpha1.HealthMetric{Name: "p99", Builtin: meshv1alpha1.BuiltinRequestDurationP99,
		ThresholdRange: &meshv1alpha1.ThresholdRange{Max: ptr.To(0.5)}}
}

func noWorseThanStable(maxDeg float64) meshv1alpha1.HealthMetric {
	return meshv1alpha1.HealthMetric{Name: "no-worse-than-stable", Builtin: meshv1alpha1.BuiltinRequestSuccessRate,
		CompareToStable: &meshv1alpha1.CompareToStable{MaxDegradation: maxDeg}}
}

func promTarget() Target {
	return Target{Namespace: "shop", Service: "checkout", CanaryService: "checkout-b", StableService: "checkout-a", Revision: "7b9e21", Window: window}
}

func newSource(t testing.TB, spec *meshv1alpha1.HealthGateSpec) *PrometheusSource {
	t.Helper()
	src, err := NewPrometheusSource(spec.Prometheus, Auth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	return src
}

// eventually evaluates until the verdict is want, failing at once on a forbidden verdict (a
// healthy canary must never be seen failing on its way to Pass).
func eventually(t testing.TB, src MetricSource, spec *meshv1alpha1.HealthGateSpec, tg Target, want meshv1alpha1.Verdict, forbidden ...meshv1alpha1.Verdict) Result {
	t.Helper()
	var res Result
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, pollTimeout, true, func(ctx context.Context) (bool, error) {
		res = Evaluate(ctx, src, spec, tg)
		for _, f := range forbidden {
			if res.Verdict == f {
				return false, fmt.Errorf("verdict %s while waiting for %s: %s %+v", f, want, res.Message, res.Metrics)
			}
		}
		return res.Verdict == want, nil
	})
	if err != nil {
		t.Fatalf("no %s after %s (%v); last: %s: %s %+v", want, pollTimeout, err, res.Verdict, res.Message, res.Metrics)
	}
	return res
}

func TestPrometheusHealthyCanaryPasses(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.exp.Set("shop", "checkout-b", 50, 0, latency)
	spec := traefikGate([]string{s.prom.URL()}, successRate(), p99())
	res := eventually(t, newSource(t, spec), spec, promTarget(), meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail)
	if res.Address != s.prom.URL() {
		t.Errorf("address %q, want %q", res.Address, s.prom.URL())
	}
	t.Logf("%s: %+v", res.Message, res.Metrics)
}

func TestPrometheusErroringCanaryFails(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.exp.Set("shop", "checkout-b", 50, 0.2, latency)
	spec := traefikGate([]string{s.prom.URL()}, successRate(), p99())
	res := eventually(t, newSource(t, spec), spec, promTarget(), meshv1alpha1.VerdictFail, meshv1alpha1.VerdictPass)
	if res.Metrics[0].Verdict != meshv1alpha1.VerdictFail || res.Metrics[1].Verdict != meshv1alpha1.VerdictPass {
		t.Errorf("want success-rate Fail and p99 Pass: %+v", res.Metrics)
	}
	if !strings.HasPrefix(res.Message, "success-rate: 0.8") {
		t.Errorf("message %q should name success-rate and its value (about 0.8)", res.Message)
	}
}

func TestPrometheusZeroTrafficInconclusive(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.exp.Set("shop", "checkout-b", 0, 0, 0) // series exist, nothing flows
	spec := traefikGate([]string{s.prom.URL()}, successRate(), p99())
	src := newSource(t, spec)
	// First prove Prometheus has scraped enough for rates: the same gate on stable passes.
	onStable := promTarget()
	onStable.CanaryService = "checkout-a"
	eventually(t, src, spec, onStable, meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail)

	res := Evaluate(context.Background(), src, spec, promTarget())
	if res.Verdict != meshv1alpha1.VerdictInconclusive {
		t.Fatalf("verdict %s, want Inconclusive: %s %+v", res.Verdict, res.Message, res.Metrics)
	}
	for _, m := range res.Metrics {
		if m.Verdict != meshv1alpha1.VerdictInconclusive {
			t.Errorf("%s: %s, want Inconclusive (%s)", m.Name, m.Verdict, m.Message)
		}
	}
	t.Logf("%s: %+v", res.Message, res.Metrics)
}

func TestPrometheusStoppedUnreachableThenBack(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.exp.Set("shop", "checkout-b", 50, 0, latency)
	spec := traefikGate([]string{s.prom.URL()}, successRate(), p99())
	src := newSource(t, spec)
	eventually(t, src, spec, promTarget(), meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail)

	s.prom.Stop()
	res := Evaluate(context.Background(), src, spec, promTarget())
	if res.Verdict != meshv1alpha1.VerdictUnreachable || res.Address != "" {
		t.Fatalf("verdict %s address %q, want Unreachable and none: %s", res.Verdict, res.Address, res.Message)
	}
	for _, m := range res.Metrics {
		if m.Verdict != meshv1alpha1.VerdictUnreachable {
			t.Errorf("%s: %s, want Unreachable", m.Name, m.Verdict)
		}
	}
	if !strings.Contains(res.Message, s.prom.URL()) {
		t.Errorf("message %q should name the address that failed", res.Message)
	}

	s.prom.Start()
	eventually(t, src, spec, promTarget(), meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail)
}

func TestPrometheusCompareToStableWorseFails(t *testing.T) {
	t.Parallel()
	s := newStack(t) // stable: 100% success
	s.exp.Set("shop", "checkout-b", 50, 0.05, latency)
	spec := traefikGate([]string{s.prom.URL()}, noWorseThanStable(0.01))
	res := eventually(t, newSource(t, spec), spec, promTarget(), meshv1alpha1.VerdictFail, meshv1alpha1.VerdictPass)
	if !strings.Contains(res.Message, "< stable 1.000") {
		t.Errorf("message %q should compare with stable's 1.000", res.Message)
	}
}

func TestPrometheusCompareToStableEqualPasses(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.exp.Set("shop", "checkout-a", 50, 0.02, latency) // both slots equally (and not perfectly) good
	s.exp.Set("shop", "checkout-b", 50, 0.02, latency)
	spec := traefikGate([]string{s.prom.URL()}, noWorseThanStable(0.01))
	eventually(t, newSource(t, spec), spec, promTarget(), meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail)
}

func TestPrometheusSecondAddressAnswers(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.exp.Set("shop", "checkout-b", 50, 0, latency)
	closed := closedAddr(t)
	spec := traefikGate([]string{closed, s.prom.URL()}, successRate(), p99())
	res := eventually(t, newSource(t, spec), spec, promTarget(), meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail)
	if res.Address != s.prom.URL() {
		t.Errorf("address %q, want the second one %q", res.Address, s.prom.URL())
	}

	// Both closed: Unreachable, naming every address.
	spec = traefikGate([]string{closed, closedAddr(t)}, successRate())
	res = Evaluate(context.Background(), newSource(t, spec), spec, promTarget())
	if res.Verdict != meshv1alpha1.VerdictUnreachable || !strings.Contains(res.Message, spec.Prometheus.Addresses[1]) {
		t.Errorf("verdict %s, want Unreachable naming both addresses: %s", res.Verdict, res.Message)
	}
}

func TestPrometheusMinSamples(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.exp.Set("shop", "checkout-b", 20, 0, latency) // about 200 requests in a 10 s window
	spec := traefikGate([]string{s.prom.URL()}, successRate(), p99())
	src := newSource(t, spec)
	tg := promTarget()
	tg.MinSamples = 50
	eventually(t, src, spec, tg, meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail)

	tg.MinSamples = 100000
	res := Evaluate(context.Background(), src, spec, tg)
	if res.Verdict != meshv1alpha1.VerdictInconclusive || !strings.Contains(res.Message, "requests in window 10s, need 100000") ||
		strings.HasPrefix(res.Message, "0 requests") {
		t.Errorf("verdict %s, want Inconclusive with a non-zero count short of 100000: %s", res.Verdict, res.Message)
	}
}

// TestPrometheusQueryRejected: PromQL Prometheus rejects at run time is Inconclusive (the
// release is not to blame), and the answering address is still reported.
func TestPrometheusQueryRejected(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.exp.Set("shop", "checkout-b", 50, 0, latency)
	spec := traefikGate([]string{s.prom.URL()},
		// Parses for Sluice's (newer) PromQL parser, unknown to Prometheus 2.42 (400 bad_data):
		// the version skew admission can't see.
		thr("newer-function", `sum(mad_over_time(traefik_service_requests_total[{{ .Window }}]))`, fptr(0), nil),
		// Parses, fails at execution (422): many-to-many matching.
		thr("many-to-many", `traefik_service_requests_total + on(code) traefik_service_requests_total`, fptr(0), nil),
	)
	// Wait until the series exist, or the second query has nothing to match and returns empty.
	eventually(t, newSource(t, spec), traefikGate([]string{s.prom.URL()}, successRate()), promTarget(), meshv1alpha1.VerdictPass)

	res := Evaluate(context.Background(), newSource(t, spec), spec, promTarget())
	if res.Verdict != meshv1alpha1.VerdictInconclusive || res.Address != s.prom.URL() {
		t.Fatalf("verdict %s address %q, want Inconclusive from %s: %s", res.Verdict, res.Address, s.prom.URL(), res.Message)
	}
	for _, m := range res.Metrics {
		if m.Verdict != meshv1alpha1.VerdictInconclusive || !strings.Contains(m.Message, "query rejected") {
			t.Errorf("%s: %s %q, want Inconclusive, query rejected", m.Name, m.Verdict, m.Message)
		}
	}
	t.Logf("%s: %+v", res.Message, res.Metrics)
}

// closedAddr is the URL of a loopback port nobody listens on.
func closedAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

// TestPrometheusSourceAddresses pins which answers move on to the next address (transport,
// timeout, 5xx, 401/403, not-Prometheus, redirects) and which stop (a rejected query), with
// small stand-in servers for the answers a real Prometheus can't be made to give.
func TestPrometheusSourceAddresses(t *testing.T) {
	const ok = `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5"]}]}}`
	var goodHits atomic.Int32
	var gotAuth atomic.Value
	good := stub(t, func(w http.ResponseWriter, r *http.Request) {
		goodHits.Add(1)
		gotAuth.Store(r.Header.Get("Authorization"))
		_, _ = io.WriteString(w, ok)
	})
	status := func(code int, body string) string {
		return stub(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code); _, _ = io.WriteString(w, body) })
	}
	slow := stub(t, func(w http.ResponseWriter, r *http.Request) {
		// The server notices the client hanging up only once the body has been read.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	redirect := stub(t, func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, good+r.URL.Path, http.StatusFound) })
	badData := status(400, `{"status":"error","errorType":"bad_data","error":"1:5: parse error: unclosed left parenthesis"}`)

	query := func(auth Auth, addrs ...string) (Answer, error) {
		src, err := NewPrometheusSource(meshv1alpha1.PrometheusSource{Addresses: addrs, Timeout: &metav1.Duration{Duration: 300 * time.Millisecond}}, auth, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		return src.Query(context.Background(), "up", time.Now())
	}

	t.Run("every address-level failure moves on", func(t *testing.T) {
		ans, err := query(Auth{}, closedAddr(t), status(401, "no"), status(403, "no"), status(503, "busy"),
			status(404, "not here"), status(200, "<html>"), slow, redirect, good)
		if err != nil || ans.Address != good {
			t.Fatalf("answer from %q, err %v; want from %s", ans.Address, err, good)
		}
		if goodHits.Load() != 1 {
			t.Errorf("good address asked %d times, want once (the redirect must not be followed)", goodHits.Load())
		}
	})
	t.Run("a rejected query stops", func(t *testing.T) {
		before := goodHits.Load()
		_, err := query(Auth{}, badData, good)
		var qe *QueryError
		if !errors.As(err, &qe) || qe.Address != badData || qe.Type != "bad_data" {
			t.Fatalf("err %v, want a bad_data QueryError from %s", err, badData)
		}
		if goodHits.Load() != before {
			t.Error("the next address was asked after a query error")
		}
	})
	t.Run("all failing is unreachable, naming each", func(t *testing.T) {
		_, err := query(Auth{}, status(401, "no"), slow)
		var ue *UnreachableError
		if !errors.As(err, &ue) || len(ue.Attempts) != 2 {
			t.Fatalf("err %v, want an UnreachableError with 2 attempts", err)
		}
		if msg := ue.Error(); !strings.Contains(msg, "secretRef") || !strings.Contains(msg, "timed out") {
			t.Errorf("message %q should point at the credentials and the timeout", msg)
		}
	})
	t.Run("credentials over https only", func(t *testing.T) {
		secure, ca := tlsStub(t, func(w http.ResponseWriter, r *http.Request) {
			gotAuth.Store(r.Header.Get("Authorization"))
			_, _ = io.WriteString(w, ok)
		})
		if _, err := query(Auth{Token: "s3cret", CA: ca}, secure); err != nil || gotAuth.Load() != "Bearer s3cret" {
			t.Errorf("bearer over https: err %v, Authorization %q", err, gotAuth.Load())
		}
		if _, err := query(Auth{Username: "u", Password: "p", CA: ca}, secure); err != nil || gotAuth.Load() != "Basic dTpw" {
			t.Errorf("basic over https: err %v, Authorization %q", err, gotAuth.Load())
		}
		gotAuth.Store("")
		for _, auth := range []Auth{{Token: "s3cret"}, {Username: "u", Password: "p"}} {
			_, err := NewPrometheusSource(meshv1alpha1.PrometheusSource{Addresses: []string{secure, good}}, auth, nil)
			if err == nil || !strings.Contains(err.Error(), "spec.prometheus.addresses[1]") || !strings.Contains(err.Error(), "https") {
				t.Errorf("credentials with an http:// address: %v, want an error naming spec.prometheus.addresses[1]", err)
			}
		}
		if gotAuth.Load() != "" {
			t.Error("credentials were sent")
		}
		if _, err := query(Auth{CA: ca}, good); err != nil {
			t.Errorf("a CA alone (no credentials) over http: %v", err)
		}
	})
	t.Run("no body and no raw error in the messages", func(t *testing.T) {
		_, err := query(Auth{}, status(502, "SECRET-502"), status(422, `{"status":"error","errorType":"internal","error":"SECRET-JSON"}`),
			status(200, "SECRET-HTML <html>"), status(401, "SECRET-401"), redirect, closedAddr(t))
		var ue *UnreachableError
		if !errors.As(err, &ue) {
			t.Fatalf("err %v, want unreachable", err)
		}
		msg := ue.Error()
		for _, leak := range []string{"SECRET", "dial tcp", "127.0.0.1:"} {
			if strings.Contains(strings.ReplaceAll(msg, "http://127.0.0.1:", ""), leak) {
				t.Errorf("the message carries %q: %s", leak, msg)
			}
		}
		for _, want := range []string{"answered HTTP 502", "Prometheus server reported an error", "not the Prometheus query API", "answered HTTP 401", "answered HTTP 302", "connection refused"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the message lacks %q: %s", want, msg)
			}
		}
	})
	t.Run("the egress policy refuses before connecting", func(t *testing.T) {
		before := goodHits.Load()
		_, err := NewPrometheusSource(meshv1alpha1.PrometheusSource{Addresses: []string{good}}, Auth{}, egress.Default())
		if !egress.IsRefused(err) || !strings.Contains(err.Error(), "spec.prometheus.addresses[0]") {
			t.Errorf("a loopback address under the default policy: %v, want a refusal naming the field", err)
		}
		allowed, err := egress.Parse([]string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		src, err := NewPrometheusSource(meshv1alpha1.PrometheusSource{Addresses: []string{"http://169.254.169.254/", good}}, Auth{}, allowed)
		if err != nil {
			t.Fatal(err)
		}
		ans, err := src.Query(context.Background(), "up", time.Now())
		if err != nil || ans.Address != good || goodHits.Load() != before+1 {
			t.Errorf("a refused address then an allowed one: answer from %q, err %v", ans.Address, err)
		}
	})
	t.Run("CA from the secret", func(t *testing.T) {
		tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, ok) }))
		tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
		tlsSrv.StartTLS()
		t.Cleanup(tlsSrv.Close)
		if _, err := query(Auth{}, tlsSrv.URL); err == nil {
			t.Error("an unknown CA was trusted")
		}
		ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
		if _, err := query(Auth{CA: ca}, tlsSrv.URL); err != nil {
			t.Errorf("with its CA: %v", err)
		}
	})
}

// tlsStub is a stand-in https server on 127.0.0.1 and its CA (PEM).
func tlsStub(t *testing.T, h http.HandlerFunc) (string, []byte) {
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

// stub is a stand-in server on 127.0.0.1.
func stub(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
