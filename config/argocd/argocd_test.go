// Package argocd_test runs the Argo CD health checks and actions of config/argocd the way Argo
// CD runs them, on status fixtures made by Sluice's own code (internal/statusfixtures), with
// the expectations in Argo CD's test layout (health_test.yaml, actions/action_test.yaml).
package argocd_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/hack/argocd-cm/render"
	"github.com/sluice-mesh/sluice/internal/statusfixtures"
)

// root is the repository's root, seen from this package.
const root = "../.."

// The health statuses Argo CD accepts from a script; anything else becomes Unknown.
var healthStatuses = map[string]bool{"Healthy": true, "Progressing": true, "Suspended": true, "Degraded": true, "Missing": true, "Unknown": true}

type healthTests struct {
	Tests []struct {
		HealthStatus struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"healthStatus"`
		InputPath string `json:"inputPath"`
	} `json:"tests"`
}

func kindPath(kind string, elem ...string) string {
	return filepath.Join(append([]string{root, render.KindDir(kind)}, elem...)...)
}

func readScript(t *testing.T, kind string, elem ...string) string {
	t.Helper()
	b, err := os.ReadFile(kindPath(kind, elem...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func fixtureNames(t *testing.T, kind string) []string {
	t.Helper()
	all, err := statusfixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range all {
		if f.Kind == kind {
			out = append(out, f.Name)
		}
	}
	return out
}

// Every fixture of every kind has an expectation, and the script's answer is it: never
// Unknown, never an error.
func TestHealthChecks(t *testing.T) {
	for _, kind := range render.Kinds {
		t.Run(kind, func(t *testing.T) {
			script := readScript(t, kind, "health.lua")
			data, err := os.ReadFile(kindPath(kind, "health_test.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var tests healthTests
			if err := yaml.UnmarshalStrict(data, &tests); err != nil {
				t.Fatalf("health_test.yaml: %v", err)
			}
			covered := map[string]bool{}
			for _, tc := range tests.Tests {
				covered[strings.TrimSuffix(path.Base(tc.InputPath), ".yaml")] = true
				t.Run(tc.InputPath, func(t *testing.T) {
					obj, err := readObject(kindPath(kind, tc.InputPath))
					if err != nil {
						t.Fatal(err)
					}
					got, err := runLua(script, obj)
					if err != nil {
						t.Fatalf("health.lua: %v", err)
					}
					hs, _ := got.(map[string]any)
					status, _ := hs["status"].(string)
					message, _ := hs["message"].(string)
					if !healthStatuses[status] || status == "Unknown" {
						t.Errorf("status %q: Argo CD would show Unknown", status)
					}
					if status != tc.HealthStatus.Status || message != tc.HealthStatus.Message {
						t.Errorf("got\n  status: %s\n  message: %q\nwant\n  status: %s\n  message: %q", status, message, tc.HealthStatus.Status, tc.HealthStatus.Message)
					}
				})
			}
			for _, name := range fixtureNames(t, kind) {
				if !covered[name] {
					t.Errorf("fixture %s/%s has no test in health_test.yaml", kind, name)
				}
			}
		})
	}
}

func readActionTests(t *testing.T) render.ActionTests {
	t.Helper()
	data, err := os.ReadFile(kindPath("Rollout", "actions", "action_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var tests render.ActionTests
	if err := yaml.UnmarshalStrict(data, &tests); err != nil {
		t.Fatalf("action_test.yaml: %v", err)
	}
	return tests
}

// discover runs discovery.lua as Argo CD reads its answer: a table per action, disabled
// unless it says otherwise.
func discover(t *testing.T, obj map[string]any) map[string]bool {
	t.Helper()
	got, err := runLua(readScript(t, "Rollout", "actions", "discovery.lua"), obj)
	if err != nil {
		t.Fatalf("discovery.lua: %v", err)
	}
	m, ok := got.(map[string]any)
	if !ok {
		t.Fatalf("discovery.lua returned %v, want a table of actions", got)
	}
	out := map[string]bool{}
	for name, v := range m {
		d, _ := v.(map[string]any)
		disabled, _ := d["disabled"].(bool)
		out[name] = disabled
	}
	return out
}

// Discovery offers exactly the actions action_test.yaml lists for each fixture, and every
// Rollout fixture is listed.
func TestActionDiscovery(t *testing.T) {
	tests := readActionTests(t)
	covered := map[string]bool{}
	for _, tc := range tests.DiscoveryTests {
		covered[strings.TrimSuffix(path.Base(tc.InputPath), ".yaml")] = true
		t.Run(tc.InputPath, func(t *testing.T) {
			obj, err := readObject(kindPath("Rollout", "actions", tc.InputPath))
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]bool{}
			for _, a := range tc.Result {
				want[a.Name] = a.Disabled
			}
			if got := discover(t, obj); !reflect.DeepEqual(got, want) {
				t.Errorf("actions (name: disabled)\n got %v\nwant %v", got, want)
			}
		})
	}
	for _, name := range fixtureNames(t, "Rollout") {
		if !covered[name] {
			t.Errorf("fixture Rollout/%s has no discovery test in action_test.yaml", name)
		}
	}
}

func actionNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(kindPath("Rollout", "actions"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "testdata" {
			out = append(out, e.Name())
		}
	}
	return out
}

// runAction runs an action as Argo CD does and returns the merge patch it would send.
func runAction(t *testing.T, action string, obj map[string]any) (map[string]any, []byte, error) {
	t.Helper()
	got, err := runLua(readScript(t, "Rollout", "actions", action, "action.lua"), obj)
	if err != nil {
		return nil, nil, err
	}
	out, ok := got.(map[string]any)
	if !ok {
		t.Fatalf("action %s returned %v, want the object", action, got)
	}
	restoreEmptyObjects(out, obj)
	live, _ := json.Marshal(obj)
	changed, _ := json.Marshal(out)
	patch, err := jsonpatch.CreateMergePatch(live, changed)
	if err != nil {
		t.Fatal(err)
	}
	return out, patch, nil
}

// Each action returns the expected object, and the patch Argo CD sends for it touches only
// the action annotation: no spec field Git owns, no status.
func TestActions(t *testing.T) {
	for _, tc := range readActionTests(t).ActionTests {
		t.Run(tc.Action+"/"+tc.InputPath, func(t *testing.T) {
			obj, err := readObject(kindPath("Rollout", "actions", tc.InputPath))
			if err != nil {
				t.Fatal(err)
			}
			out, patch, err := runAction(t, tc.Action, obj)
			if err != nil {
				t.Fatalf("action.lua: %v", err)
			}
			want, err := readObject(kindPath("Rollout", "actions", tc.ExpectedOutputPath))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalize(roundTrip(t, out)), want) {
				t.Errorf("the action returned an object other than %s", tc.ExpectedOutputPath)
			}
			wantPatch := `{"metadata":{"annotations":{"` + meshv1alpha1.ActionAnnotation + `":"` + tc.Action + `"}}}`
			if string(patch) != wantPatch {
				t.Errorf("Argo CD would patch %s, want %s", patch, wantPatch)
			}
		})
	}
}

func roundTrip(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// An action runs exactly where discovery offers it; elsewhere it refuses with a message that
// names it, changing nothing (Argo CD runs actions the UI shows disabled when the API or CLI
// asks for them).
func TestActionsRunOnlyWhereOffered(t *testing.T) {
	all, err := statusfixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	actions := actionNames(t)
	for _, f := range all {
		if f.Kind != "Rollout" {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			obj, err := readObject(kindPath("Rollout", "testdata", f.Name+".yaml"))
			if err != nil {
				t.Fatal(err)
			}
			offered := discover(t, obj)
			if len(offered) != len(actions) {
				t.Errorf("discovery lists %v, the actions are %v", offered, actions)
			}
			for _, a := range actions {
				_, patch, err := runAction(t, a, obj)
				switch disabled := offered[a]; {
				case disabled && err == nil:
					t.Errorf("%s is not offered but runs (patch %s)", a, patch)
				case !disabled && err != nil:
					t.Errorf("%s is offered but refuses: %v", a, err)
				case err != nil && !strings.Contains(err.Error(), a) && !strings.Contains(err.Error(), "waiting for the Sluice controller"):
					t.Errorf("%s refuses without saying what: %v", a, err)
				}
			}
		})
	}
}

// The snippet carries the scripts of the files as Argo CD reads them from argocd-cm.
func TestSnippetCarriesTheScripts(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, render.Snippet))
	if err != nil {
		t.Fatal(err)
	}
	var cm struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(data, &cm); err != nil {
		t.Fatal(err)
	}
	for _, kind := range render.Kinds {
		if got, want := cm.Data[render.ConfigMapKey("health", kind)], readScript(t, kind, "health.lua"); got != want {
			t.Errorf("%s: the health script differs from %s/health.lua", render.ConfigMapKey("health", kind), kind)
		}
	}
	var actions render.ActionsValue
	if err := yaml.UnmarshalStrict([]byte(cm.Data[render.ConfigMapKey("actions", "Rollout")]), &actions); err != nil {
		t.Fatalf("%s: %v", render.ConfigMapKey("actions", "Rollout"), err)
	}
	if actions.Discovery != readScript(t, "Rollout", "actions", "discovery.lua") {
		t.Error("discovery.lua differs from the file")
	}
	var names []string
	for _, d := range actions.Definitions {
		names = append(names, d.Name)
		if d.Action != readScript(t, "Rollout", "actions", d.Name, "action.lua") {
			t.Errorf("action %s differs from its file", d.Name)
		}
	}
	want := actionNames(t)
	sort.Strings(want)
	if !reflect.DeepEqual(names, want) {
		t.Errorf("actions in the snippet %v, want %v", names, want)
	}
}

// The fixtures, their copies, the actions' expected outputs and the snippet are what
// `make argocd` writes now: nothing was edited by hand or left stale.
func TestGeneratedFilesAreUpToDate(t *testing.T) {
	files, err := render.Files(root)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(root, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not what make argocd writes (run make argocd)", p)
		}
	}
	dirs := []string{filepath.Join(render.KindDir("Rollout"), "actions", "testdata")}
	for _, kind := range render.Kinds {
		dirs = append(dirs, filepath.Join(render.KindDir(kind), "testdata"))
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if _, ok := files[path.Join(filepath.ToSlash(dir), e.Name())]; !ok {
				t.Errorf("%s/%s is not generated any more (run make argocd)", dir, e.Name())
			}
		}
	}
}
