package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PrometheusBinary is the Debian package's binary; tests never use a Prometheus service.
const PrometheusBinary = "/usr/bin/prometheus"

// PrometheusInstallHint is printed when the binary is missing.
const PrometheusInstallHint = "apt-get install -y --no-install-recommends prometheus"

// Prometheus is a real Prometheus started by a test, listening on 127.0.0.1 only.
type Prometheus struct {
	tb   testing.TB
	addr string // 127.0.0.1:port, kept across restarts
	args []string
	log  string // path of the log file, appended to across restarts

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// StartPrometheus starts Prometheus with a 1 s scrape and evaluation interval and one scrape
// job per target (host:port, scraped at /metrics), waits until it is ready, and stops it when
// the test ends. Its log is printed if the test failed.
func StartPrometheus(tb testing.TB, scrapeTargets ...string) *Prometheus {
	tb.Helper()
	if _, err := os.Stat(PrometheusBinary); err != nil {
		tb.Fatalf("%s is missing; install it with: %s", PrometheusBinary, PrometheusInstallHint)
	}
	dir := tb.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(prometheusConfig(scrapeTargets)), 0o600); err != nil {
		tb.Fatal(err)
	}
	port, err := FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	p := &Prometheus{tb: tb, addr: fmt.Sprintf("127.0.0.1:%d", port), log: filepath.Join(dir, "prometheus.log")}
	p.args = []string{
		"--config.file=" + cfg,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + p.addr,
		"--log.level=warn",
		// Prometheus 2.42 has no update check or telemetry; with no alerting, remote
		// write/read or service discovery in the config it only ever connects to the
		// scrape targets, all of them on 127.0.0.1.
		"--storage.tsdb.retention.time=1h",
	}
	// Registered before the first start, so a failing Start still stops the process and
	// prints the log (t.Cleanup runs even after Fatal).
	tb.Cleanup(func() {
		p.Stop()
		if tb.Failed() {
			if b, err := os.ReadFile(p.log); err == nil {
				tb.Logf("prometheus log (%s):\n%s", p.log, b)
			}
		}
	})
	p.Start()
	return p
}

// URL is Prometheus's base URL, the same across restarts.
func (p *Prometheus) URL() string { return "http://" + p.addr }

// Addr is host:port.
func (p *Prometheus) Addr() string { return p.addr }

// Start starts Prometheus on the same port and data dir as before and waits until it is
// ready. Starting a running Prometheus is a test bug.
func (p *Prometheus) Start() {
	p.tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		p.tb.Fatal("testenv: Prometheus is already running")
	}
	logFile, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.tb.Fatal(err)
	}
	_, _ = fmt.Fprintf(logFile, "--- %s starting %s %s\n", time.Now().Format(time.RFC3339Nano), PrometheusBinary, strings.Join(p.args, " "))
	cmd := exec.Command(PrometheusBinary, p.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies without running its cleanups (a panic in another goroutine,
	// go test's timeout), Prometheus must not outlive it holding the port.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		p.tb.Fatalf("starting prometheus: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logFile.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	if err := waitReady(p.URL(), done, 30*time.Second); err != nil {
		p.tb.Fatalf("prometheus on %s: %v (log: %s)", p.addr, err, p.log)
	}
}

// Stop stops Prometheus (SIGTERM, then SIGKILL after 10 s) and waits for it to exit. Stopping
// a stopped Prometheus does nothing.
func (p *Prometheus) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd, p.done = nil, nil
}

// waitReady polls /-/ready until it answers 200, the process exits, or the deadline passes.
func waitReady(base string, exited <-chan struct{}, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/-/ready", nil)
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("/-/ready: %s", resp.Status)
		}
		last = err
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", timeout, last)
		case <-tick.C:
		}
	}
}

// prometheusConfig scrapes every target every second; evaluation is 1 s too so recording
// rules, if a test adds some, keep up.
func prometheusConfig(targets []string) string {
	var b bytes.Buffer
	b.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for i, t := range targets {
		fmt.Fprintf(&b, "  - job_name: target-%d\n    static_configs:\n      - targets: [%q]\n", i, t)
	}
	return b.String()
}

// FreePort asks the kernel for a free loopback port. The port is free again when this
// returns; the small window before a server binds it is acceptable in tests and benchmarks.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
