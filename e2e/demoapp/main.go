// Command demoapp is the workload of Sluice's e2e stack: the node agent runs it for pods whose
// image is sluice.dev/demo-app:<tag>. It answers with its version, and can be made "bad" with
// one argument in a Deployment (--error-rate, --latency, --fail-ready), so a test or a demo
// rolls out a failing version without building anything.
//
//	GET /         200 {"version": "...", "pod": "..."}, header X-Version (500 for the
//	              --error-rate share of requests, spread evenly: rate 0.1 fails every 10th)
//	GET /healthz  200 always
//	GET /readyz   200, or 503 with --fail-ready, during --ready-delay after the start, and once
//	              SIGTERM arrived
//
// Answers to / also say who answered and in what state, so a test can prove where traffic
// went: X-Pod (the pod's name), X-Ready ("true" when /readyz would have answered 200 at the
// moment the request arrived) and X-Terminating ("true" when SIGTERM had arrived before it).
//
// On SIGTERM the app keeps serving for --shutdown-delay (default 0: it stops listening at
// once), as an app with a preStop pause does; requests that still reach it then are answered
// and marked X-Terminating instead of being refused, so they can be counted.
//
// Every flag also reads an environment variable (flag wins): VERSION (else IMAGE_TAG, which the
// node agent sets from the image tag, else "dev"), ERROR_RATE, LATENCY, FAIL_READY,
// READY_DELAY, SHUTDOWN_DELAY. --listen defaults to :$PORT (the container port the agent
// passes; else :8080) on $POD_IP: all pods share one network namespace, so each must bind its
// own address.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type app struct {
	version   string
	pod       string
	errorRate float64
	latency   time.Duration
	failReady bool
	// readyAt is when /readyz starts answering 200 (the start plus --ready-delay).
	readyAt       time.Time
	shutdownDelay time.Duration
	terminating   atomic.Bool // SIGTERM arrived

	mu       sync.Mutex
	requests uint64
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	a, listen, err := parse(os.Args[1:])
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("demo-app %s (pod %q) listening on %s: error-rate=%g latency=%v fail-ready=%v ready-delay=%v shutdown-delay=%v",
		a.version, a.pod, ln.Addr(), a.errorRate, a.latency, a.failReady, time.Until(a.readyAt).Round(time.Millisecond), a.shutdownDelay)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := a.serveUntil(ctx, ln); err != nil {
		stop()
		log.Fatal(err) //nolint:gocritic // stop() ran above
	}
	log.Print("demo-app stopped")
}

// serveUntil serves on ln until ctx ends (SIGTERM), then --shutdown-delay longer, marked
// terminating, then stops listening and lets the requests in flight finish.
func (a *app) serveUntil(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		a.terminating.Store(true)
		if a.shutdownDelay > 0 {
			log.Printf("demo-app: terminating; serving %v more", a.shutdownDelay)
			time.Sleep(a.shutdownDelay)
		}
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func parse(args []string) (*app, string, error) {
	fs := flag.NewFlagSet("demo-app", flag.ContinueOnError)
	version := fs.String("version", envOr("VERSION", envOr("IMAGE_TAG", "dev")), "version shown in responses")
	listen := fs.String("listen", ":"+envOr("PORT", "8080"), "listen address; an empty host means $POD_IP")
	rate := fs.Float64("error-rate", envFloat("ERROR_RATE"), "share of / requests answered 500, 0..1")
	latency := fs.Duration("latency", envDuration("LATENCY"), "delay added to / requests")
	failReady := fs.Bool("fail-ready", os.Getenv("FAIL_READY") == "true", "answer 503 on /readyz")
	readyDelay := fs.Duration("ready-delay", envDuration("READY_DELAY"), "answer 503 on /readyz for this long after the start (a warm-up)")
	shutdownDelay := fs.Duration("shutdown-delay", envDuration("SHUTDOWN_DELAY"), "keep serving this long after SIGTERM")
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	if *readyDelay < 0 || *shutdownDelay < 0 {
		return nil, "", fmt.Errorf("--ready-delay %v, --shutdown-delay %v: must not be negative", *readyDelay, *shutdownDelay)
	}
	if *rate < 0 || *rate > 1 {
		return nil, "", fmt.Errorf("--error-rate %g: must be between 0 and 1", *rate)
	}
	host, port, err := net.SplitHostPort(*listen)
	if err != nil {
		return nil, "", fmt.Errorf("--listen %q: %w", *listen, err)
	}
	if host == "" {
		host = os.Getenv("POD_IP")
	}
	pod := os.Getenv("POD_NAME")
	if pod == "" {
		pod, _ = os.Hostname()
	}
	a := &app{version: *version, pod: pod, errorRate: *rate, latency: *latency, failReady: *failReady,
		readyAt: time.Now().Add(*readyDelay), shutdownDelay: *shutdownDelay}
	return a, net.JoinHostPort(host, port), nil
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if why := a.notReady(); why != "" {
			http.Error(w, "not ready ("+why+")", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", a.serve)
	return mux
}

// notReady says why /readyz fails now, "" when it answers 200.
func (a *app) notReady() string {
	switch {
	case a.failReady:
		return "--fail-ready"
	case a.terminating.Load():
		return "terminating"
	case time.Now().Before(a.readyAt):
		return "--ready-delay"
	}
	return ""
}

func (a *app) serve(w http.ResponseWriter, r *http.Request) {
	// The state when the request arrived, before any --latency.
	ready, terminating := a.notReady() == "", a.terminating.Load()
	w.Header().Set("X-Pod", a.pod)
	w.Header().Set("X-Ready", strconv.FormatBool(ready))
	w.Header().Set("X-Terminating", strconv.FormatBool(terminating))
	if a.latency > 0 {
		select {
		case <-time.After(a.latency):
		case <-r.Context().Done():
			return
		}
	}
	code := http.StatusOK
	if a.fail() {
		code = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Version", a.version)
	w.WriteHeader(code)
	body := map[string]string{"version": a.version, "pod": a.pod}
	if code != http.StatusOK {
		body["error"] = "injected by --error-rate"
	}
	_ = json.NewEncoder(w).Encode(body)
}

// fail decides deterministically: request n fails when floor(n*rate) steps up, which spreads
// failures evenly (rate 0.25 fails requests 4, 8, 12, ...) and gives exactly the rate's share
// of any long run, so tests can assert on counts.
func (a *app) fail() bool {
	if a.errorRate <= 0 {
		return false
	}
	a.mu.Lock()
	a.requests++
	n := a.requests
	a.mu.Unlock()
	return uint64(float64(n)*a.errorRate) > uint64(float64(n-1)*a.errorRate)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envFloat(key string) float64 {
	f, _ := strconv.ParseFloat(os.Getenv(key), 64)
	return f
}

func envDuration(key string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(key))
	return d
}
