package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// managerProc is the real manager binary, run against the harness's API server.
type managerProc struct {
	cmd       *exec.Cmd
	started   time.Time
	metrics   string // base URL of /metrics
	probes    string // base URL of /readyz
	pprof     string // base URL of /debug/pprof, empty when the manager has no pprof flag
	logPath   string
	exited    chan struct{}
	exitErr   error
	httpc     *http.Client
	logHandle *os.File
}

// buildManager builds the repository's manager into out (go's build cache makes a rebuild of
// unchanged code a link only).
func buildManager(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, ".")
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build -o %s . : %w\n%s", out, err, b)
	}
	return nil
}

// source says what the repository's manager is built from: the commit, and whether the
// working tree has changes outside this harness.
func source() string {
	root := testenv.RepoRoot()
	head, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown commit"
	}
	s := "commit " + strings.TrimSpace(string(head))
	if dirty, _ := exec.Command("git", "-C", root, "status", "--porcelain", "--", ".", ":!hack/scale").Output(); len(dirty) > 0 {
		s += " with uncommitted changes"
	}
	return s
}

// startManager runs the manager without webhooks, admission policies or leader election, with
// plain-HTTP metrics on loopback, logging into dir.
func startManager(bin, kubeconfig, dir string, extra []string, wantPprof bool) (*managerProc, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	m := &managerProc{
		metrics: fmt.Sprintf("http://127.0.0.1:%d", ports[0]), probes: fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		logPath: filepath.Join(dir, "manager.log"), exited: make(chan struct{}), httpc: &http.Client{Timeout: 2 * time.Minute},
	}
	args := []string{"--webhooks=false", "--admission-policies=false", "--leader-elect=false",
		"--metrics-bind-address=" + m.metrics[len("http://"):], "--metrics-secure=false", "--health-probe-bind-address=" + m.probes[len("http://"):]}
	if wantPprof && hasFlag(bin, "pprof-bind-address") {
		m.pprof = fmt.Sprintf("http://127.0.0.1:%d", ports[2])
		args = append(args, "--pprof-bind-address="+m.pprof[len("http://"):])
	}
	args = append(args, extra...)
	if m.logHandle, err = os.Create(m.logPath); err != nil {
		return nil, err
	}
	m.cmd = exec.Command(bin, args...)
	m.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	m.cmd.Stdout, m.cmd.Stderr = m.logHandle, m.logHandle
	m.started = time.Now()
	if err := m.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		m.exitErr = m.cmd.Wait()
		close(m.exited)
	}()
	return m, nil
}

// hasFlag says whether the binary's usage lists the flag.
func hasFlag(bin, name string) bool {
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	return bytes.Contains(out, []byte("-"+name))
}

// exitError is why the manager exited, with the end of its log.
func (m *managerProc) exitError() error {
	b, _ := os.ReadFile(m.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return fmt.Errorf("%w; end of %s:\n%s", m.exitErr, m.logPath, b)
}

// stop sends SIGTERM and waits up to 15 s before killing.
func (m *managerProc) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
	_ = m.logHandle.Close()
}

// waitReady polls /readyz (every 20 ms: start-up to Ready is one of the figures).
func (m *managerProc) waitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-m.exited:
			return 0, fmt.Errorf("the manager exited: %w", m.exitError())
		case <-ctx.Done():
			return 0, ctx.Err()
		default:
		}
		if resp, err := http.Get(m.probes + "/readyz"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(m.started), nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("the manager was not ready after %s", timeout)
}

// sample is the manager's state at one moment.
type sample struct {
	at       time.Time
	cpu      float64 // seconds of CPU used since start (user + system)
	rss, hwm float64 // bytes: resident now, and the peak
	// rssAnon is the resident memory the process allocated (heap, stacks, runtime); the rest
	// of rss is file pages (the binary's code and data), which the kernel can drop and share.
	rssAnon  float64
	families map[string]*dto.MetricFamily
	// CPU seconds of the other processes sharing the machine: kube-apiserver, etcd, the harness.
	others map[string]float64
}

// neighbours are the processes whose CPU is sampled beside the manager's.
var neighbours = []string{"kube-apiserver", "etcd"}

func (m *managerProc) sample() (sample, error) {
	s := sample{at: time.Now()}
	var err error
	if s.cpu, err = cpuSeconds(m.cmd.Process.Pid); err != nil {
		return s, err
	}
	if s.rss, s.hwm, s.rssAnon, err = residentBytes(m.cmd.Process.Pid); err != nil {
		return s, err
	}
	s.others = map[string]float64{}
	for name, pid := range childPIDs(neighbours) {
		s.others[name], _ = cpuSeconds(pid)
	}
	s.others["harness"], _ = cpuSeconds(os.Getpid())
	resp, err := m.httpc.Get(m.metrics + "/metrics")
	if err != nil {
		return s, err
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	s.families, err = parser.TextToMetricFamilies(resp.Body)
	return s, err
}

// userHZ is the kernel's clock tick for /proc times (USER_HZ, 100 on every Linux Go supports
// here; Go has no sysconf).
const userHZ = 100

// cpuSeconds reads utime + stime from /proc/PID/stat (fields 14 and 15; the command name in
// field 2 may contain spaces, so count from the closing parenthesis).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / userHZ, errors.Join(err1, err2)
}

// childPIDs finds this process's children with the given command names (envtest starts
// kube-apiserver and etcd without telling their PIDs).
func childPIDs(names []string) map[string]int {
	out := map[string]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range dirs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || closing < open {
			continue
		}
		f := strings.Fields(string(b[closing+1:]))
		comm := string(b[open+1 : closing])
		if len(f) > 1 && f[1] == strconv.Itoa(os.Getpid()) && slices.Contains(names, comm) {
			out[comm], _ = strconv.Atoi(filepath.Base(filepath.Dir(path)))
		}
	}
	return out
}

// residentBytes reads VmRSS, VmHWM and RssAnon from /proc/PID/status.
func residentBytes(pid int) (rss, hwm, anon float64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	fields := map[string]*float64{"VmRSS:": &rss, "VmHWM:": &hwm, "RssAnon:": &anon}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" || fields[f[0]] == nil {
			continue
		}
		kb, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return 0, 0, 0, err
		}
		*fields[f[0]] = kb * 1024
	}
	return rss, hwm, anon, nil
}

// profile saves /debug/pprof/<what> into dir/<file>.
func (m *managerProc) profile(what, dir, file string) error {
	resp, err := m.httpc.Get(m.pprof + "/debug/pprof/" + what)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof %s: %s", what, resp.Status)
	}
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		return err
	}
	if _, err = io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// freePorts reserves n loopback ports (closed again for the manager to bind).
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
