package nodeagent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/sluice-mesh/sluice/e2e/netns"
)

// Restart backoff, like the kubelet's CrashLoopBackOff but shorter so tests see recoveries.
const (
	minBackoff    = time.Second
	maxBackoff    = 30 * time.Second
	backoffReset  = 10 * time.Second // a run this long resets the backoff
	maxStopGrace  = 10 * time.Second
	fastProbeTick = 100 * time.Millisecond
	// Status writes that fail (API server away) are retried this often, doubling.
	statusRetryMin = 100 * time.Millisecond
	statusRetryMax = 2 * time.Second
)

// probeClient probes like the kubelet: no keep-alive (every probe is a fresh connection, so a
// dead listener shows at once), no redirects followed, HTTPS without verification.
var probeClient = &http.Client{
	Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet probes don't verify either
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// containerSpec is what admission resolved from the pod's container.
type containerSpec struct {
	argv      []string
	env       []string // the agent's variables; the container's are resolved at each start
	container corev1.Container
}

// podRuntime is one admitted pod: its address and the goroutine that supervises its process.
type podRuntime struct {
	a       *Agent
	key     string
	uid     types.UID
	pod     *corev1.Pod // as admitted; the fields the agent reads don't change afterwards
	ip      string
	spec    containerSpec
	logPath string
	seen    time.Time
	failed  bool // refused at admission: no process, no address
	cancel  context.CancelFunc
	done    chan struct{} // closed when supervise has stopped the process and returned

	// statusDirty asks syncStatus to write the status (set by supervise).
	statusDirty chan struct{}

	mu   sync.Mutex
	proc *netns.Process
	st   runState
}

// runState is what the pod's status is written from.
type runState struct {
	phase          corev1.PodPhase
	startTime      time.Time // first start: the pod's startTime
	containerStart time.Time
	running, ready bool
	final          bool // the container will not run again (restartPolicy)
	restarts       int32
	waiting        string // reason while not running
	waitingMessage string
	last           *corev1.ContainerStateTerminated
}

func (rt *podRuntime) pid() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.proc != nil && rt.proc.Running() {
		return rt.proc.PID()
	}
	return 0
}

func (rt *podRuntime) update(f func(*runState)) {
	rt.mu.Lock()
	f(&rt.st)
	rt.mu.Unlock()
}

