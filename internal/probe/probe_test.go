package probe

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const token = "0123456789abcdef0123456789abcdef"

// gateway plays a data plane: it answers each request with the next of its answers (the last
// one repeats), and records what it was sent.
type gateway struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	answers []reply
	got     []*http.Request
}

// reply is one answer: a status and whether the probe rule marked it (with a split version).
type reply struct {
	status int
	marked bool
	split  string
	body   string
	hang   bool // never answer (until the client gives up)
}

func newGateway(t *testing.T, tls bool, answers ...reply) *gateway {
	g := &gateway{t: t, answers: answers}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		g.got = append(g.got, r.Clone(context.Background()))
		a := g.answers[0]
		if len(g.answers) > 1 {
			g.answers = g.answers[1:]
		}
		g.mu.Unlock()
		if a.hang {
			<-r.Context().Done()
			return
		}
		if a.marked {
			w.Header().Set(AnswerHeader, token)
		}
		if a.split != "" {
			w.Header().Set(SplitHeader, a.split)
		}
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
	})
	if tls {
		g.srv = httptest.NewTLSServer(h)
	} else {
		g.srv = httptest.NewServer(h)
	}
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) target(parent string) Target {
	return Target{URL: g.srv.URL, Host: "shop.example.com", Parent: parent}
}

func (g *gateway) requests() []*http.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*http.Request(nil), g.got...)
}

var (
	served      = reply{status: http.StatusOK, marked: true}
	noRule      = reply{status: http.StatusNotFound, body: "404 page not found"}
	noEndpoints = reply{status: http.StatusServiceUnavailable, marked: true, body: "no available server"}
	badGateway  = reply{status: http.StatusBadGateway, marked: true, body: "Bad Gateway"}
	unresolved  = reply{status: http.StatusInternalServerError, marked: true}
)

func TestProbe(t *testing.T) {
	cases := []struct {
		name      string
		answers   []reply
		successes int
		split     string
		budget    time.Duration
		ok        bool
		attempts  int     // 0: not checked
		status    int     // last status
		failure   Failure // of the last attempt
		message   string  // a part of the message
	}{
		{name: "served at once", answers: []reply{served}, ok: true, attempts: 1, status: 200},
		{name: "a 404 from the slot proves it answers", answers: []reply{{status: 404, marked: true}}, ok: true, attempts: 1, status: 404},
		{name: "a redirect from the slot is an answer, not followed", answers: []reply{{status: http.StatusFound, marked: true}}, ok: true, attempts: 1, status: 302},
		{name: "the rule is programmed after two tries", answers: []reply{noRule, noRule, served}, ok: true, attempts: 3, status: 200},
		{name: "endpoints reach the proxy after the rule", answers: []reply{unresolved, noEndpoints, served}, ok: true, attempts: 3},
		{name: "a failure breaks the streak", answers: []reply{served, badGateway, served, served, served}, successes: 3, ok: true, attempts: 5},
		{name: "the data plane catches up with the split", answers: []reply{{status: 200, marked: true, split: "old"}, {status: 200, marked: true, split: "new"}}, split: "new", ok: true, attempts: 2},
		{name: "the data plane keeps an older split", answers: []reply{{status: 200, marked: true, split: "old"}}, split: "new", budget: 300 * time.Millisecond, status: 200, failure: SplitNotServed, message: `through the probe rule of split "old", not "new"`},
		{name: "the rule never shows", answers: []reply{noRule}, budget: 300 * time.Millisecond, status: 404, failure: RuleNotServed, message: "without the probe rule's X-Sluice-Probe-Rule header"},
		{name: "no endpoint in the proxy's view", answers: []reply{noEndpoints}, budget: 300 * time.Millisecond, status: 503, failure: SlotUnreachable, message: `answered 503 Service Unavailable: the proxy cannot reach the slot yet (body "no available server")`},
		{name: "the slot hangs past the budget", answers: []reply{{hang: true}}, budget: 300 * time.Millisecond, status: 0, failure: NoAnswer, message: "no answer from"},
		{name: "the last real answer is reported when the budget ends mid-request", answers: []reply{badGateway, {hang: true}}, budget: 300 * time.Millisecond, status: 502, failure: SlotUnreachable, message: "answered 502 Bad Gateway"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := newGateway(t, false, tc.answers...)
			budget := tc.budget
			if budget == 0 {
				budget = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), budget)
			defer cancel()
			start := time.Now()
			res := (&HTTPProber{}).Probe(ctx, Request{
				Targets: []Target{g.target("Gateway gateways/edge listener web")}, Path: "/readyz", Token: token, Split: tc.split,
				Successes: tc.successes, Interval: 5 * time.Millisecond, AttemptTimeout: time.Second,
			})
			took := time.Since(start)
			if res.OK != tc.ok {
				t.Fatalf("OK %v, want %v: %+v", res.OK, tc.ok, res)
			}
			if tc.attempts != 0 && res.Attempts != tc.attempts {
				t.Errorf("attempts %d, want %d", res.Attempts, tc.attempts)
			}
			if tc.status != 0 && res.Status != tc.status || tc.status == 0 && !tc.ok && res.Status != 0 {
				t.Errorf("status %d, want %d", res.Status, tc.status)
			}
			if !strings.Contains(res.Message, tc.message) || !strings.Contains(res.Message, "Gateway gateways/edge listener web") {
				t.Errorf("message %q, want it to contain %q and the parent", res.Message, tc.message)
			}
			if res.Failure != tc.failure || tc.ok && res.Failure != "" {
				t.Errorf("failure %q, want %q", res.Failure, tc.failure)
			}
			if res.Latency <= 0 || res.Latency > took {
				t.Errorf("latency %s, the probe took %s", res.Latency, took)
			}
			if took > budget+500*time.Millisecond {
				t.Errorf("the probe took %s with a budget of %s", took, budget)
			}
		})
	}
}

