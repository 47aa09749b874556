package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a program started inside a namespace with its output appended to a log file.
type Process struct {
	Name    string
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
	stop sync.Once
}

// Start runs `ip netns exec <ns> argv...` with exactly env as its environment (callers decide
// what leaks in), stdout and stderr appended to logPath. `ip netns exec` execs the program
// directly, so the process we hold is the program itself and signals reach it.
func (n *Namespace) Start(name, logPath string, argv, env []string) (*Process, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("process %s: no program given", name)
	}
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	// A header per start, so restarts of one pod are readable in one file.
	_, _ = fmt.Fprintf(log, "=== %s start: %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name}, argv...)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a terminal's Ctrl-C reaches the stack, which stops its processes
		// in order, instead of killing the API server under the controllers.
		Setpgid: true,
		// If the test binary dies without cleaning up (SIGKILL, panic in another goroutine),
		// the kernel kills the process instead of leaving it running in the namespace.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		_, _ = fmt.Fprintf(log, "=== %s exit: %v\n", time.Now().Format(time.RFC3339Nano), exitText(err))
		_ = log.Close()
		p.err = err
		close(p.done)
	}()
	return p, nil
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// PID is the program's process id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the program has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the program's exit error once Done is closed (nil for status 0).
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// ExitCode is the exit status once Done is closed, 128+signal when killed by a signal (as a
// shell or a container runtime reports it), -1 while running.
func (p *Process) ExitCode() int {
	select {
	case <-p.done:
	default:
		return -1
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return p.cmd.ProcessState.ExitCode()
}

// Running reports whether the program has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM to the process group, waits up to grace, then SIGKILLs it, and returns once
// the program has exited. Safe to call more than once and after the program exited.
func (p *Process) Stop(grace time.Duration) {
	p.stop.Do(func() {
		if !p.Running() {
			return
		}
		pgid := -p.cmd.Process.Pid
		if err := syscall.Kill(pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	<-p.done
}
