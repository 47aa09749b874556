package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// With Keep and IDHeader every request is recorded once, with a unique id the server saw, the
// app's state headers, and a cause for each kind of failure.
func TestResultsRecordEveryRequestWithItsCause(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		mu.Lock()
		dup := seen[id]
		seen[id] = true
		n := len(seen)
		mu.Unlock()
		if id == "" || dup {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch n % 3 {
		case 0: // the Gateway's own answer: no X-Version
			w.WriteHeader(http.StatusBadGateway)
		case 1:
			w.Header().Set("X-Version", "v2")
			w.Header().Set("X-Pod", "shop-b-1")
			w.Header().Set("X-Ready", "true")
			w.Header().Set("X-Terminating", "false")
			w.WriteHeader(http.StatusInternalServerError)
		default:
			w.Header().Set("X-Version", "v1")
			w.Header().Set("X-Pod", "shop-a-1")
			w.Header().Set("X-Ready", "false")
			w.Header().Set("X-Terminating", "true")
		}
	})}}
	srv.Start()
	defer srv.Close()

	g := &Generator{URL: srv.URL + "/", RPS: 200, Workers: 4, Client: srv.Client(), Keep: true, IDHeader: "X-Request-Id"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	waitFor(t, func() bool { return len(g.Results()) >= 60 })
	cancel()
	<-done

	byCause := map[string]int{}
	ids := map[string]bool{}
	for _, r := range g.Results() {
		byCause[r.Cause()]++
		if ids[r.ID] || !strings.HasPrefix(r.ID, idPrefix) {
			t.Errorf("id %q repeated or without the prefix %q", r.ID, idPrefix)
		}
		ids[r.ID] = true
		if r.End.Before(r.Start) {
			t.Errorf("request %s ended before it started", r.ID)
		}
		switch r.Cause() {
		case CauseAppError:
			if r.App == nil || r.App.Pod != "shop-b-1" || !r.App.Ready || r.App.Terminating {
				t.Errorf("app error recorded as %+v", r.App)
			}
		case CauseOK:
			if r.App == nil || r.App.Version != "v1" || r.App.Ready || !r.App.Terminating {
				t.Errorf("answer recorded as %+v", r.App)
			}
		}
	}
	if c := g.Snapshot(); c.Total != len(g.Results()) {
		t.Errorf("%d counted, %d recorded", c.Total, len(g.Results()))
	}
	if byCause[CauseOK] == 0 || byCause[CauseAppError] == 0 || byCause["gateway 502"] == 0 || len(byCause) != 3 {
		t.Errorf("causes %v, want ok, app 5xx and gateway 502 only", byCause)
	}
}

func TestCauseOfTransportErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), CauseRefused},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), CauseReset},
		{fmt.Errorf("Get: %w", io.EOF), CauseReset},
		{fmt.Errorf("Get: %w", context.DeadlineExceeded), CauseTimeout},
		{errors.New("something else"), CauseTransport},
	} {
		if got := (Result{Err: tc.err}).Cause(); got != tc.want {
			t.Errorf("%v: cause %q, want %q", tc.err, got, tc.want)
		}
	}
	// A real refused connection, as a killed Gateway gives.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + addr + "/")
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("a closed port answered")
	}
	if got := (Result{Err: err}).Cause(); got != CauseRefused {
		t.Errorf("%v: cause %q, want %q", err, got, CauseRefused)
	}
}
