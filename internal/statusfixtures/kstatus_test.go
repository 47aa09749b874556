package statusfixtures_test

import (
	"testing"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/sluice-mesh/sluice/internal/statusfixtures"
)

// kstatusOf is what kstatus (Flux's health checks, kubectl-style waiters) reads from a fixture.
func kstatusOf(t *testing.T, f statusfixtures.Fixture) kstatus.Status {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(f.Object)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status") // as the API server returns an object whose status was never written
	}
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		t.Fatal(err)
	}
	return res.Status
}

// truth is what each fixture's status means: InProgress while work is under way or the
// generation is not yet applied, Current when healthy and in force, Failed when a person must
// act (rolled back, stalled).
type truth struct{ want kstatus.Status }

var (
	inProgress = truth{want: kstatus.InProgressStatus}
	current    = truth{want: kstatus.CurrentStatus}
	failed     = truth{want: kstatus.FailedStatus}
	// A created object has no status at all until the controller writes one: the CRD's
	// observedGeneration default (-1) is never applied because status has no default, so
	// kstatus finds no generation to compare and no condition, and calls it Current.
	// The CRDs default status to {}: observedGeneration -1 shows until the first reconcile.
	noStatus = truth{want: kstatus.InProgressStatus}
)

var kstatusTruth = map[string]map[string]truth{
	"Rollout": {
		"no-status":                      noStatus,
		"initializing":                   inProgress,
		"initialization-failed":          failed,
		"healthy":                        current,
		"not-observed":                   inProgress,
		"stalled-spec-not-applied":       failed,
		"stalled-target-misconfigured":   failed,
		"progressing-pause-step":         inProgress,
		"progressing-analysis":           inProgress,
		"paused-at-manual-gate":          inProgress,
		"action-pending":                 inProgress,
		"paused-by-spec":                 inProgress,
		"paused-by-action":               inProgress,
		"bluegreen-waiting-for-promote":  inProgress,
		"holding-prometheus-unreachable": inProgress,
		"stalled-max-hold":               failed,
		"stalled-inconclusive":           failed,
		"promoting":                      inProgress,
		"promoted":                       current,
		"rolling-back":                   inProgress,
		"rolled-back":                    failed,
		"aborted":                        failed,
	},
	"HealthGate": {
		"no-status":            noStatus,
		"not-observed":         inProgress,
		"evaluating":           inProgress,
		"valid-without-target": current,
		"pass":                 current,
		// A failing verdict is re-evaluated every interval: kstatus reads Ready=False as
		// InProgress, which is right (docs/flux.md shows expressions that fail fast instead).
		"fail":         inProgress,
		"inconclusive": inProgress,
		"unreachable":  inProgress,
		"invalid-spec": failed,
	},
	"MeshPolicy": {
		"no-status":                noStatus,
		"not-observed":             inProgress,
		"applied":                  current,
		"applied-with-differences": current,
		"target-not-found":         inProgress,
		"unsupported-fields":       failed,
		"conflicted":               failed,
		"provider-not-installed":   failed,
	},
}

// Status tells the truth to kstatus for every fixture.
func TestKstatusReadsEveryFixture(t *testing.T) {
	all, err := statusfixtures.All()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		t.Run(f.Kind+"/"+f.Name, func(t *testing.T) {
			tr, ok := kstatusTruth[f.Kind][f.Name]
			if !ok {
				t.Fatal("no expectation for this fixture: add it to kstatusTruth")
			}
			if got := kstatusOf(t, f); got != tr.want {
				t.Errorf("kstatus %s, want %s", got, tr.want)
			}
		})
	}
}
