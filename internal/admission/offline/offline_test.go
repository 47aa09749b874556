package offline

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	sluiceadmission "github.com/sluice-mesh/sluice/internal/admission"
)

const examples = "../library/examples"

// run is Main with its output captured.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, &out, &errOut)
	t.Logf("sluice policy test %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

type report struct {
	Findings []jsonFinding `json:"findings"`
	Summary  summary       `json:"summary"`
}

// runJSON is Main with -o json, its output parsed.
func runJSON(t *testing.T, args ...string) (int, report) {
	t.Helper()
	code, out, _ := run(t, append([]string{"-o", "json"}, args...)...)
	var r report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("-o json does not parse: %v\n%s", err, out)
	}
	return code, r
}

func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSamples reviews config/samples with the built-in library. In the default namespace
// (no labels) nothing is found: the canary's steps rise 5, 25, 50 (at most 25 each), the
// gamma Rollout's stepWeight is 10, the HealthGates' Prometheus addresses are in-cluster
// Service names, both MeshPolicies' authorization rules name their sources (catalog has
// none), and the production-only policies don't apply. As production, only MeshPolicy
// catalog is denied (no spec.mtls): the gamma Rollout sets no failureLimit but the defaulter
// writes 2, and the other Rollouts set 1 and 2 with HealthGates.
func TestSamples(t *testing.T) {
	samples := filepath.Join("..", "..", "..", "config", "samples")
	code, out, _ := run(t, samples)
	// 8 objects: the 7 samples and kustomization.yaml (an object of its own kind, not checked).
	if want := "8 objects, 0 denied, 0 warnings, 0 audit findings\n"; code != 0 || out != want {
		t.Errorf("exit %d, output %q: want 0, %q", code, out, want)
	}

	code, r := runJSON(t, "--namespace-labels", "sluice.dev/env=production", samples)
	want := []jsonFinding{{
		File: filepath.Join(samples, "mesh_v1alpha1_meshpolicy_catalog.yaml"), Object: "MeshPolicy default/catalog",
		Policy: "meshpolicy-production-mtls", Mode: "deny", Field: "spec.mtls.mode",
		Message: "MeshPolicy catalog is in production namespace default and spec.mtls.mode is unset: production requires Strict",
	}}
	if code != 1 || !slices.Equal(r.Findings, want) || r.Summary != (summary{Objects: 8, Denied: 1}) {
		t.Errorf("as production: exit %d, %+v: want 1 and %+v", code, r, want)
	}
}

// TestLibraryExamples: each built-in's denied examples have a finding of that policy, named
// with file, object and field, and fail CI when the policy denies; its allowed examples have
// none.
func TestLibraryExamples(t *testing.T) {
	engine := sluiceadmission.NewOPA()
	engine.Load(context.Background(), sluiceadmission.Library(), sluiceadmission.Config{})
	modes := map[string]sluiceadmission.Mode{}
	for _, p := range engine.Policies() {
		modes[p.Name] = p.Mode
	}
	dirs, err := os.ReadDir(examples)
	if err != nil || len(dirs) != len(modes) {
		t.Fatalf("%d example folders for %d built-ins (%v)", len(dirs), len(modes), err)
	}
	for _, d := range dirs {
		policy := d.Name()
		for _, kind := range []string{"denied", "allowed"} {
			files, _ := filepath.Glob(filepath.Join(examples, policy, kind, "*.yaml"))
			if len(files) == 0 {
				t.Errorf("%s has no %s example", policy, kind)
			}
			for _, f := range files {
				t.Run(policy+"/"+kind+"/"+filepath.Base(f), func(t *testing.T) {
					code, r := runJSON(t, f)
					var found []jsonFinding
					for _, x := range r.Findings {
						if x.Policy == policy {
							found = append(found, x)
						}
					}
					if kind == "allowed" {
						if len(found) > 0 {
							t.Errorf("unexpected findings %+v", found)
						}
						return
					}
					wantCode := 0 // warn and audit never fail CI
					if modes[policy] == sluiceadmission.Deny {
						wantCode = 1
					}
					if len(found) == 0 || code != wantCode {
						t.Fatalf("exit %d with findings %+v: want %d and a finding of %s", code, found, wantCode, policy)
					}
					_, text, _ := run(t, f)
					for _, x := range found {
						if x.File != f || x.Field == "" {
							t.Errorf("finding %+v: want file %s and a field", x, f)
						}
						if prefix := f + ": " + x.Object + ": " + x.Mode + " [" + policy + "] "; !strings.Contains(text, prefix) || !strings.Contains(text, x.Field) {
							t.Errorf("text output does not name %q and field %s:\n%s", prefix, x.Field, text)
						}
					}
				})
			}
		}
	}
}