// supervise runs the container until ctx ends (pod deleted, agent stopped), restarting it on
// exit as restartPolicy says.
func (rt *podRuntime) supervise(ctx context.Context) {
	defer close(rt.done)
	rt.statusDirty = make(chan struct{}, 1)
	go rt.syncStatus(ctx)
	backoff := minBackoff
	everReady := false
	configErr := "" // the last one reported, so a retry every second doesn't log every second
	for {
		env, err := rt.env(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if msg := err.Error(); msg != configErr {
				configErr = msg
				rt.a.opts.Logf("nodeagent: pod %s: %s: %s (retrying every %v)", rt.key, configErrorReason, msg, configRetry)
				rt.update(func(s *runState) { s.waiting, s.waitingMessage = configErrorReason, msg })
				rt.statusChanged()
			}
			if !sleepCtx(ctx, configRetry) {
				return
			}
			continue
		}
		configErr = ""
		proc, err := rt.a.opts.NS.Start(rt.key, rt.logPath, rt.spec.argv, env)
		started := time.Now()
		if err != nil {
			rt.a.opts.Logf("nodeagent: pod %s: %v", rt.key, err)
			rt.update(func(s *runState) { s.waiting, s.waitingMessage = "StartError", "" })
			rt.statusChanged()
			if !sleepCtx(ctx, backoff) {
				return
			}
			continue
		}
		rt.update(func(s *runState) {
			s.phase, s.running, s.waiting, s.waitingMessage, s.containerStart = corev1.PodRunning, true, "", "", started
			s.ready = rt.spec.container.ReadinessProbe == nil
			if s.startTime.IsZero() {
				s.startTime = started
			}
		})
		rt.mu.Lock()
		rt.proc = proc
		rt.mu.Unlock()
		rt.a.event(rt, PodStarted)
		if rt.spec.container.ReadinessProbe == nil {
			rt.a.event(rt, PodReady)
		}
		rt.statusChanged()
		if rt.spec.container.ReadinessProbe == nil && !everReady {
			everReady = true
			rt.a.recordReady(rt, started)
		}
		rt.probeUntilExit(ctx, proc, started, &everReady)
		if ctx.Err() != nil {
			proc.Stop(rt.grace())
			return
		}
		if final := rt.exited(proc, started); final {
			return
		}
		if time.Since(started) > backoffReset {
			backoff = minBackoff
		}
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// exited records a process exit; final when the container does not run again.
func (rt *podRuntime) exited(proc *netns.Process, started time.Time) (final bool) {
	code := proc.ExitCode()
	term := &corev1.ContainerStateTerminated{
		ExitCode: int32(code), Reason: "Error",
		StartedAt: metav1.NewTime(started), FinishedAt: metav1.Now(),
		ContainerID: fmt.Sprintf("process://%d", proc.PID()),
	}
	if code == 0 {
		term.Reason = "Completed"
	}
	policy := rt.pod.Spec.RestartPolicy
	restart := policy == corev1.RestartPolicyAlways || policy == "" || (policy == corev1.RestartPolicyOnFailure && code != 0)
	rt.a.opts.Logf("nodeagent: pod %s: process exited with %d (restart: %v)", rt.key, code, restart)
	rt.a.event(rt, PodExited)
	rt.update(func(s *runState) {
		s.running, s.ready, s.last = false, false, term
		if !restart {
			s.final = true
			s.phase = corev1.PodSucceeded
			if code != 0 {
				s.phase = corev1.PodFailed
			}
			return
		}
		s.restarts++
		s.waiting, s.waitingMessage = "CrashLoopBackOff", ""
	})
	rt.statusChanged()
	return !restart
}

// grace is the pod's termination grace period, capped so a stuck test process can't hold
// Stop for long.
func (rt *podRuntime) grace() time.Duration {
	g := 30 * time.Second
	if s := rt.pod.Spec.TerminationGracePeriodSeconds; s != nil {
		g = time.Duration(*s) * time.Second
	}
	return min(g, maxStopGrace)
}

// env resolves the environment for one start: POD_IP, the agent's variables, then the
// container's, read from the API server now. An error names what is missing.
func (rt *podRuntime) env(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, envReadTimeout)
	defer cancel()
	ns := rt.pod.Namespace
	vars, skipped, err := resolveEnv(ns, &rt.spec.container, rt.a.apiEnvObjects(ctx, ns), rt.field)
	if err != nil {
		return nil, err
	}
	if len(skipped) > 0 {
		rt.a.opts.Logf("nodeagent: pod %s: envFrom keys skipped, not valid variable names: %s", rt.key, strings.Join(skipped, ", "))
	}
	env := append([]string{"POD_IP=" + rt.ip}, rt.spec.env...)
	return append(env, vars...), nil
}

// field is the value of a fieldRef path that admission accepted.
func (rt *podRuntime) field(path string) string {
	if f, ok := fieldPaths[path]; ok {
		return f(rt)
	}
	return ""
}

// probeUntilExit runs the readiness probe until the process exits or ctx ends. It probes every
// 100 ms until the first success after a start, then every periodSeconds.
func (rt *podRuntime) probeUntilExit(ctx context.Context, proc *netns.Process, started time.Time, everReady *bool) {
	p := rt.spec.container.ReadinessProbe
	if p == nil {
		select {
		case <-ctx.Done():
		case <-proc.Done():
		}
		return
	}
	if !sleepOrExit(ctx, proc, time.Duration(p.InitialDelaySeconds)*time.Second) {
		return
	}
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	failThreshold, successThreshold := max(p.FailureThreshold, 1), max(p.SuccessThreshold, 1)
	var ready, readySinceStart bool
	var successes, failures int32
	for {
		ok := rt.probe(ctx, p)
		if ok {
			successes, failures = successes+1, 0
		} else {
			successes, failures = 0, failures+1
		}
		switch {
		case !ready && ok && successes >= successThreshold:
			ready, readySinceStart = true, true
			rt.update(func(s *runState) { s.ready = true })
			rt.a.event(rt, PodReady)
			rt.statusChanged()
			if !*everReady {
				*everReady = true
				rt.a.recordReady(rt, started)
			}
		case ready && !ok && failures >= failThreshold:
			ready = false
			rt.update(func(s *runState) { s.ready = false })
			rt.a.event(rt, PodUnready)
			rt.statusChanged()
		}
		interval := period
		if !readySinceStart {
			interval = fastProbeTick
		}
		if !sleepOrExit(ctx, proc, interval) {
			return
		}
	}
}

// probe runs one readiness check against the pod's address.
func (rt *podRuntime) probe(ctx context.Context, p *corev1.Probe) bool {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if t := p.TCPSocket; t != nil {
		host := rt.ip
		if t.Host != "" {
			host = t.Host
		}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, rt.port(t.Port)))
		if err != nil {
			return false
		}
		_ = conn.Close()
		return true
	}
	g := p.HTTPGet
	host, scheme, path := rt.ip, "http", g.Path
	if g.Host != "" {
		host = g.Host
	}
	if g.Scheme != "" {
		scheme = strings.ToLower(string(g.Scheme))
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, rt.port(g.Port))+path, nil)
	if err != nil {
		return false
	}
	req.Header.Set("User-Agent", "sluice-e2e-nodeagent")
	for _, h := range g.HTTPHeaders {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 400
}

