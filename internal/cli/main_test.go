package cli_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// The tests run the real plugin binary against a real API server and compare its output with
// golden files in testdata/ (go test ./internal/cli -update rewrites them).
var (
	update = flag.Bool("update", false, "rewrite the golden files in testdata/ with the current output")

	env        *testenv.Env
	bin        string // the built kubectl-sluice
	kubeconfig string
)

// testVersion is linked into the binary, as a release build would do with its tag.
const testVersion = "v0.0.0-test"

// now is the clock the tests give the plugin (--now), so relative times are fixed.
var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{GatewayAPI: true}, &env, func(e *testenv.Env) (func(), error) {
		dir, err := os.MkdirTemp("", "kubectl-sluice-test-")
		if err != nil {
			return nil, err
		}
		bin = filepath.Join(dir, "kubectl-sluice")
		build := exec.Command("go", "build", "-o", bin,
			"-ldflags", "-X github.com/sluice-mesh/sluice/internal/cli.version="+testVersion, "./cmd/kubectl-sluice")
		build.Dir = testenv.RepoRoot()
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building the plugin: %w\n%s", err, out)
		}
		if kubeconfig, err = e.Kubeconfig(dir); err != nil {
			return nil, err
		}
		return func() { _ = os.RemoveAll(dir) }, nil
	})
}

// result is one run of the plugin.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the plugin with the test cluster's kubeconfig and the fixed clock.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runTo(t, &syncBuffer{}, args...)
}

// runTo is run with stdout written to out as it comes, for a test that reacts to it.
func runTo(t *testing.T, out *syncBuffer, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := command(ctx, args...)
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errOut
	err := cmd.Run()
	return result{stdout: out.String(), stderr: errOut.String(), code: exitCode(t, err)}
}

func command(ctx context.Context, args ...string) *exec.Cmd {
	all := append([]string{"--kubeconfig", kubeconfig, "--now", now.Format(time.RFC3339)}, args...)
	cmd := exec.CommandContext(ctx, bin, all...)
	cmd.Env = append(os.Environ(), "NO_COLOR=")
	return cmd
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("running the plugin: %v", err)
	return -1
}

// golden compares got with testdata/<name>.golden, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run %s -update to create it)", err, t.Name())
	}
	if string(want) != got {
		t.Errorf("output differs from %s (-update rewrites it):\n%s", path, lineDiff(string(want), got))
	}
}

// lineDiff shows the lines that differ, numbered, for a readable failure.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want: %q\n  got:  %q\n", i+1, wl, gl)
		}
	}
	return b.String()
}