// productionRollout has HealthGates but no failureLimit.
const productionRollout = `apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {sluice.dev/env: production}}
---
apiVersion: mesh.sluice.dev/v1alpha1
kind: Rollout
metadata: {name: checkout, namespace: shop}
spec:
  targetRef: {name: checkout}
  service: {port: 80}
  trafficRouting: {gatewayAPI: {parentRefs: [{name: edge}]}}
  strategy: {canary: {stepWeight: 10}}
  analysis: {healthGates: [{name: success-rate}]}
`

// TestDefaultingIsApplied: the webhook's defaulter writes failureLimit 2, so a production
// Rollout without one is admitted; reviewed as written, it would be denied.
func TestDefaultingIsApplied(t *testing.T) {
	f := writeFile(t, "rollout.yaml", productionRollout)
	if code, out, _ := run(t, f); code != 0 || out != "2 objects, 0 denied, 0 warnings, 0 audit findings\n" {
		t.Errorf("exit %d, %q: want admitted", code, out)
	}

	// The same file without defaulting: the policy does see the missing limit.
	ms, err := sluiceadmission.ReadManifests(f)
	if err != nil {
		t.Fatal(err)
	}
	engine := sluiceadmission.NewOPA()
	engine.Load(context.Background(), sluiceadmission.Library(), sluiceadmission.Config{})
	in := sluiceadmission.Inputs(ms, "default", nil)[1]
	if v := engine.Review(context.Background(), in); !v.Denied() || v.Violations[0].Field != "spec.analysis.failureLimit" {
		t.Errorf("undefaulted verdict %+v: want failureLimit denied (else this test proves nothing)", v)
	}

	// Review works on its own too, and leaves the caller's manifests as they were.
	ms[1].Object["metadata"].(map[string]any)["namespace"] = nil
	if fs := Review(context.Background(), engine, ms, Options{Namespace: "shop"}); len(fs) != 0 {
		t.Errorf("Review: %+v", fs)
	}
	if ns := ms[1].Object["metadata"].(map[string]any)["namespace"]; ns != nil {
		t.Errorf("Review wrote namespace %v into the caller's manifest", ns)
	}
}

const userPolicy = `# METADATA
# custom:
#   mode: deny
#   kinds: [Rollout]
package team.frozen

violation contains {"msg": "checkout is frozen", "field": "metadata.name"} if input.object.metadata.name == "checkout"
`

