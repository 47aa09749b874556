package stack

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dumpLines is how much of each log DumpLogs prints.
const dumpLines = 40

// StartForTest starts a stack for one test and registers its cleanup: when the test failed, the
// tail of every log; then Stop, and where the full logs are kept; a passing test's default log
// folder is removed. A stack that can't start fails the test with the reason (missing
// binaries, not root, no iproute2), never skips it.
func StartForTest(t testing.TB, opts Options) *Stack {
	t.Helper()
	ownLogs := opts.LogDir == ""
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	// The lock may be held by another package's whole e2e run: wait for it as long as the
	// test may run; Start bounds the start itself.
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, set := d.Deadline(); set {
			ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
		}
	}
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("starting the e2e stack: %v", err)
	}
	t.Cleanup(func() {
		// Logs first: their tails then show the state at the failure, not the shutdown.
		failed := t.Failed()
		if failed {
			s.DumpLogs(t)
		}
		if err := s.Stop(); err != nil {
			t.Errorf("stopping the e2e stack: %v", err)
		}
		if failed || t.Failed() {
			t.Logf("full logs kept in %s", s.LogDir)
		} else if ownLogs {
			_ = os.RemoveAll(s.LogDir)
		}
	})
	return s
}

// DumpLogs prints the last lines of every log of the stack: its processes and its pods.
func (s *Stack) DumpLogs(t testing.TB) {
	t.Helper()
	_ = filepath.WalkDir(s.LogDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".log") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(s.LogDir, path)
		t.Logf("----- %s (last %d lines) -----\n%s", rel, dumpLines, tail(string(b), dumpLines))
		return nil
	})
}

// withLog adds the tail of the named processes' logs to err: a start failure then says why
// without a second look.
func (s *Stack) withLog(err error, names ...string) error {
	var b strings.Builder
	for _, name := range names {
		data, rerr := os.ReadFile(filepath.Join(s.LogDir, name+".log"))
		if rerr != nil {
			continue
		}
		fmt.Fprintf(&b, "\n----- %s.log (last 20 lines) -----\n%s", name, tail(string(data), 20))
	}
	return fmt.Errorf("%w%s", err, b.String())
}
