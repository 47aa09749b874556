package load

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// A local server plays two versions behind a switch; the generator's counts follow it.
func TestGeneratorCountsVersionsAndCodes(t *testing.T) {
	var v2 atomic.Bool
	var hits atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		if r.Host != "shop.example.com" || r.Header.Get("X-Canary") != "always" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if v2.Load() {
			w.Header().Set("X-Version", "v2")
			if n%4 == 0 {
				w.WriteHeader(http.StatusInternalServerError)
			}
			return
		}
		w.Header().Set("X-Version", "v1")
	})}}
	srv.Start()
	defer srv.Close()

	g := &Generator{URL: srv.URL + "/", Host: "shop.example.com", Header: http.Header{"X-Canary": {"always"}}, RPS: 200, Workers: 4, Client: srv.Client()}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, func() bool { return g.Snapshot().ByVersion["v1"] >= 50 })
	before := g.Snapshot()
	v2.Store(true)
	switched := time.Now()
	waitFor(t, func() bool { return g.Snapshot().Since(before).ByVersion["v2"] >= 100 })
	c := g.Snapshot()
	d := c.Since(before)
	if d.ByCode[http.StatusBadRequest] != 0 || c.ByCode[http.StatusBadRequest] != 0 {
		t.Errorf("the host or header was not sent: %v", c.ByCode)
	}
	if d.ByCode[http.StatusInternalServerError] == 0 || d.ByCode[http.StatusOK] == 0 {
		t.Errorf("codes after the switch: %v", d.ByCode)
	}
	if last := c.LastSeen["v1"]; last.After(switched.Add(time.Second)) {
		t.Errorf("v1 last seen %s after the switch", last.Sub(switched))
	}
	if got := c.Versions(); len(got) != 2 || got[0] != "v1" || got[1] != "v2" {
		t.Errorf("versions %v", got)
	}
	if s := d.Share("v2"); s < 0.95 {
		t.Errorf("v2 share after the switch %.2f", s)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}
