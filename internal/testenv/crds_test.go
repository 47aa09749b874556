package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The schema copies in crds/ are what hack/upstream-crds makes of the shared upstream CRDs:
// regenerated and compared whenever the shared copies are at hand (they are beside the
// repository on the project's machines, not in a clone elsewhere).
func TestVendoredCRDsMatchTheSharedCopies(t *testing.T) {
	shared := filepath.Join(RepoRoot(), "..", "shared", "testdata", "crds")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("no shared upstream CRDs at %s", shared)
	}
	out := t.TempDir()
	cmd := exec.Command("go", "run", "./hack/upstream-crds", shared, out)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/upstream-crds: %v\n%s", err, b)
	}
	for _, mesh := range []string{"linkerd", "consul"} {
		files, _ := filepath.Glob(filepath.Join(out, mesh, "*.yaml"))
		if len(files) == 0 {
			t.Fatalf("no %s CRDs generated", mesh)
		}
		for _, f := range files {
			want, _ := os.ReadFile(f)
			got, err := os.ReadFile(filepath.Join(RepoRoot(), "internal", "testenv", "crds", mesh, filepath.Base(f)))
			if err != nil || string(got) != string(want) {
				t.Errorf("internal/testenv/crds/%s/%s is not what hack/upstream-crds makes of the shared copy (%v); rerun it", mesh, filepath.Base(f), err)
			}
		}
	}
}
