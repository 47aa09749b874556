package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestErrorRateIsExactAndSpread(t *testing.T) {
	for _, tc := range []struct {
		rate      float64
		n, failed int
		first     int // first failing request, 1-based
	}{
		{rate: 0, n: 100, failed: 0},
		{rate: 0.1, n: 1000, failed: 100, first: 10},
		{rate: 0.25, n: 100, failed: 25, first: 4},
		{rate: 0.5, n: 10, failed: 5, first: 2},
		{rate: 1, n: 7, failed: 7, first: 1},
	} {
		a := &app{errorRate: tc.rate}
		failed, first := 0, 0
		for i := 1; i <= tc.n; i++ {
			if a.fail() {
				failed++
				if first == 0 {
					first = i
				}
			}
		}
		if failed != tc.failed || first != tc.first {
			t.Errorf("rate %g: %d of %d failed, first at %d; want %d, first at %d", tc.rate, failed, tc.n, first, tc.failed, tc.first)
		}
	}
}

func TestResponsesCarryVersion(t *testing.T) {
	t.Setenv("POD_IP", "10.244.0.10")
	t.Setenv("PORT", "9000")
	a, listen, err := parse([]string{"--version=v2", "--fail-ready"})
	if err != nil {
		t.Fatal(err)
	}
	if listen != "10.244.0.10:9000" {
		t.Errorf("listen = %s, want 10.244.0.10:9000", listen)
	}
	rec := httptest.NewRecorder()
	a.routes().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != 200 || rec.Header().Get("X-Version") != "v2" {
		t.Errorf("GET / = %d, X-Version %q", rec.Code, rec.Header().Get("X-Version"))
	}
	rec = httptest.NewRecorder()
	a.routes().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz with --fail-ready = %d, want 503", rec.Code)
	}
}

// Answers say which pod served them and in what state: warming up (--ready-delay), ready, then
// terminating after SIGTERM; /readyz agrees with X-Ready.
func TestResponsesCarryPodState(t *testing.T) {
	t.Setenv("POD_NAME", "shop-a-5d8f7c-x2x4q")
	a, _, err := parse([]string{"--version=v2", "--ready-delay=1h"})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		a.routes().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	for _, step := range []struct {
		name                     string
		set                      func()
		ready, terminating, code string
	}{
		{"warming up", func() {}, "false", "false", "503"},
		{"ready", func() { a.readyAt = time.Now() }, "true", "false", "200"},
		{"terminating", func() { a.terminating.Store(true) }, "false", "true", "503"},
	} {
		step.set()
		rec := get("/")
		h := rec.Header()
		if rec.Code != 200 || h.Get("X-Pod") != "shop-a-5d8f7c-x2x4q" || h.Get("X-Ready") != step.ready || h.Get("X-Terminating") != step.terminating {
			t.Errorf("%s: GET / = %d, X-Pod %q X-Ready %q X-Terminating %q; want ready %s terminating %s",
				step.name, rec.Code, h.Get("X-Pod"), h.Get("X-Ready"), h.Get("X-Terminating"), step.ready, step.terminating)
		}
		if got := get("/readyz").Code; strconv.Itoa(got) != step.code {
			t.Errorf("%s: GET /readyz = %d, want %s", step.name, got, step.code)
		}
	}
	if _, _, err := parse([]string{"--shutdown-delay=-1s"}); err == nil || !strings.Contains(err.Error(), "--shutdown-delay") {
		t.Errorf("a negative --shutdown-delay: %v", err)
	}
}

// After SIGTERM (ctx ends) the app answers for --shutdown-delay, marked terminating, then
// refuses connections.
func TestShutdownDelayKeepsServingMarked(t *testing.T) {
	a, _, err := parse([]string{"--version=v1", "--shutdown-delay=300ms"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, sigterm := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.serveUntil(ctx, ln) }()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 2 * time.Second}
	url := "http://" + ln.Addr().String() + "/"
	// get returns the answer's headers (the body is closed).
	get := func() (http.Header, error) {
		resp, err := hc.Get(url)
		if err != nil {
			return nil, err
		}
		_ = resp.Body.Close()
		return resp.Header, nil
	}
	if h, err := get(); err != nil || h.Get("X-Terminating") != "false" {
		t.Fatalf("before SIGTERM: %v %v", h, err)
	}
	signalled := time.Now()
	sigterm()
	var marked int
	for {
		h, err := get()
		if err != nil {
			break
		}
		if h.Get("X-Terminating") == "true" && h.Get("X-Ready") == "false" {
			marked++
		}
		if time.Since(signalled) > 2*time.Second {
			t.Fatal("still serving 2 s after SIGTERM with --shutdown-delay=300ms")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if took := time.Since(signalled); marked == 0 || took < 300*time.Millisecond {
		t.Errorf("after SIGTERM: %d answers marked terminating, refused after %v", marked, took)
	}
	if err := <-served; err != nil {
		t.Error(err)
	}
}
