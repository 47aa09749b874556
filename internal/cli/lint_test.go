package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	sluiceadmission "github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/internal/cli/lint"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// TestLint: every kind of finding, each naming file, object, field and check; exit code 1.
func TestLint(t *testing.T) {
	r := run(t, "lint", filepath.Join("testdata", "lint"))
	if r.code != 1 || r.stderr != "" {
		t.Errorf("exit code %d, stderr %q; want 1 and nothing", r.code, r.stderr)
	}
	golden(t, "lint", r.stdout)

	r = run(t, "lint", filepath.Join(testenv.RepoRoot(), "config", "samples"))
	if r.code != 0 || !strings.HasSuffix(r.stdout, ": 0 errors, 0 warnings\n") {
		t.Errorf("config/samples: exit code %d, stdout:\n%s", r.code, r.stdout)
	}
	if r := run(t, "lint", t.TempDir()); r.code != 2 || !strings.Contains(r.stderr, "no Kubernetes objects in") {
		t.Errorf("an empty folder: exit code %d, stderr %q; want 2", r.code, r.stderr)
	}
}

// TestLintWithYourPolicies: --policies adds the platform team's policies, --config re-modes
// them, as the manager does with the policy ConfigMaps.
func TestLintWithYourPolicies(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "team-rules")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	policy := "# METADATA\n# custom:\n#   mode: deny\n#   kinds: [Rollout]\npackage team.frozen\n\n" +
		`violation contains {"msg": "checkout is frozen", "field": "metadata.name"} if input.object.metadata.name == "checkout"` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "frozen.rego"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	samples := filepath.Join(testenv.RepoRoot(), "config", "samples")
	r := run(t, "lint", "--policies", dir, samples)
	if r.code != 1 || !strings.Contains(r.stdout, "checkout is frozen") || !strings.Contains(r.stdout, "team-rules/frozen") {
		t.Errorf("with a deny policy: exit code %d, stdout:\n%s", r.code, r.stdout)
	}
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfg, []byte("policies:\n  team-rules/frozen: {mode: warn}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = run(t, "lint", "--policies", dir, "--config", cfg, samples)
	if r.code != 0 || !strings.Contains(r.stdout, "checkout is frozen") {
		t.Errorf("re-moded to warn: exit code %d, stdout:\n%s", r.code, r.stdout)
	}
	if r := run(t, "lint", "--policies", filepath.Join(t.TempDir(), "missing"), samples); r.code != 2 {
		t.Errorf("a missing policy folder: exit code %d, want 2", r.code)
	}
}

