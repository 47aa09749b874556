package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The schema copies in crds/ are exactly what hack/upstream-crds writes: running it over them
// again changes no byte (no description left, the tool's own encoding), so `make upstream-crds`
// from the shared upstream copies reproduces them and nothing was edited by hand.
func TestVendoredCRDsAreTheToolsOutput(t *testing.T) {
	src := filepath.Join(RepoRoot(), "internal", "testenv", "crds")
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./hack/upstream-crds", src, out)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/upstream-crds: %v\n%s", err, b)
	}
	for _, mesh := range []string{"linkerd", "consul"} {
		files, _ := filepath.Glob(filepath.Join(src, mesh, "*.yaml"))
		if len(files) == 0 {
			t.Fatalf("no %s CRDs in %s", mesh, src)
		}
		for _, f := range files {
			want, _ := os.ReadFile(f)
			got, err := os.ReadFile(filepath.Join(out, mesh, filepath.Base(f)))
			if err != nil || string(got) != string(want) {
				t.Errorf("internal/testenv/crds/%s/%s is not hack/upstream-crds output (%v); regenerate it with make upstream-crds", mesh, filepath.Base(f), err)
			}
		}
	}
}