// TestConfigAndPolicies: --config re-modes, --policies adds (or alone, --no-builtins),
// and whatever does not load or read ends with exit code 2, naming the file.
func TestConfigAndPolicies(t *testing.T) {
	denied := filepath.Join(examples, "rollout-weight-cap", "denied", "step-weight.yaml")
	warn := writeFile(t, "config.yaml", "policies:\n  rollout-weight-cap: {mode: warn}\n")
	frozen := writeFile(t, "team-rules/frozen.rego", userPolicy)
	broken := writeFile(t, "broken.rego", "# METADATA\n# custom:\n#   kinds: [Rollout]\npackage team.broken\nviolation contains x if {")
	badConfig := writeFile(t, "bad.yaml", "policies:\n  rollout-weight-cap: {mode: block}\n")

	for _, c := range []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   string
		noStdout bool
	}{
		{name: "re-moded to warn", args: []string{"--config", warn, denied}, code: 0,
			stdout: []string{denied + ": Rollout shop/checkout: warn [rollout-weight-cap] ", "1 objects, 0 denied, 1 warnings, 0 audit findings"}},
		{name: "flags after the files", args: []string{denied, "--config", warn}, code: 0, stdout: []string{"0 denied, 1 warnings"}},
		{name: "user policy next to the library", args: []string{"--policies", frozen, denied}, code: 1,
			stdout: []string{"deny [team-rules/frozen] checkout is frozen (field metadata.name)", "deny [rollout-weight-cap]", "1 objects, 1 denied"}},
		{name: "user policies only", args: []string{"--no-builtins", "--policies", filepath.Dir(frozen), denied}, code: 1,
			stdout: []string{"deny [team-rules/frozen]", "1 objects, 1 denied, 0 warnings"}},
		{name: "config names an unknown policy", args: []string{"--config", writeFile(t, "typo.yaml", "policies: {rollout-weight-caps: {mode: \"off\"}}"), denied},
			code: 1, stdout: []string{"deny [rollout-weight-cap]"}, stderr: "policies.rollout-weight-caps names no loaded policy"},
		{name: "broken policy", args: []string{"--policies", broken, denied}, code: 2, stderr: broken, noStdout: true},
		{name: "bad config", args: []string{"--config", badConfig, denied}, code: 2, stderr: "allowed are deny, warn, audit", noStdout: true},
		{name: "two policies of the same name", args: []string{"--policies", frozen, "--policies", writeFile(t, "team-rules/frozen.rego", userPolicy), denied}, code: 2, stderr: "two policies named team-rules/frozen"},
		{name: "missing file", args: []string{"nope.yaml"}, code: 2, stderr: "nope.yaml"},
		{name: "no objects", args: []string{filepath.Dir(frozen)}, code: 2, stderr: "no Kubernetes objects"},
		{name: "no files", args: nil, code: 2, stderr: "no files or folders"},
		{name: "bad output", args: []string{"-o", "yaml", denied}, code: 2, stderr: "allowed are text, json"},
		{name: "bad labels", args: []string{"--namespace-labels", "a=b=c", denied}, code: 2, stderr: "--namespace-labels"},
		{name: "no-builtins alone", args: []string{"--no-builtins", denied}, code: 2, stderr: "no policy"},
		{name: "unknown flag", args: []string{"--strict", denied}, code: 2, stderr: "flag provided but not defined: -strict", noStdout: true},
		{name: "help", args: []string{"-h"}, code: 0, stderr: "Usage: sluice policy test"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := run(t, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d", code, c.code)
			}
			for _, s := range c.stdout {
				if !strings.Contains(out, s) {
					t.Errorf("stdout does not say %q", s)
				}
			}
			if !strings.Contains(errOut, c.stderr) {
				t.Errorf("stderr does not say %q", c.stderr)
			}
			if c.noStdout && out != "" {
				t.Errorf("output despite the error: %q", out)
			}
		})
	}
}

// TestUndecodableObjectIsDenied: a Sluice object the API server would refuse is a deny
// finding, not a crash or a silent pass.
func TestUndecodableObjectIsDenied(t *testing.T) {
	f := writeFile(t, "bad.yaml", "apiVersion: mesh.sluice.dev/v1alpha1\nkind: Rollout\nmetadata: {name: web}\nspec: {strategy: {canary: {stepWeight: ten}}}\n")
	code, r := runJSON(t, f)
	if code != 1 || len(r.Findings) != 1 || r.Findings[0].Policy != DecodePolicy || r.Findings[0].Object != "Rollout default/web" {
		t.Errorf("exit %d, %+v: want one %s finding on Rollout default/web", code, r, DecodePolicy)
	}
}
