package cli_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// watchFixture is a canary at 5% with three gate metrics; shift moves it to the next step at
// 25% (a shorter view: no check yet), writing the route, its acceptance and the status.
func watchFixture(t *testing.T, ns string) (shift func()) {
	f := newFixture(t, ns)
	f.target("checkout", "example.com/checkout:v2")
	successRateGate(f)
	f.slot("checkout", meshv1alpha1.SlotA, revV1, "example.com/checkout:v1", 1, 1, pod{suffix: "1", ready: true})
	f.slot("checkout", meshv1alpha1.SlotB, revV2, "example.com/checkout:v2", 1, 1, pod{suffix: "2", ready: true})
	rt := f.route("checkout", "sluice-split", true, backend{"checkout-a", 95}, backend{"checkout-b", 5})
	msg := func(i, w int) string { return fmt.Sprintf("step %d/7: 0 of 3 passing checks at %d%%", i+1, w) }
	st := canaryAt(2, 5, meshv1alpha1.PhaseProgressing, "Progressing", msg(2, 5))
	st.Analysis = &meshv1alpha1.AnalysisStatus{Passed: 2, Verdict: meshv1alpha1.VerdictPass, LastCheck: at(-10 * time.Second),
		Gates: []meshv1alpha1.GateMetricVerdict{
			{Gate: "success-rate", MetricVerdict: meshv1alpha1.MetricVerdict{Name: "success-rate", Verdict: meshv1alpha1.VerdictPass, Value: "0.999"}},
			{Gate: "success-rate", MetricVerdict: meshv1alpha1.MetricVerdict{Name: "no-worse-than-stable", Verdict: meshv1alpha1.VerdictPass, Value: "0"}},
			{Gate: "p99-latency", MetricVerdict: meshv1alpha1.MetricVerdict{Name: "p99", Verdict: meshv1alpha1.VerdictPass, Value: "0.21"}},
		}}
	ro := f.rollout(&meshv1alpha1.Rollout{ObjectMeta: named("checkout"), Spec: canarySpec("checkout", "success-rate", "p99-latency")}, st)
	return func() {
		rt.Spec.Rules[0].BackendRefs[0].Weight = ptr.To(int32(75))
		rt.Spec.Rules[0].BackendRefs[1].Weight = ptr.To(int32(25))
		if err := env.Client.Update(context.Background(), rt); err != nil {
			t.Fatal(err)
		}
		rt.Status.Parents[0].Conditions[0].ObservedGeneration = rt.Generation
		f.writeStatus(rt)
		next := canaryAt(4, 25, meshv1alpha1.PhaseProgressing, "Progressing", msg(4, 25))
		next.Analysis = &meshv1alpha1.AnalysisStatus{Passed: 2}
		writeStatusRetrying(t, client.ObjectKeyFromObject(ro), *next)
	}
}

// TestGetWatchInTerminal: `get -w` in a real terminal (tmux) draws the view, redraws it in
// place when the route's weight changes (a shorter view leaves nothing of the longer one
// behind), and exits 0 on Ctrl-C.
func TestGetWatchInTerminal(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is not installed: the live view is tested in a real terminal; install it (Debian: apt-get install tmux; .ci/run does)")
	}
	shift := watchFixture(t, "watch-tty")
	dir := t.TempDir()
	exitFile := filepath.Join(dir, "exit")
	script := filepath.Join(dir, "run.sh")
	body := fmt.Sprintf("#!/bin/bash\n%q --kubeconfig %q --now %s get rollout checkout -n watch-tty -w --interval 200ms\necho $? > %q\n",
		bin, kubeconfig, now.Format(time.RFC3339), exitFile)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	socket := fmt.Sprintf("sluice-test-%d", os.Getpid())
	tm := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tmux, append([]string{"-L", socket, "-f", "/dev/null", "-u"}, args...)...)
		cmd.Env = append(os.Environ(), "LANG=C.UTF-8", "LC_ALL=C.UTF-8")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	tm("new-session", "-d", "-s", "w", "-x", "120", "-y", "40", "bash "+script)
	t.Cleanup(func() { _ = exec.Command(tmux, "-L", socket, "kill-server").Run() })

	screen := func() string {
		lines := strings.Split(tm("capture-pane", "-p", "-t", "w"), "\n")
		for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
			lines = lines[:len(lines)-1]
		}
		return strings.Join(lines, "\n") + "\n"
	}
	// settled waits until the screen shows want and stays the same for a few redraws.
	settled := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		prev := ""
		for time.Now().Before(deadline) {
			s := screen()
			if strings.Contains(s, want) && s == prev {
				return s
			}
			prev = s
			time.Sleep(300 * time.Millisecond)
		}
		t.Fatalf("the screen never settled showing %q; it shows:\n%s", want, prev)
		return ""
	}
	golden(t, "watch-tty-1", settled("route weight 5"))
	shift()
	golden(t, "watch-tty-2", settled("route weight 25"))

	tm("send-keys", "-t", "w", "C-c")
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, err := os.ReadFile(exitFile)
		if err == nil && strings.TrimSpace(string(data)) != "" {
			if code := strings.TrimSpace(string(data)); code != "0" {
				t.Errorf("exit code after Ctrl-C: %s, want 0", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the plugin did not exit within 10s of Ctrl-C; the screen:\n%s", screen())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestGetWatchRedrawsOnlyChanges: away from a terminal, -w prints a frame only when the view
// changed: nothing while the cluster stays as it is, one new frame after a change.
func TestGetWatchRedrawsOnlyChanges(t *testing.T) {
	shift := watchFixture(t, "watch-pipe")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := command(ctx, "get", "rollout", "checkout", "-n", "watch-pipe", "-w", "--interval", "100ms")
	out := &syncBuffer{}
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	frames := func() int { return strings.Count(out.String(), "Rollout watch-pipe/checkout") }
	waitFrames := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); frames() < n; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d frames after 20s, want %d:\n%s", frames(), n, out.String())
			}
		}
	}
	waitFrames(1)
	time.Sleep(time.Second) // ten reads of an unchanged cluster
	if n := frames(); n != 1 {
		t.Errorf("%d frames of an unchanged view, want 1:\n%s", n, out.String())
	}
	shift()
	// shift writes the HTTPRoute and then the Rollout, so a read between the two writes shows
	// a third, real view; what must hold is that every frame differs from the one before and
	// that the settled view is printed once.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(lastFrame(out.String()), "step 5/7"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the shifted view never printed after 20s:\n%s", out.String())
		}
	}
	settled := frames()
	time.Sleep(time.Second)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, cmd.Wait()); code != 0 {
		t.Errorf("exit code after SIGINT: %d, want 0", code)
	}
	if n := frames(); n != settled || n < 2 || n > 3 {
		t.Errorf("%d frames (%d when the view settled), want 2 or 3 and none after the view settled:\n%s", n, settled, out.String())
	}
	all := strings.Split(out.String(), "Rollout watch-pipe/checkout")[1:]
	for i := 1; i < len(all); i++ {
		if all[i] == all[i-1] {
			t.Errorf("frame %d repeats frame %d:\n%s", i+1, i, all[i])
		}
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("escape sequences in output that is not a terminal:\n%q", out.String())
	}
}

// lastFrame is the text from the last frame's header on.
func lastFrame(out string) string {
	if i := strings.LastIndex(out, "Rollout watch-pipe/checkout"); i >= 0 {
		return out[i:]
	}
	return ""
}

// syncBuffer is a bytes.Buffer the test reads while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