// TestLintAgreesWithTheAPIServer: for manifests that break the schema or a CEL rule, lint
// reports errors on exactly the fields the real API server names when it refuses them (a
// server-side dry run with strict field validation), and none where the server accepts.
func TestLintAgreesWithTheAPIServer(t *testing.T) {
	ctx := context.Background()
	root := testenv.RepoRoot()
	f := newFixture(t, "lint-oracle")
	for _, tc := range []struct {
		name, sample, patch string
	}{
		{"sample", "mesh_v1alpha1_rollout_canary", `{}`},
		{"both strategies", "mesh_v1alpha1_rollout_canary", `spec: {strategy: {blueGreen: {}}}`},
		{"decreasing weights", "mesh_v1alpha1_rollout_canary", `spec: {strategy: {canary: {steps: [{setWeight: 50}, {setWeight: 10}]}}}`},
		{"port out of range", "mesh_v1alpha1_rollout_canary", `spec: {service: {port: 70000}}`},
		{"enum", "mesh_v1alpha1_rollout_canary", `spec: {analysis: {onUnreachable: Retry}}`},
		{"route twice", "mesh_v1alpha1_rollout_canary", `spec: {trafficRouting: {gatewayAPI: {httpRouteRef: {name: shop}}}}`},
		{"deadline too short", "mesh_v1alpha1_rollout_canary", `spec: {progressDeadline: 5s}`},
		{"bad duration", "mesh_v1alpha1_rollout_canary", `spec: {analysis: {interval: soon}}`},
		{"unknown field", "mesh_v1alpha1_rollout_canary", `spec: {strategy: {canary: {scaleDownDelays: 30s}}}`},
		{"bad name", "mesh_v1alpha1_rollout_canary", `metadata: {name: Checkout_1}`},
		{"name too long for slots", "mesh_v1alpha1_rollout_canary", `metadata: {name: a-rollout-name-that-is-far-too-long-for-the-slot-service-names-xx}`},
		{"blue-green preview is the apex", "mesh_v1alpha1_rollout_bluegreen", `spec: {strategy: {blueGreen: {previewService: storefront}}}`},
		{"gate without bounds", "mesh_v1alpha1_healthgate_success_rate", `spec: {metrics: [{name: m, builtin: request-success-rate, thresholdRange: {}}]}`},
		{"gate address", "mesh_v1alpha1_healthgate_success_rate", `spec: {prometheus: {addresses: ["ftp://x"]}}`},
		{"meshpolicy sample", "mesh_v1alpha1_meshpolicy_catalog", `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := patched(t, filepath.Join(root, "config", "samples", tc.sample+".yaml"), tc.patch)
			obj.SetNamespace(f.ns)

			var serverFields []string
			err := env.Client.Create(ctx, obj.DeepCopy(), client.DryRunAll, client.FieldValidation("Strict"))
			var se *apierrors.StatusError
			switch {
			case err == nil:
			case errors.As(err, &se) && se.ErrStatus.Details != nil && len(se.ErrStatus.Details.Causes) > 0:
				for _, c := range se.ErrStatus.Details.Causes {
					serverFields = append(serverFields, strings.TrimPrefix(c.Field, "<nil>"))
				}
			case strings.Contains(err.Error(), `unknown field "`):
				// Strict decoding names unknown fields in the message only.
				for _, part := range strings.Split(err.Error(), `unknown field "`)[1:] {
					name, _, _ := strings.Cut(part, `"`)
					serverFields = append(serverFields, name)
				}
			default:
				t.Fatalf("the API server: %v", err)
			}

			findings, err := lint.Run(ctx, []sluiceadmission.Manifest{{File: tc.name + ".yaml", Object: obj.Object}}, lint.Options{Namespace: f.ns, NoPolicies: true})
			if err != nil {
				t.Fatal(err)
			}
			var lintFields []string
			for _, fd := range findings {
				if fd.Severity == lint.Error && (fd.Check == "schema" || fd.Check == "cel") {
					lintFields = append(lintFields, fd.Field)
				}
			}
			slices.Sort(serverFields)
			slices.Sort(lintFields)
			serverFields, lintFields = slices.Compact(serverFields), slices.Compact(lintFields)
			if fmt.Sprint(serverFields) != fmt.Sprint(lintFields) {
				t.Errorf("the API server refuses on fields %q, lint on %q\nserver: %v\nlint: %+v", serverFields, lintFields, err, findings)
			}
		})
	}
}

// patched is the sample file's object with a JSON merge patch (written as YAML) applied.
func patched(t *testing.T, file, patch string) *unstructured.Unstructured {
	t.Helper()
	ms, err := sluiceadmission.ReadManifests(file)
	if err != nil || len(ms) != 1 {
		t.Fatalf("reading %s: %v (%d objects)", file, err, len(ms))
	}
	var p map[string]any
	if err := yaml.Unmarshal([]byte(patch), &p); err != nil {
		t.Fatal(err)
	}
	obj := ms[0].Object
	merge(obj, p)
	data, _ := json.Marshal(obj)
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(data); err != nil {
		t.Fatal(err)
	}
	return u
}

// merge applies a JSON merge patch (RFC 7386) to dst.
func merge(dst, patch map[string]any) {
	for k, v := range patch {
		pm, isMap := v.(map[string]any)
		dm, dstMap := dst[k].(map[string]any)
		switch {
		case v == nil:
			delete(dst, k)
		case isMap && dstMap:
			merge(dm, pm)
		default:
			dst[k] = v
		}
	}
}