// port resolves a probe port, numeric or named after one of the container's ports.
func (rt *podRuntime) port(p intstr.IntOrString) string {
	if p.Type == intstr.Int {
		return strconv.Itoa(p.IntValue())
	}
	for _, cp := range rt.spec.container.Ports {
		if cp.Name == p.StrVal {
			return strconv.Itoa(int(cp.ContainerPort))
		}
	}
	return p.StrVal // numeric string, or a name that fails the probe visibly
}

// statusChanged asks for the pod's status to be written; it never waits. Like the kubelet's
// status manager, writes are off the container's lifecycle: a probe must go on (and the pod
// turn ready) while the API server is away and a write retries.
func (rt *podRuntime) statusChanged() {
	select {
	case rt.statusDirty <- struct{}{}:
	default: // a write is already asked for; it writes the latest state
	}
}

// syncStatus writes the status each time it is asked to, until ctx ends.
func (rt *podRuntime) syncStatus(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-rt.statusDirty:
			rt.writeStatus(ctx)
		}
	}
}

// writeStatus writes the pod's status from the runtime state, retrying until it is written or
// ctx ends: like the kubelet, a pod's status must reach the API server also when the server
// was briefly away (else a pod would stay not Ready for good after a restart of it).
func (rt *podRuntime) writeStatus(ctx context.Context) {
	backoff := statusRetryMin
	for {
		err := rt.writeStatusOnce(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		rt.a.opts.Logf("nodeagent: writing status of pod %s: %v (retrying in %v)", rt.key, err, backoff)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, statusRetryMax)
	}
}

// writeStatusOnce writes the pod's status from the runtime state as it is now.
func (rt *podRuntime) writeStatusOnce(ctx context.Context) error {
	rt.mu.Lock()
	s := rt.st
	pid := 0
	if rt.proc != nil {
		pid = rt.proc.PID()
	}
	rt.mu.Unlock()
	a, c := rt.a, rt.spec.container
	err := a.updateStatus(ctx, rt.pod.Namespace, rt.pod.Name, rt.uid, func(st *corev1.PodStatus) {
		now := metav1.Now()
		st.Phase, st.Reason, st.Message = s.phase, "", ""
		st.HostIP, st.HostIPs = a.opts.NodeIP, []corev1.HostIP{{IP: a.opts.NodeIP}}
		st.PodIP, st.PodIPs = rt.ip, []corev1.PodIP{{IP: rt.ip}}
		if !s.startTime.IsZero() {
			st.StartTime = ptr.To(metav1.NewTime(s.startTime))
		}
		cs := corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "sluice-e2e://" + rt.spec.argv[0],
			ContainerID: fmt.Sprintf("process://%d", pid),
			Ready:       s.ready, Started: ptr.To(s.running), RestartCount: s.restarts,
		}
		switch {
		case s.running:
			cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(s.containerStart)}
		case s.final:
			cs.State.Terminated = s.last
		default:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: s.waiting, Message: s.waitingMessage}
		}
		if s.last != nil && !s.final {
			cs.LastTerminationState.Terminated = s.last
		}
		st.ContainerStatuses = []corev1.ContainerStatus{cs}
		ready, reason := corev1.ConditionFalse, "ContainersNotReady"
		if s.ready {
			ready, reason = corev1.ConditionTrue, ""
		}
		setPodCondition(st, corev1.PodReadyToStartContainers, corev1.ConditionTrue, "", now)
		setPodCondition(st, corev1.PodInitialized, corev1.ConditionTrue, "", now)
		setPodCondition(st, corev1.ContainersReady, ready, reason, now)
		setPodCondition(st, corev1.PodReady, ready, reason, now)
	})
	return err
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// sleepOrExit waits d; false if the process exited or ctx ended meanwhile.
func sleepOrExit(ctx context.Context, proc *netns.Process, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-proc.Done():
		return false
	case <-time.After(d):
		return true
	}
}
