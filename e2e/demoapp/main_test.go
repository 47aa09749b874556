package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
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
