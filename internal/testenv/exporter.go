package testenv

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TraefikService is the `service` label Traefik's Kubernetes Gateway provider gives a
// backend of an HTTPRoute rule (format verified in design/traefik.md): route shop/checkout,
// Gateway gateways/edge, entrypoint web, rule 0 with its match hash, backend Service port 80.
func TraefikService(ns, svc string) string {
	return "httproute-shop-checkout-gw-gateways-edge-ep-web-0-abc123-svc-" + ns + "-" + svc + "-80@kubernetesgateway"
}

// Exporter plays Traefik's metrics endpoint: a background generator keeps adding requests
// per Service at a steady rate, because rate() needs counters that keep increasing.
type Exporter struct {
	srv   *httptest.Server
	reqs  *prometheus.CounterVec
	dur   *prometheus.HistogramVec
	mu    sync.Mutex
	flows map[string]*flow // by Traefik service label
	stop  chan struct{}
	done  chan struct{}
}

// flow is one Service's synthetic traffic.
type flow struct {
	rps      float64
	errRatio float64
	latency  time.Duration
	reqCarry float64 // fractions of requests and errors carried to the next tick, so low
	errCarry float64 // rates and ratios come out exact over the window
}

const exporterTick = 100 * time.Millisecond

// StartExporter serves the metrics on 127.0.0.1 until the test ends.
func StartExporter(tb testing.TB) *Exporter {
	tb.Helper()
	reg := prometheus.NewRegistry()
	e := &Exporter{
		reqs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "traefik_service_requests_total",
			Help: "How many HTTP requests processed on a service, partitioned by status code, protocol, and method.",
		}, []string{"code", "method", "protocol", "service"}),
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "traefik_service_request_duration_seconds",
			Help: "How long it took to process the request on a service, partitioned by status code, protocol, and method.",
			// The explicit buckets the e2e Traefik runs with (--metrics.prometheus.buckets).
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, []string{"code", "method", "protocol", "service"}),
		flows: map[string]*flow{},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	reg.MustRegister(e.reqs, e.dur)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	e.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}}
	e.srv.Start()
	go e.run()
	tb.Cleanup(func() {
		close(e.stop)
		<-e.done
		e.srv.Close()
	})
	return e
}

// Addr is the host:port Prometheus scrapes.
func (e *Exporter) Addr() string { return e.srv.Listener.Addr().String() }

// Set makes Service svc of namespace ns receive rps requests per second, errRatio of them
// answered 500, each taking latency. Its series exist from now on, with zero traffic too (a
// rate over them is then 0 and a success ratio NaN).
func (e *Exporter) Set(ns, svc string, rps, errRatio float64, latency time.Duration) {
	label := TraefikService(ns, svc)
	e.mu.Lock()
	defer e.mu.Unlock()
	f := e.flows[label]
	if f == nil {
		f = &flow{}
		e.flows[label] = f
		for _, code := range []string{"200", "500"} {
			e.reqs.WithLabelValues(code, "GET", "http", label).Add(0)
			e.dur.WithLabelValues(code, "GET", "http", label)
		}
	}
	f.rps, f.errRatio, f.latency = rps, errRatio, latency
}

func (e *Exporter) run() {
	defer close(e.done)
	tick := time.NewTicker(exporterTick)
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
			e.tick()
		}
	}
}

func (e *Exporter) tick() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for label, f := range e.flows {
		f.reqCarry += f.rps * exporterTick.Seconds()
		n := int(f.reqCarry)
		f.reqCarry -= float64(n)
		f.errCarry += float64(n) * f.errRatio
		errs := int(f.errCarry)
		f.errCarry -= float64(errs)
		e.serve(label, n-errs, "200", f.latency)
		e.serve(label, errs, "500", f.latency)
	}
}

func (e *Exporter) serve(label string, n int, code string, latency time.Duration) {
	if n <= 0 {
		return
	}
	e.reqs.WithLabelValues(code, "GET", "http", label).Add(float64(n))
	h := e.dur.WithLabelValues(code, "GET", "http", label)
	for range n {
		h.Observe(latency.Seconds())
	}
}
