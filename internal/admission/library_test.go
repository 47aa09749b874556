package admission

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func loadLibrary(t testing.TB, cfg Config) *OPA {
	t.Helper()
	o := NewOPA()
	if l := o.Load(context.Background(), Library(), cfg); len(l.Errors) > 0 {
		t.Fatalf("the library does not load: %v", l.Errors)
	}
	return o
}

// TestLibraryExamples reviews every built-in policy's examples: each file under
// library/examples/<policy>/denied/ has a violation of that policy, each under allowed/ none.
func TestLibraryExamples(t *testing.T) {
	o := loadLibrary(t, Config{})
	for _, p := range o.Policies() {
		for _, want := range []string{"allowed", "denied"} {
			files, _ := filepath.Glob(filepath.Join("library", "examples", p.Name, want, "*.yaml"))
			if len(files) == 0 {
				t.Errorf("built-in %s has no %s example", p.Name, want)
			}
			for _, f := range files {
				t.Run(p.Name+"/"+want+"/"+filepath.Base(f), func(t *testing.T) {
					ms, err := ReadManifests(f)
					if err != nil {
						t.Fatal(err)
					}
					var found []Violation
					for _, in := range Inputs(ms, "default", nil) {
						for _, v := range o.Review(context.Background(), in).Violations {
							if v.EvalError {
								t.Fatalf("%s could not decide: %s", p.Name, v)
							}
							if v.Policy == p.Name {
								found = append(found, v)
							}
						}
					}
					switch {
					case want == "denied" && len(found) == 0:
						t.Errorf("%s: no violation of %s", f, p.Name)
					case want == "allowed" && len(found) > 0:
						t.Errorf("%s: unexpected violation %v", f, found)
					}
					for _, v := range found {
						if v.Field == "" || !strings.Contains(v.Message, v.Field) && !strings.Contains(v.String(), v.Field) {
							t.Errorf("violation names no field: %s", v)
						}
						t.Logf("%s", v)
					}
				})
			}
		}
	}
	dirs, _ := os.ReadDir(filepath.Join("library", "examples"))
	if len(dirs) != len(o.Policies()) {
		t.Errorf("%d example folders for %d built-ins", len(dirs), len(o.Policies()))
	}
}