// Every request carries the token, the route's Host and the probe path, on a new connection.
func TestProbeRequest(t *testing.T) {
	g := newGateway(t, false, served)
	res := (&HTTPProber{}).Probe(context.Background(), Request{Targets: []Target{g.target("p")}, Path: "/readyz", Token: token, Successes: 2})
	if !res.OK {
		t.Fatal(res.Message)
	}
	reqs := g.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	for _, r := range reqs {
		if r.Header.Get(Header) != token || r.Host != "shop.example.com" || r.URL.Path != "/readyz" || r.Method != http.MethodGet {
			t.Errorf("request %s %s host %q header %q", r.Method, r.URL.Path, r.Host, r.Header.Get(Header))
		}
	}
	if reqs[0].RemoteAddr == reqs[1].RemoteAddr {
		t.Errorf("both attempts came from %s: the connection was reused", reqs[0].RemoteAddr)
	}
}

// Every target must answer; the message names the one that did not.
func TestProbeEveryTarget(t *testing.T) {
	good, bad := newGateway(t, false, served), newGateway(t, false, noRule)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	res := (&HTTPProber{}).Probe(ctx, Request{
		Targets: []Target{good.target("Gateway a/one listener web"), bad.target("Gateway b/two listener web")},
		Token:   token, Interval: 10 * time.Millisecond,
	})
	if res.OK || !strings.HasPrefix(res.Message, "Gateway b/two listener web:") {
		t.Fatalf("%+v", res)
	}
	if len(good.requests()) != 1 {
		t.Errorf("the first target got %d requests, want 1", len(good.requests()))
	}

	res = (&HTTPProber{}).Probe(context.Background(), Request{Token: token})
	if res.OK || !strings.Contains(res.Message, "no probe target") {
		t.Errorf("without targets: %+v", res)
	}
}

// An HTTPS listener gets the route's hostname as TLS server name.
func TestProbeHTTPSServerName(t *testing.T) {
	g := newGateway(t, true, served)
	res := (&HTTPProber{}).Probe(context.Background(), Request{Targets: []Target{g.target("p")}, Token: token})
	if !res.OK {
		t.Fatal(res.Message)
	}
	if r := g.requests()[0]; r.TLS == nil || r.TLS.ServerName != "shop.example.com" {
		t.Errorf("TLS %+v", r.TLS)
	}
}

// A context without a deadline is bounded by DefaultBudget; a cancelled one stops at once.
func TestProbeCancelled(t *testing.T) {
	g := newGateway(t, false, noRule)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	res := (&HTTPProber{}).Probe(ctx, Request{Targets: []Target{g.target("p")}, Token: token})
	if res.OK || time.Since(start) > time.Second {
		t.Errorf("cancelled probe: %+v after %s", res, time.Since(start))
	}
}

func TestJudge(t *testing.T) {
	marked := http.Header{AnswerHeader: []string{token}}
	other := http.Header{AnswerHeader: []string{"another release"}}
	withSplit := http.Header{AnswerHeader: []string{token}, SplitHeader: []string{"v2"}}
	cases := []struct {
		name   string
		status int
		h      http.Header
		token  string
		split  string
		want   Failure
	}{
		{"200 through the rule", 200, marked, token, "", ""},
		{"401 through the rule: the slot answered", 401, marked, token, "", ""},
		{"404 without the rule: the Gateway has not programmed it", 404, http.Header{}, token, "", RuleNotServed},
		{"200 without the rule: another rule answered", 200, http.Header{}, token, "", RuleNotServed},
		{"200 through an older release's rule", 200, other, token, "", RuleNotServed},
		{"500: unresolved backend", 500, marked, token, "", SlotUnreachable},
		{"502: connection to the endpoint failed", 502, marked, token, "", SlotUnreachable},
		{"503: no endpoint", 503, marked, token, "", SlotUnreachable},
		{"504: endpoint timeout", 504, marked, token, "", SlotUnreachable},
		{"an empty token never matches", 200, http.Header{AnswerHeader: []string{""}}, "", "", RuleNotServed},
		{"the current split", 200, withSplit, token, "v2", ""},
		{"an older split", 200, withSplit, token, "v3", SplitNotServed},
		{"no split version where one is wanted", 200, marked, token, "v3", SplitNotServed},
		{"a split version where none is wanted", 200, withSplit, token, "", ""},
		{"the current split but no endpoint", 503, withSplit, token, "v2", SlotUnreachable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, why := Judge(tc.status, tc.h, tc.token, tc.split)
			if got != tc.want || (got == "") != (why == "") {
				t.Errorf("Judge = %q %q, want %q", got, why, tc.want)
			}
		})
	}
}
