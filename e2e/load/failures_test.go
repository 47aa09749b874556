package load

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// A failed answer is kept with its status, body and proxy; a transport error with its error.
func TestGeneratorKeepsFailures(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			w.Header().Set("Server", "gateway")
			http.Error(w, "no available server", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Version", "v1")
	}))
	defer srv.Close()

	g := &Generator{URL: srv.URL + "/", RPS: 200, Workers: 2, Client: srv.Client()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, func() bool { return len(g.Snapshot().Failures) >= 3 })
	failing.Store(false)
	before := g.Snapshot()
	waitFor(t, func() bool { return g.Snapshot().Since(before).ByVersion["v1"] >= 20 })
	c := g.Snapshot()
	f := c.Failures[0]
	if f.Code != http.StatusServiceUnavailable || f.Body != "no available server" || f.Server != "gateway" || f.Version != "" || f.End.Before(f.Start) {
		t.Errorf("failure %+v", f)
	}
	if len(c.Failures) != c.ByCode[http.StatusServiceUnavailable] {
		t.Errorf("%d failures kept, %d counted", len(c.Failures), c.ByCode[http.StatusServiceUnavailable])
	}
	// At most the requests in flight at the switch fail after it.
	if d := c.Since(before); len(d.Failures) > 2 {
		t.Errorf("failures after the switch: %v", d.Failures)
	}

	srv.Close()
	closed := g.Snapshot()
	waitFor(t, func() bool { return g.Snapshot().Since(closed).Errors >= 1 })
	d := g.Snapshot().Since(closed)
	if len(d.Failures) == 0 || d.Failures[len(d.Failures)-1].Code != 0 || d.Failures[len(d.Failures)-1].Err == "" {
		t.Errorf("transport errors are not kept: %v", d.Failures)
	}
}
