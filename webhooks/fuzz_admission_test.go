package webhooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	admissionmetrics "sigs.k8s.io/controller-runtime/pkg/webhook/admission/metrics"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/gates"
	"github.com/sluice-mesh/sluice/internal/policy"
	"github.com/sluice-mesh/sluice/internal/policy/providers"
	"github.com/sluice-mesh/sluice/internal/probe"
	"github.com/sluice-mesh/sluice/internal/rollout"
	"github.com/sluice-mesh/sluice/internal/slots"
	"github.com/sluice-mesh/sluice/internal/traffic"
	"github.com/sluice-mesh/sluice/internal/traffic/gatewayapi"
	"github.com/sluice-mesh/sluice/webhooks"
)

// Issue 13, "bounded input everywhere": generated and mutated objects of the three kinds go
// through the real API server and webhooks (server-side dry-run, so nothing is stored). No
// request may fail for any other reason than a rejection, every rejection must name a field,
// and whatever is accepted must be something the controllers' logic handles.
//
// Reproduce a failure: SLUICE_FUZZ_SEED=<seed> SLUICE_FUZZ_CASE=<case> go test ./webhooks/
// -run TestFuzzAdmission -v (regenerates that one case and prints it in full).
// SLUICE_FUZZ_N sets the number of objects; SLUICE_FUZZ_FILE=<file> sends the objects of a
// YAML file (documents separated by ---, namespace and name filled in) instead.

const (
	fuzzDefaultSeed = 0x5eed_0013
	fuzzObjects     = 10000
	fuzzWorkers     = 6
	// fuzzMaxBytes keeps a request far below the API server's 3 MiB limit: a 413 says nothing
	// about Sluice's validation.
	fuzzMaxBytes = 512 << 10
	// fuzzSlowRequest: Sluice's webhooks time out after 5 s. A request this slow is only noted
	// (on a loaded CI machine the API server alone can take that long); what fails the test is
	// a webhook call that errors: one that fails closed makes the request fail ("other error"),
	// and one that fails open (Ignore) raises the API server's fail-open count, checked after
	// the run (the request's time then names the suspects).
	fuzzSlowRequest = 5 * time.Second
	// fuzzLogicBudget bounds the pure controller logic run for one accepted object.
	fuzzLogicBudget = 10 * time.Second
	fuzzExamples    = 20
)

var fuzzKinds = []string{"Rollout", "HealthGate", "MeshPolicy"}

type fuzzOutcome int

const (
	fuzzAccepted fuzzOutcome = iota
	fuzzRejectedSchema
	fuzzRejectedWebhook
	fuzzOther
)

var fuzzOutcomeNames = []string{"accepted", "rejected by schema/CEL (422)", "rejected by a webhook", "other error"}

func TestFuzzAdmission(t *testing.T) {
	seed := uint64(fuzzDefaultSeed)
	if s := os.Getenv("SLUICE_FUZZ_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("SLUICE_FUZZ_SEED: %v", err)
		}
		seed = v
	}
	n := fuzzObjects
	if testing.Short() {
		n = 600
	}
	if s := os.Getenv("SLUICE_FUZZ_N"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("SLUICE_FUZZ_N: %v", err)
		}
		n = v
	}
	cases := make([]int, 0, n)
	if s := os.Getenv("SLUICE_FUZZ_CASE"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("SLUICE_FUZZ_CASE: %v", err)
		}
		cases = append(cases, v)
	} else {
		for i := range n {
			cases = append(cases, i)
		}
	}

	ctx := context.Background()
	ns := namespace(t)
	// Warnings (missing references, pruned unknown fields) are expected by the thousand.
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler, cfg.WarningHandlerWithContext = nil, rest.NoWarnings{}
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	seeds := fuzzSeeds(t, ctx, c, ns)
	f := &fuzzer{seed: seed, ns: ns, c: c, seeds: seeds, stats: newFuzzStats()}
	panicsBefore := promtestutil.ToFloat64(admissionmetrics.WebhookPanics.WithLabelValues())
	failOpenBefore, err := failedOpen(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	start, sent := time.Now(), len(cases)
	if path := os.Getenv("SLUICE_FUZZ_FILE"); path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		docs := strings.Split(string(data), "\n---\n")
		for i, doc := range docs {
			obj := map[string]any{}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatalf("%s, document %d: %v", path, i, err)
			}
			u := &unstructured.Unstructured{Object: obj}
			u.SetNamespace(ns)
			if u.GetName() == "" {
				u.SetGenerateName("file-")
			}
			f.check(ctx, i, u, true)
		}
		sent = len(docs)
	} else {
		jobs := make(chan int)
		var wg sync.WaitGroup
		for range fuzzWorkers {
			wg.Go(func() {
				for i := range jobs {
					f.run(ctx, i, len(cases) == 1)
				}
			})
		}
		for _, i := range cases {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
	}
	elapsed := time.Since(start)

	if d := promtestutil.ToFloat64(admissionmetrics.WebhookPanics.WithLabelValues()) - panicsBefore; d > 0 {
		f.stats.fail("webhook panic", -1, newProblem("panics metric", "controller_runtime_webhook_panics_total rose by %v (a panic in a webhook whose failure policy is Ignore passes silently)", d), nil)
	}
	failOpenAfter, err := failedOpen(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for hook, n := range failOpenAfter {
		if d := n - failOpenBefore[hook]; d > 0 {
			f.stats.fail("webhook failed open", -1, newProblem("fail-open "+hook, "the API server ignored %v failed calls to %s (timeout or error, failurePolicy Ignore); slow requests, the likely cases: %v", d, hook, f.stats.slowCases()), nil)
		}
	}
	f.stats.report(t, seed, sent, elapsed)
}

// fuzzer sends generated objects and judges the answers.
type fuzzer struct {
	seed  uint64
	ns    string
	c     client.Client
	seeds map[string][]fuzzSeed
	stats *fuzzStats
}

// fuzzSeed is a valid object of one kind as JSON values, with its paths for grafting.
type fuzzSeed struct {
	obj   map[string]any
	paths []jsonPath
}

func (f *fuzzer) run(ctx context.Context, i int, verbose bool) {
	kind := fuzzKinds[i%len(fuzzKinds)]
	g := &gen{r: rand.New(rand.NewPCG(f.seed, uint64(i))), seeds: f.seeds[kind]}
	f.check(ctx, i, g.object(kind, f.ns), verbose)
}

// check sends one object and judges the answer.
func (f *fuzzer) check(ctx context.Context, i int, u *unstructured.Unstructured, verbose bool) {
	kind := u.GetKind()
	if verbose {
		data, _ := json.MarshalIndent(u.Object, "", "  ")
		fmt.Printf("case %d (%s), seed %#x:\n%s\n", i, kind, f.seed, data)
	}
	sent := u.DeepCopy()
	reqCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	began := time.Now()
	err := f.c.Create(reqCtx, u, client.DryRunAll)
	took := time.Since(began)
	cancel()

	out, webhook := classify(err)
	f.stats.count(kind, out, webhook, took)
	if verbose {
		fmt.Printf("case %d: %s in %s: %v\n", i, fuzzOutcomeNames[out], took, err)
	}
	if took >= fuzzSlowRequest {
		f.stats.slow(i)
		f.stats.note(fmt.Sprintf("request of %s or more", fuzzSlowRequest), kind)
	}
	switch out {
	case fuzzOther:
		f.stats.fail("other error", i, rejection(kind, webhook, err), sent)
		return
	case fuzzRejectedSchema, fuzzRejectedWebhook:
		if strings.Contains(strings.ToLower(err.Error()), "panic") {
			f.stats.fail("webhook panic", i, rejection(kind, webhook, err), sent)
		}
		if !namesField(err) {
			f.stats.fail("rejection without a field", i, rejection(kind, webhook, err), sent)
		}
		return
	}
	for _, p := range f.accepted(ctx, kind, u) {
		f.stats.fail(kind+" accepted but not handled", i, p, sent)
	}
}

// problem is one finding: key groups findings that differ only in values, detail is one
// instance in full.
type problem struct{ key, detail string }

func newProblem(key, format string, args ...any) problem {
	return problem{key: key, detail: fmt.Sprintf(format, args...)}
}

// rejection groups rejections by kind, webhook and message.
func rejection(kind, webhook string, err error) problem {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, "denied the request: "); ok {
		msg = after
	}
	return problem{key: kind + " " + webhook + ": " + msg, detail: fmt.Sprintf("%s: %v", kind, err)}
}

// apiMessage is an API error's own message (names quoted), for grouping.
func apiMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return st.Status().Message
	}
	return err.Error()
}

var deniedBy = regexp.MustCompile(`admission webhook "([^"]+)" denied the request`)

// classify sorts an answer into the outcomes; webhook names the webhook that denied.
func classify(err error) (fuzzOutcome, string) {
	if err == nil {
		return fuzzAccepted, ""
	}
	if m := deniedBy.FindStringSubmatch(err.Error()); m != nil && strings.HasSuffix(m[1], ".sluice.dev") {
		return fuzzRejectedWebhook, m[1]
	}
	if apierrors.IsInvalid(err) {
		return fuzzRejectedSchema, ""
	}
	return fuzzOther, ""
}

// failedOpen reads the API server's count of failed calls to Sluice's webhooks (timeouts,
// refused connections, unusable answers) that it ignored under failurePolicy Ignore, by webhook.
func failedOpen(ctx context.Context, cfg *rest.Config) (map[string]float64, error) {
	const metric = "apiserver_admission_webhook_fail_open_count{"
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	raw, err := dc.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	out := map[string]float64{}
	for line := range strings.Lines(string(raw)) {
		labels, value, ok := strings.Cut(strings.TrimPrefix(line, metric), "} ")
		if !ok || !strings.HasPrefix(line, metric) {
			continue
		}
		m := hookLabel.FindStringSubmatch(labels)
		if m == nil || !strings.HasSuffix(m[1], ".sluice.dev") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", strings.TrimSpace(line), err)
		}
		out[m[1]] += v
	}
	return out, nil
}

var hookLabel = regexp.MustCompile(`(?:^|,)name="([^"]+)"`)

// namesField: the rejection says which field is wrong, in its causes or its message.
func namesField(err error) bool {
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		if d := st.Status().Details; d != nil {
			for _, c := range d.Causes {
				if c.Field != "" {
					return true
				}
			}
		}
	}
	msg := err.Error()
	return strings.Contains(msg, "spec.") || strings.Contains(msg, "metadata.")
}

// accepted decodes an admitted object as the controllers do and runs their logic on it. The
// pure logic runs under a recover and a time budget; the objects a Rollout's controller would
// write are then sent to the API server (dry-run) to see that it would take them.
func (f *fuzzer) accepted(ctx context.Context, kind string, u *unstructured.Unstructured) []problem {
	var obj client.Object
	switch kind {
	case "Rollout":
		obj = &meshv1alpha1.Rollout{}
	case "HealthGate":
		obj = &meshv1alpha1.HealthGate{}
	default:
		obj = &meshv1alpha1.MeshPolicy{}
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return []problem{newProblem("decode: "+err.Error(), "the admitted object does not decode into %T: %v", obj, err)}
	}
	// A dry-run create gives no UID on some servers; the controllers need one.
	if obj.GetUID() == "" {
		obj.SetUID(types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", len(obj.GetName()))))
	}
	var logic func() []problem
	switch o := obj.(type) {
	case *meshv1alpha1.Rollout:
		logic = func() []problem { return f.rolloutLogic(o) }
	case *meshv1alpha1.HealthGate:
		logic = func() []problem { return healthGateLogic(o) }
	case *meshv1alpha1.MeshPolicy:
		logic = func() []problem { return f.meshPolicyLogic(o) }
	}
	problems := bounded(kind, logic)
	if ro, ok := obj.(*meshv1alpha1.Rollout); ok && len(problems) == 0 {
		problems = f.rolloutObjects(ctx, ro)
	}
	return problems
}

// bounded runs logic with a recover and a time budget.
func bounded(kind string, logic func() []problem) []problem {
	done := make(chan []problem, 1)
	began := time.Now()
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- []problem{newProblem(fmt.Sprintf("panic: %v", r), "panic in the %s controller logic: %v\n%s", kind, r, debug.Stack())}
			}
		}()
		done <- logic()
	}()
	select {
	case p := <-done:
		if took := time.Since(began); took > fuzzLogicBudget {
			p = append(p, newProblem("slow logic", "the %s controller logic took %s", kind, took))
		}
		return p
	case <-time.After(3 * fuzzLogicBudget):
		return []problem{newProblem("hang", "the %s controller logic did not return within %s", kind, 3*fuzzLogicBudget)}
	}
}

// ---- Rollout ----

var fuzzT0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

// rolloutLogic checks the step list and plays a release with passing and with failing gate
// checks.
func (f *fuzzer) rolloutLogic(ro *meshv1alpha1.Rollout) []problem {
	spec := &ro.Spec
	steps := rollout.Steps(spec)
	if spec.Strategy.Canary != nil && len(steps) == 0 {
		return []problem{newProblem("no steps", "canary strategy with no steps (rollout.Steps returned none)")}
	}
	for i, s := range steps {
		if n := btoi(s.SetWeight != nil) + btoi(s.Pause != nil) + btoi(s.Analysis != nil); n != 1 {
			return []problem{newProblem("rollout.Steps: a step sets not exactly one action", "rollout.Steps: step %d sets %d of setWeight, pause, analysis", i, n)}
		}
		if s.SetWeight != nil && (*s.SetWeight < 0 || *s.SetWeight > 100) {
			return []problem{newProblem("rollout.Steps: weight out of range", "rollout.Steps: step %d setWeight %d", i, *s.SetWeight)}
		}
	}
	for i := 0; i <= len(steps); i++ {
		if w := rollout.WeightAt(steps, i); w < 0 || w > 100 {
			return []problem{newProblem("rollout.WeightAt: weight out of range", "rollout.WeightAt(steps, %d) = %d", i, w)}
		}
	}
	if p := f.simulate(spec, len(steps), meshv1alpha1.VerdictPass); len(p) > 0 {
		return p
	}
	return f.simulate(spec, len(steps), meshv1alpha1.VerdictFail)
}

// simulate plays a release through rollout.Next in a small simulated cluster (slots get ready
// at once, the route is accepted and proven at once, every gate check has the verdict given, a
// paused release is promoted): the Rollout initializes with rev1, then releases rev2. Every
// decision must fit the status schema and the traffic model.
func (f *fuzzer) simulate(spec *meshv1alpha1.RolloutSpec, steps int, verdict meshv1alpha1.Verdict) []problem {
	probeOff := spec.TrafficRouting.GatewayAPI.GetProbeMode() == meshv1alpha1.ProbeDisabled
	st := meshv1alpha1.RolloutStatus{}
	now := fuzzT0
	target := rollout.TargetState{Found: true, Revision: "rev1", Replicas: 3}
	slotState := map[meshv1alpha1.Slot]rollout.SlotState{}
	var route rollout.TrafficState
	version := 0
	var pending *rollout.Check
	var pendingTicket string
	for look := range 150 {
		obs := rollout.Observations{Now: now, Generation: 1, Target: target, Slots: map[meshv1alpha1.Slot]rollout.SlotState{}, Traffic: route}
		for s, v := range slotState {
			obs.Slots[s] = v
		}
		if pending != nil {
			if tk, ok := rollout.CheckTicket(spec, &st); ok && tk == pendingTicket {
				c := *pending
				obs.Check = &c
			}
			pending = nil
		}
		if st.Phase == meshv1alpha1.PhasePaused {
			obs.Action, obs.ActionID = meshv1alpha1.ActionPromote, fmt.Sprintf("%016x", look)
		}
		obs.ApplyError = rollout.ApplyErrorOf(&st)
		d := rollout.Next(spec, &st, obs)
		if p := decisionProblems(d, steps); len(p) > 0 {
			var out []problem
			for _, s := range p {
				out = append(out, newProblem("rollout.Next: "+s, "look %d (phase %s -> %s): rollout.Next: %s", look, st.Phase, d.Status.Phase, s))
			}
			return out
		}
		st = d.Status
		st.ObservedGeneration = 1
		if pending == nil && rollout.CheckDue(spec, &st, obs) {
			if tk, ok := rollout.CheckTicket(spec, &st); ok {
				c := rollout.Check{Verdict: verdict, Started: now, Message: "gates: " + string(verdict)}
				for _, g := range spec.Analysis.HealthGates {
					c.Gates = append(c.Gates, meshv1alpha1.GateMetricVerdict{Gate: g.Name, MetricVerdict: meshv1alpha1.MetricVerdict{Name: "m", Verdict: verdict, Value: "1"}})
				}
				pending, pendingTicket = &c, tk
			}
		}
		for s, in := range d.Slots {
			if in.Keep {
				continue
			}
			ss := slotState[s]
			if in.Revision != "" {
				ss.Revision = in.Revision
			}
			ss.Replicas = in.Replicas
			ss.Ready = ss.Replicas > 0 && ss.Revision != ""
			slotState[s] = ss
		}
		if d.ScaleTargetToZero {
			target.Replicas = 0
		}
		if t := d.Traffic; t != nil {
			next := rollout.TrafficState{Found: true, Accepted: true, Weights: map[meshv1alpha1.Slot]int32{}, Reaches: map[meshv1alpha1.Slot]bool{},
				Matches: t.Matches, MirrorPercent: t.MirrorPercent, ProbeSlot: t.ProbeSlot, ProbeRevision: t.ProbeRevision, ProbeOff: probeOff}
			for s, w := range t.Weights {
				next.Weights[s], next.Reaches[s] = w, w > 0
			}
			if t.Matches || t.MirrorPercent > 0 {
				next.Reaches[st.StableSlot.Other()] = true
			}
			if !sameRoute(route, next) {
				version++
			}
			next.Split = strconv.Itoa(version)
			if !probeOff {
				next.Proof = &rollout.Proof{Split: next.Split, OK: true, Probed: true, Latency: 40 * time.Millisecond, Message: "the slot answered"}
			}
			route = next
		}
		if st.Phase == meshv1alpha1.PhaseHealthy && st.StableRevision == "rev1" && target.Revision == "rev1" {
			target.Revision = "rev2"
		}
		if (st.Phase == meshv1alpha1.PhaseHealthy && st.StableRevision == "rev2") || len(st.History) > 0 {
			break
		}
		step := 5 * time.Second
		if d.RequeueAfter > 0 {
			step = min(max(d.RequeueAfter, time.Second), time.Hour)
		}
		now = now.Add(step)
	}
	// How far the simulated release got, so that a simulation that never starts shows.
	end := "release of rev2 still running after 150 looks, phase " + string(st.Phase)
	switch {
	case len(st.History) > 0:
		end = "release of rev2 ended " + string(st.History[0].Outcome)
	case st.StableRevision == "":
		end = "never initialized, phase " + string(st.Phase)
	}
	f.stats.info("Rollout simulation with checks that " + string(verdict) + ": " + end)
	return nil
}

func sameRoute(a, b rollout.TrafficState) bool {
	if a.Found != b.Found || a.Matches != b.Matches || a.MirrorPercent != b.MirrorPercent || a.ProbeSlot != b.ProbeSlot || a.ProbeRevision != b.ProbeRevision || len(a.Weights) != len(b.Weights) {
		return false
	}
	for s, w := range b.Weights {
		if a.Weights[s] != w {
			return false
		}
	}
	return true
}

var conditionReason = regexp.MustCompile(`^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`)

// decisionProblems checks a decision against the status schema (a status the API server
// refuses stalls the Rollout) and the traffic model.
func decisionProblems(d rollout.Decision, steps int) []string {
	var p []string
	st := d.Status
	if st.Phase == "" {
		p = append(p, "status.phase is empty")
	}
	if st.CanaryWeight < 0 || st.CanaryWeight > 100 {
		p = append(p, fmt.Sprintf("status.canaryWeight %d", st.CanaryWeight))
	}
	if st.CurrentStep != nil && (*st.CurrentStep < 0 || int(*st.CurrentStep) > steps) {
		p = append(p, fmt.Sprintf("status.currentStep %d of %d steps", *st.CurrentStep, steps))
	}
	if len(st.History) > 10 {
		p = append(p, fmt.Sprintf("status.history has %d entries (max 10)", len(st.History)))
	}
	if len(st.AbortReason) > 1024 {
		p = append(p, fmt.Sprintf("status.abortReason is %d bytes (max 1024)", len(st.AbortReason)))
	}
	for i, h := range st.History {
		if len(h.AbortReason) > 1024 || len(h.Message) > 1024 || len(h.Revision) > 64 {
			p = append(p, fmt.Sprintf("status.history[%d] exceeds its bounds (abortReason %d, message %d, revision %d bytes)", i, len(h.AbortReason), len(h.Message), len(h.Revision)))
		}
	}
	if dp := st.DataPlane; dp != nil && (len(dp.Message) > 1024 || len(dp.Split) > 64) {
		p = append(p, fmt.Sprintf("status.dataPlane exceeds its bounds (message %d, split %d bytes)", len(dp.Message), len(dp.Split)))
	}
	if a := st.Analysis; a != nil && len(a.Gates) > 128 {
		p = append(p, fmt.Sprintf("status.analysis.gates has %d entries (max 128)", len(a.Gates)))
	}
	if len(st.Conditions) > 16 {
		p = append(p, fmt.Sprintf("status.conditions has %d entries (max 16)", len(st.Conditions)))
	}
	for _, c := range st.Conditions {
		if len(c.Message) > 32768 || len(c.Reason) > 1024 || !conditionReason.MatchString(c.Reason) {
			p = append(p, fmt.Sprintf("condition %s: reason %q, message of %d bytes", c.Type, c.Reason, len(c.Message)))
		}
	}
	if t := d.Traffic; t != nil {
		sum := int32(0)
		for s, w := range t.Weights {
			if w < 0 || w > 100 {
				p = append(p, fmt.Sprintf("traffic weight %d for slot %s", w, s))
			}
			sum += w
		}
		if sum != 100 {
			p = append(p, fmt.Sprintf("traffic weights %v sum to %d", t.Weights, sum))
		}
		if t.MirrorPercent < 0 || t.MirrorPercent > 100 {
			p = append(p, fmt.Sprintf("mirror percent %d", t.MirrorPercent))
		}
	}
	for s, in := range d.Slots {
		if in.Replicas < 0 {
			p = append(p, fmt.Sprintf("slot %s: %d replicas", s, in.Replicas))
		}
	}
	if d.RequeueAfter < 0 {
		p = append(p, fmt.Sprintf("requeue after %s", d.RequeueAfter))
	}
	return p
}

// rolloutObjects builds what the Rollout controller writes for a release (internal/slots and
// the generated HTTPRoute of internal/traffic/gatewayapi) and sends it to the API server as a
// dry-run: an accepted Rollout whose slots, Services or route the API server refuses can't be
// released. The target Deployment is a plausible one; the Split is assembled as
// controllers/rollout_observe.go does.
func (f *fuzzer) rolloutObjects(ctx context.Context, ro *meshv1alpha1.Rollout) []problem {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	target := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: ro.Spec.TargetRef.Name, Namespace: ro.Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sluice.dev/demo-app:v1",
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
			},
		},
	}
	const rev = "5d8f7c9b4"
	var problems []problem
	write := func(what string, obj client.Object) {
		if err := f.c.Create(ctx, obj, client.DryRunAll); err != nil {
			problems = append(problems, newProblem(what+": "+apiMessage(err), "the API server refuses the %s the controller would write: %v", what, err))
		}
	}
	dep, err := slots.Deployment(ro, meshv1alpha1.SlotB, target, &target.Spec.Template, rev, 3, "")
	if err != nil {
		problems = append(problems, newProblem("slots.Deployment: "+err.Error(), "slots.Deployment: %v", err))
	} else {
		write("slot Deployment", dep)
	}
	write("slot Service a", slots.SlotService(ro, meshv1alpha1.SlotA))
	write("slot Service b", slots.SlotService(ro, meshv1alpha1.SlotB))
	write("apex Service", slots.ApexService(ro, meshv1alpha1.SlotA))
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil && bg.PreviewService != "" {
		write("preview Service", slots.PreviewService(ro, bg.PreviewService, meshv1alpha1.SlotB))
	}

	gw := ro.Spec.TrafficRouting.GatewayAPI
	if gw.HTTPRouteRef != nil {
		return problems // an existing route is the user's; it is not generated
	}
	stable, canary := meshv1alpha1.SlotA, meshv1alpha1.SlotB
	s := traffic.Split{
		Namespace: ro.Namespace, OwnerName: ro.Name, OwnerUID: ro.UID,
		ApexService: ro.GetServiceName(), Port: ro.Spec.Service.Port,
		Stable:    traffic.Backend{Service: ro.GetSlotServiceName(stable), Weight: 90},
		Canary:    traffic.Backend{Service: ro.GetSlotServiceName(canary), Weight: 10},
		Generated: &traffic.GeneratedRoute{Name: ro.Name, ParentRefs: gw.ParentRefs, Hostnames: gw.Hostnames},
	}
	if c := ro.Spec.Strategy.Canary; c != nil {
		s.Matches = c.Match
		if c.Mirror != nil {
			s.MirrorPercent = c.Mirror.Percent
		}
	}
	if gw.GetProbeMode() != meshv1alpha1.ProbeDisabled {
		path := "/"
		if gw.Probe != nil && gw.Probe.Path != "" {
			path = gw.Probe.Path
		}
		rule := &traffic.ProbeRule{Service: s.Canary.Service, Path: path, Token: probe.Token(string(ro.UID), rev, string(canary))}
		rule.Split = probe.Version(fmt.Sprintf("%s=%d;%s=%d;matches=%t;mirror=%d;probe=%s@%s%s",
			s.Stable.Service, s.Stable.Weight, s.Canary.Service, s.Canary.Weight, len(s.Matches) > 0, s.MirrorPercent, rule.Service, rule.Token, rule.Path))
		s.Probe = rule
	}
	if err := gatewayapi.New(client.NewDryRunClient(f.c)).Apply(ctx, s); err != nil {
		problems = append(problems, newProblem("generated HTTPRoute: "+apiMessage(err), "the generated HTTPRoute is refused: %v", err))
	}
	return problems
}

// ---- HealthGate ----

// answerSource answers every query with the same value.
type answerSource struct{ v model.Value }

func (s answerSource) Query(context.Context, string, time.Time) (gates.Answer, error) {
	return gates.Answer{Value: s.v, Address: "http://prometheus.fuzz:9090"}, nil
}

// healthGateLogic: what the webhook accepted, the controller's ValidateSpec accepts too; the
// Prometheus source builds; evaluation (query expansion included) gives one verdict per
// metric within the status schema's bounds, for a standalone target and a Rollout's.
func healthGateLogic(g *meshv1alpha1.HealthGate) []problem {
	spec := &g.Spec
	var p []problem
	if err := gates.ValidateSpec(spec); err != nil {
		p = append(p, newProblem("gates.ValidateSpec: "+err.Error(), "gates.ValidateSpec rejects an admitted gate: %v", err))
	}
	if src, err := gates.NewPrometheusSource(spec.Prometheus, gates.Auth{}, nil); err != nil {
		p = append(p, newProblem("gates.NewPrometheusSource: "+err.Error(), "gates.NewPrometheusSource: %v", err))
	} else {
		src.Close()
	}
	var targets []gates.Target
	if t := spec.Target; t != nil {
		canary := t.CanaryService
		if canary == "" {
			canary = t.Service
		}
		targets = append(targets, gates.Target{Namespace: g.Namespace, Service: t.Service, CanaryService: canary, StableService: t.StableService,
			Revision: t.Revision, Window: spec.GetWindow(spec.GetInterval()), MinSamples: ptrOr(t.MinSamples)})
	}
	for _, minSamples := range []int32{0, 100} {
		targets = append(targets, gates.Target{Namespace: g.Namespace, Service: "checkout", CanaryService: "checkout-b", StableService: "checkout-a",
			Revision: "5d8f7c9b4", Window: spec.GetWindow(30 * time.Second), MinSamples: minSamples})
	}
	sources := []model.Value{
		model.Vector{&model.Sample{Value: 0.5}},
		model.Vector{&model.Sample{Value: 1e6}},
		model.Vector{},
		&model.Scalar{Value: model.SampleValue(math.NaN())},
	}
	for ti, t := range targets {
		for _, v := range sources {
			res := gates.Evaluate(context.Background(), answerSource{v}, spec, t)
			if len(res.Metrics) != len(spec.Metrics) {
				p = append(p, newProblem("gates.Evaluate: verdict count", "gates.Evaluate: %d metric verdicts for %d metrics", len(res.Metrics), len(spec.Metrics)))
			}
			if len(res.Message) > 32768 {
				p = append(p, newProblem("gates.Evaluate: message too long", "gates.Evaluate: a message of %d bytes", len(res.Message)))
			}
			for _, m := range res.Metrics {
				if len(m.Message) > 1024 || len(m.Value) > 64 || len(m.Name) > 63 || !validVerdict(m.Verdict) {
					p = append(p, newProblem("gates.Evaluate: metric verdict out of the status schema", "gates.Evaluate: metric %q: verdict %q, value of %d bytes, message of %d bytes", m.Name, m.Verdict, len(m.Value), len(m.Message)))
				}
				// The Rollout-like targets have every variable set: admission's check of the
				// template (with SampleVars) must hold for them.
				if ti >= len(targets)-2 && strings.HasPrefix(m.Message, "query template:") {
					p = append(p, newProblem("gates.Evaluate: "+m.Message, "gates.Evaluate: metric %q: %s", m.Name, m.Message))
				}
			}
		}
	}
	return dedupe(p)
}

func validVerdict(v meshv1alpha1.Verdict) bool {
	switch v {
	case meshv1alpha1.VerdictPass, meshv1alpha1.VerdictFail, meshv1alpha1.VerdictInconclusive, meshv1alpha1.VerdictUnreachable:
		return true
	}
	return false
}

// ---- MeshPolicy ----

// meshPolicyLogic translates the policy with every provider (provider auto may pick any) for
// target Services that exist with one port 80, as the webhook's stand-ins: with no optional
// API, with every one, and with Rollout backends and GAMMA routes. What the controller would
// write must be valid (names, the labels it adds) and its status must fit the schema.
func (f *fuzzer) meshPolicyLogic(p *meshv1alpha1.MeshPolicy) []problem {
	services := webhooks.StandInServices(p)
	backends := map[string][]string{}
	routed := map[string]bool{}
	for _, t := range p.Spec.TargetRefs {
		backends[t.Name] = []string{t.Name + "-a", t.Name + "-b"}
		routed[t.Name] = true
	}
	all := policy.Capabilities{HTTPRouteRetry: true, ConsulEnterprise: true}
	inputs := []policy.Input{
		{Policy: p, Services: services},
		{Policy: p, Services: services, Capabilities: all}, // the webhook's
		{Policy: p, Services: services, Capabilities: all, Backends: backends, Routed: routed},
	}
	var problems []problem
	for _, prov := range providers.All() {
		for ii, in := range inputs {
			where := fmt.Sprintf("provider %s, input %d", prov.Name(), ii)
			out, err := prov.Translate(in)
			if err != nil {
				if prov.Name() == p.Spec.Provider && ii == 1 {
					problems = append(problems, newProblem("explicit provider's translation fails: "+err.Error(), "%s: the explicit provider's translation fails after admission: %v", where, err))
				} else {
					f.stats.note("MeshPolicy translation error (status TranslationFailed)", fmt.Sprintf("%s: %v", where, err))
				}
				if len(err.Error()) > 32768 {
					problems = append(problems, newProblem("translation error too long", "%s: translation error of %d bytes exceeds a condition message", where, len(err.Error())))
				}
				continue
			}
			unsupported, partial := policy.Check(prov.Matrix(), &p.Spec)
			gaps := policy.Merge(unsupported, out.Unsupported...)
			if prov.Name() == p.Spec.Provider && ii == 1 && len(gaps) > 0 {
				problems = append(problems, newProblem("explicit provider can't express", "%s: the explicit provider can't express %v, yet the policy was admitted", where, gaps))
			}
			for _, s := range fieldListProblems(gaps, 32) {
				problems = append(problems, newProblem("status.unsupported: "+s, "%s: status.unsupported: %s", where, s))
			}
			for _, s := range fieldListProblems(policy.Merge(partial), 1<<20) {
				problems = append(problems, newProblem("partial fields: "+s, "%s: partial fields: %s", where, s))
			}
			resources := len(out.Objects)
			if len(out.ServiceAnnotations) > 0 {
				resources += len(services)
				for _, b := range in.Backends {
					resources += len(b)
				}
				if errs := apivalidation.ValidateAnnotations(out.ServiceAnnotations, field.NewPath("metadata", "annotations")); len(errs) > 0 {
					problems = append(problems, newProblem("Service annotations: "+errs.ToAggregate().Error(), "%s: Service annotations: %v", where, errs.ToAggregate()))
				}
			}
			if resources > 256 {
				problems = append(problems, newProblem("too many resources", "%s: %d resources exceed status.resources (max 256)", where, resources))
			}
			for _, o := range out.Objects {
				if o.GetKind() == "" || o.GetAPIVersion() == "" {
					problems = append(problems, newProblem("object without apiVersion or kind", "%s: an object without apiVersion or kind: %q", where, o.GetName()))
				}
				if errs := validation.IsDNS1123Subdomain(o.GetName()); len(errs) > 0 {
					problems = append(problems, newProblem("generated object name: "+strings.Join(errs, "; "), "%s: %s name %q: %s", where, o.GetKind(), o.GetName(), strings.Join(errs, "; ")))
				}
				// The labels controllers/meshpolicy_apply.go puts on every generated object.
				labels := map[string]string{}
				for k, v := range o.GetLabels() {
					labels[k] = v
				}
				labels[policy.LabelPolicy] = p.Name
				labels["app.kubernetes.io/managed-by"] = "sluice"
				if errs := metav1validation.ValidateLabels(labels, field.NewPath("metadata", "labels")); len(errs) > 0 {
					problems = append(problems, newProblem("generated object labels: "+errs.ToAggregate().Error(), "%s: %s %q: %v", where, o.GetKind(), o.GetName(), errs.ToAggregate()))
				}
			}
			if out.Rules != nil {
				if _, err := json.Marshal(out.Rules); err != nil {
					problems = append(problems, newProblem("rule settings do not encode", "%s: rule settings do not encode: %v", where, err))
				}
			}
		}
	}
	return dedupe(problems)
}

func fieldListProblems(fields []meshv1alpha1.UnsupportedField, maxItems int) []string {
	var p []string
	if len(fields) > maxItems {
		p = append(p, fmt.Sprintf("%d entries (max %d)", len(fields), maxItems))
	}
	seen := map[string]bool{}
	for _, u := range fields {
		if seen[u.Field] {
			p = append(p, fmt.Sprintf("field %q listed twice (listMapKey)", u.Field))
		}
		seen[u.Field] = true
		if len(u.Field) > 256 || len(u.Reason) > 1024 || u.Field == "" {
			p = append(p, fmt.Sprintf("field %q (%d bytes) with a reason of %d bytes", u.Field, len(u.Field), len(u.Reason)))
		}
	}
	return p
}

// ---- seeds ----

// fuzzSeeds are the samples and a few more valid objects covering the fields the samples
// leave out. Each must be admitted as it is, or the fuzzing would start from broken ground.
func fuzzSeeds(t *testing.T, ctx context.Context, c client.Client, ns string) map[string][]fuzzSeed {
	t.Helper()
	typed := map[string][]client.Object{
		"Rollout": {
			sample(t, "rollout_canary", &meshv1alpha1.Rollout{}),
			sample(t, "rollout_bluegreen", &meshv1alpha1.Rollout{}),
			sample(t, "rollout_gamma", &meshv1alpha1.Rollout{}),
		},
		"HealthGate": {
			sample(t, "healthgate_success_rate", &meshv1alpha1.HealthGate{}),
			sample(t, "healthgate_latency", &meshv1alpha1.HealthGate{}),
		},
		"MeshPolicy": {
			sample(t, "meshpolicy_catalog", &meshv1alpha1.MeshPolicy{}),
			sample(t, "meshpolicy_payments", &meshv1alpha1.MeshPolicy{}),
		},
	}
	for _, doc := range extraRolloutSeeds {
		r := &meshv1alpha1.Rollout{}
		mustYAML(t, doc, r)
		typed["Rollout"] = append(typed["Rollout"], r)
	}
	for _, doc := range extraHealthGateSeeds {
		g := &meshv1alpha1.HealthGate{}
		mustYAML(t, doc, g)
		typed["HealthGate"] = append(typed["HealthGate"], g)
	}
	for _, doc := range extraMeshPolicySeeds {
		p := &meshv1alpha1.MeshPolicy{}
		mustYAML(t, doc, p)
		typed["MeshPolicy"] = append(typed["MeshPolicy"], p)
	}
	out := map[string][]fuzzSeed{}
	for _, kind := range fuzzKinds {
		for _, o := range typed[kind] {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
			if err != nil {
				t.Fatal(err)
			}
			spec, _ := m["spec"].(map[string]any)
			obj := map[string]any{"apiVersion": meshv1alpha1.GroupVersion.String(), "kind": kind, "spec": spec}
			u := &unstructured.Unstructured{Object: runtime.DeepCopyJSON(obj)}
			u.SetNamespace(ns)
			u.SetGenerateName("seed-")
			if err := c.Create(ctx, u, client.DryRunAll); err != nil {
				t.Fatalf("seed %s %s is not admitted: %v", kind, o.GetName(), err)
			}
			var paths []jsonPath
			walk(spec, jsonPath{"spec"}, &paths)
			out[kind] = append(out[kind], fuzzSeed{obj: obj, paths: paths})
		}
	}
	return out
}

var extraRolloutSeeds = []string{`
metadata: {name: web}
spec:
  targetRef: {name: web}
  service: {name: web-svc, port: 8080, targetPort: 8080}
  trafficRouting:
    gatewayAPI:
      parentRefs: [{name: edge, namespace: gateways, sectionName: https, port: 443}, {kind: Service, group: "", name: web-svc}]
      hostnames: ["*.example.com", web.example.com]
      probe: {mode: Required, address: "http://gateway.example:8080", path: /healthz}
  strategy:
    canary:
      stepWeight: 15
      maxWeight: 60
      match:
      - headers: [{name: x-canary, value: "1"}, {type: RegularExpression, name: x-user, value: "^beta-.*"}]
        queryParams: [{name: canary, value: "true"}]
      - cookies: [{name: flag, value: "on"}]
      mirror: {percent: 5}
      scaleDownDelay: 1m30s
  analysis:
    interval: 15s
    healthGates: [{name: success-rate}, {name: p99-latency}]
    failureLimit: 0
    minSamples: 10
    onUnreachable: Rollback
    maxHold: 1h
    inconclusiveLimit: 3
  progressDeadline: 30m
`, `
metadata: {name: bg}
spec:
  targetRef: {name: bg}
  service: {port: 80}
  trafficRouting: {gatewayAPI: {parentRefs: [{name: edge}], probe: {mode: Disabled}}}
  strategy: {blueGreen: {previewService: bg-preview, prePromotionChecks: 0, scaleDownDelay: 0s}}
`, `
metadata: {name: steps}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: steps}
  service: {port: 443, targetPort: https}
  trafficRouting: {gatewayAPI: {parentRefs: [{name: edge}], probe: {mode: BestEffort}}}
  strategy:
    canary:
      steps: [{setWeight: 0}, {pause: {duration: 10s}}, {setWeight: 25}, {pause: {}}]
  paused: true
`}

var extraHealthGateSeeds = []string{`
metadata: {name: custom}
spec:
  prometheus:
    addresses: ["https://prometheus.monitoring.svc:9090/prom", "http://prometheus-b.monitoring:9090"]
    timeout: 2s
  metrics:
  - name: error-ratio
    query: 'sum(rate(http_requests_total{namespace="{{ .Namespace }}",service=~"{{ .CanaryService }}|{{ .StableService }}",code=~"5..",revision="{{ .Revision }}"}[{{ .Window }}])) / sum(rate(http_requests_total{namespace="{{ .Namespace }}",service="{{ .CanaryService }}"}[{{ .Window }}]))'
    thresholdRange: {min: 0, max: 0.01}
    compareToStable: {maxDegradation: 0.5, direction: LowerIsBetter}
  - name: up
    query: 'scalar(min(up{service="{{ .Service }}"}))'
    thresholdRange: {min: 1}
  noData: Fail
  window: 2m
  interval: 1m
  target: {service: web, canaryService: web-b, stableService: web-a, revision: abc123, minSamples: 0}
`, `
metadata: {name: istio-p99}
spec:
  prometheus: {addresses: ["http://prometheus.istio-system:9090"]}
  dataPlane: istio
  metrics:
  - name: p99
    builtin: request-duration-p99
    thresholdRange: {max: 0.3}
    compareToStable: {maxDegradation: 0.2}
  - name: success
    builtin: request-success-rate
    thresholdRange: {min: 0.95}
  noData: Pass
  target: {service: reviews, stableService: reviews-a, minSamples: 20}
`}

var extraMeshPolicySeeds = []string{`
metadata: {name: gw}
spec:
  targetRefs: [{name: shop}]
  provider: gatewayAPI
  timeouts: {request: 5s}
  retries: {attempts: 2, perTryTimeout: 1s, retryOn: [5xx]}
`, `
metadata: {name: edge}
spec:
  targetRefs: [{name: shop}, {kind: Service, name: cart}]
  provider: traefik
  retries: {attempts: 3, retryOn: [connect-failure, 5xx]}
  circuitBreaker: {maxRequests: 100, outlierDetection: {consecutive5xx: 5, baseEjectionTime: 30s}}
  rateLimit: {requestsPerSecond: 10, burst: 20}
  loadBalancer: {algorithm: RoundRobin}
`, `
metadata: {name: ld}
spec:
  targetRefs: [{name: books}]
  provider: auto
  mtls: {mode: Strict}
  authorization:
    rules:
    - from: [{serviceAccount: shop/web}, {namespace: ops}]
      to: [{methods: [GET], paths: ["/books/*", /healthz]}]
    - from: [{namespace: monitoring}]
  timeouts: {request: 3s, idle: 30s}
  circuitBreaker: {maxConnections: 10, maxPendingRequests: 5, outlierDetection: {consecutive5xx: 3, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 30}}
  loadBalancer: {algorithm: ConsistentHash, consistentHash: {header: x-user}}
  locality: {preferClose: false}
`, `
metadata: {name: linkerd}
spec:
  targetRefs: [{name: books}]
  provider: linkerd
  mtls: {mode: Strict}
  authorization: {rules: [{from: [{serviceAccount: shop/web}], to: [{paths: [/books]}]}]}
  timeouts: {request: 3s}
  retries: {attempts: 2}
  loadBalancer: {algorithm: LeastRequest}
`, `
metadata: {name: consul}
spec:
  targetRefs: [{name: books}]
  provider: consul
  mtls: {mode: Strict}
  timeouts: {request: 3s, idle: 30s}
  retries: {attempts: 2, retryOn: [5xx]}
  circuitBreaker: {maxConnections: 10}
  rateLimit: {requestsPerSecond: 50}
  loadBalancer: {algorithm: ConsistentHash, consistentHash: {cookie: {name: sid, ttl: 10m}}}
  locality: {preferClose: true}
`}

// ---- generation ----

// jsonPath addresses a value in an object: string keys and int indexes.
type jsonPath []any

// walk lists the paths of v and of everything in it, map keys in sorted order (the order
// must not depend on map iteration, or a seed would not replay).
func walk(v any, p jsonPath, out *[]jsonPath) {
	*out = append(*out, append(jsonPath{}, p...))
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			walk(x[k], append(p, k), out)
		}
	case []any:
		for i, e := range x {
			walk(e, append(p, i), out)
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// lookup is the value at p, nil where there is none.
func lookup(v any, p jsonPath) any {
	for _, k := range p {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// assign sets the value at p and returns the new cur; with create, missing map keys are made
// and an index one past a list's end appends.
func assign(cur any, p jsonPath, v any, create bool) (any, bool) {
	if len(p) == 0 {
		return v, true
	}
	switch k := p[0].(type) {
	case string:
		m, ok := cur.(map[string]any)
		if !ok {
			if cur != nil || !create {
				return cur, false
			}
			m = map[string]any{}
		}
		child, exists := m[k]
		if !exists && !create && len(p) > 1 {
			return cur, false
		}
		nv, ok := assign(child, p[1:], v, create)
		if !ok {
			return cur, false
		}
		m[k] = nv
		return m, true
	case int:
		l, ok := cur.([]any)
		if !ok {
			return cur, false
		}
		switch {
		case k < len(l):
			nv, ok := assign(l[k], p[1:], v, create)
			if !ok {
				return cur, false
			}
			l[k] = nv
			return l, true
		case k == len(l) && create:
			nv, ok := assign(nil, p[1:], v, create)
			if !ok {
				return cur, false
			}
			return append(l, nv), true
		}
	}
	return cur, false
}

// remove deletes the map key or list item at p and returns the new cur.
func remove(cur any, p jsonPath) any {
	if len(p) == 0 {
		return cur
	}
	switch k := p[0].(type) {
	case string:
		m, ok := cur.(map[string]any)
		if !ok {
			return cur
		}
		if len(p) == 1 {
			delete(m, k)
		} else if child, ok := m[k]; ok {
			m[k] = remove(child, p[1:])
		}
		return m
	case int:
		l, ok := cur.([]any)
		if !ok || k >= len(l) {
			return cur
		}
		if len(p) == 1 {
			return append(append([]any{}, l[:k]...), l[k+1:]...)
		}
		l[k] = remove(l[k], p[1:])
		return l
	}
	return cur
}

// gen makes one object: a seed and a few mutations, all drawn from r.
type gen struct {
	r     *rand.Rand
	seeds []fuzzSeed
}

func (g *gen) object(kind, ns string) *unstructured.Unstructured {
	for attempt := 0; ; attempt++ {
		s := g.seeds[g.r.IntN(len(g.seeds))]
		obj := runtime.DeepCopyJSON(s.obj)
		obj["metadata"] = map[string]any{"namespace": ns, "generateName": "fuzz-"}
		var n int
		switch x := g.r.IntN(100); {
		case x < 6:
			n = 0
		case x < 50:
			n = 1
		case x < 75:
			n = 2
		case x < 90:
			n = 3
		default:
			n = 4 + g.r.IntN(6)
		}
		for range n {
			g.mutate(obj)
		}
		obj["apiVersion"], obj["kind"] = meshv1alpha1.GroupVersion.String(), kind
		md, _ := obj["metadata"].(map[string]any)
		md["namespace"] = ns
		if data, err := json.Marshal(obj); err == nil && (len(data) <= fuzzMaxBytes || attempt >= 8) {
			if len(data) > fuzzMaxBytes {
				obj = runtime.DeepCopyJSON(s.obj)
				obj["apiVersion"], obj["kind"] = meshv1alpha1.GroupVersion.String(), kind
				obj["metadata"] = map[string]any{"namespace": ns, "generateName": "fuzz-"}
			}
			return &unstructured.Unstructured{Object: obj}
		}
	}
}

func (g *gen) mutate(obj map[string]any) {
	switch x := g.r.IntN(100); {
	case x < 8:
		g.mutateMetadata(obj)
		return
	case x < 22:
		g.graft(obj)
		return
	}
	var paths []jsonPath
	walk(obj["spec"], jsonPath{"spec"}, &paths)
	p := paths[g.r.IntN(len(paths))]
	cur := lookup(obj, p)
	switch x := g.r.IntN(10); {
	case x < 2 && len(p) > 1:
		remove(obj, p)
	case x < 3:
		assign(obj, p, g.anyValue(0), false)
	default:
		assign(obj, p, g.like(cur, keyOf(p)), false)
	}
}

// keyOf is the name of the field at p (for a list item, the list's).
func keyOf(p jsonPath) string {
	for i := len(p) - 1; i >= 0; i-- {
		if s, ok := p[i].(string); ok {
			return s
		}
	}
	return ""
}

// graft copies a value from another seed of the kind to the same place, so that fields meet
// that no single seed combines (canary and blueGreen, httpRouteRef and parentRefs, ...).
func (g *gen) graft(obj map[string]any) {
	s := g.seeds[g.r.IntN(len(g.seeds))]
	p := s.paths[g.r.IntN(len(s.paths))]
	if len(p) < 2 {
		return
	}
	v := lookup(s.obj, p)
	assign(obj, p, runtime.DeepCopyJSONValue(v), true)
}

func (g *gen) mutateMetadata(obj map[string]any) {
	md, _ := obj["metadata"].(map[string]any)
	switch g.r.IntN(4) {
	case 0, 1:
		delete(md, "generateName")
		md["name"] = g.objectName()
	case 2:
		md["labels"] = map[string]any{g.pick("app", "a/b", "sluice.dev/x", "-x", strings.Repeat("k", 64)): g.pick("", "v", strings.Repeat("v", 63), strings.Repeat("v", 64), "a b")}
	default:
		size := []int{10, 1000, 100_000, 300_000}[g.r.IntN(4)]
		md["annotations"] = map[string]any{"fuzz.sluice.dev/note": strings.Repeat("n", size)}
	}
}

func (g *gen) objectName() string {
	switch g.r.IntN(8) {
	case 0:
		return g.pick("", "a", "A", "web.v2", "1web", "web_1", "-web", "web-", "a..b", "a.b.c", "ünï", "web/1")
	case 1, 2:
		return dnsName(g.r, []int{60, 61, 62, 63, 64}[g.r.IntN(5)], false)
	case 3, 4:
		return dnsName(g.r, 64+g.r.IntN(190), g.r.IntN(2) == 0)
	case 5:
		return dnsName(g.r, 253+g.r.IntN(3), true)
	}
	return dnsName(g.r, 1+g.r.IntN(20), false)
}

// like returns a value of the same JSON type as cur, drawn for the field key.
func (g *gen) like(cur any, key string) any {
	switch v := cur.(type) {
	case string:
		return g.str(key, v)
	case int64:
		if key == "targetPort" && g.r.IntN(2) == 0 {
			return g.str(key, "")
		}
		return g.integer()
	case float64:
		if g.r.IntN(3) == 0 {
			return g.integer()
		}
		return g.float()
	case bool:
		if g.r.IntN(4) == 0 {
			return g.pick("true", "false", "yes")
		}
		return !v
	case []any:
		return g.list(v, key)
	case map[string]any:
		return g.mapValue(v)
	}
	return g.anyValue(0)
}

func (g *gen) list(l []any, key string) any {
	switch g.r.IntN(6) {
	case 0:
		return []any{}
	case 1: // duplicates: the same name twice, the same set member twice
		if len(l) == 0 {
			return l
		}
		e := l[g.r.IntN(len(l))]
		return append(append([]any{}, l...), runtime.DeepCopyJSONValue(e))
	case 2: // long: past every MaxItems
		if len(l) == 0 {
			return []any{g.anyValue(0)}
		}
		n := []int{5, 9, 17, 33, 129, 300}[g.r.IntN(6)]
		out := make([]any, 0, n)
		for i := range n {
			e := runtime.DeepCopyJSONValue(l[i%len(l)])
			if m, ok := e.(map[string]any); ok {
				if _, named := m["name"]; named && g.r.IntN(2) == 0 {
					m["name"] = fmt.Sprintf("n%d", i)
				}
			}
			out = append(out, e)
		}
		return out
	case 3: // one more element, itself mutated
		if len(l) == 0 {
			return []any{g.str(key, "")}
		}
		e := runtime.DeepCopyJSONValue(l[g.r.IntN(len(l))])
		return append(append([]any{}, l...), g.like(e, key))
	case 4:
		if len(l) > 1 {
			return l[:1]
		}
		return []any{nil}
	}
	return []any{g.anyValue(0), g.anyValue(0)}
}

func (g *gen) mapValue(m map[string]any) any {
	switch g.r.IntN(5) {
	case 0:
		return map[string]any{}
	case 1: // unknown fields are pruned; a name differing only in case must not slip through
		k := g.pick("unknown", "x-fuzz", "Name", "PORT", "metadata", "status", "$ref", "")
		if keys := sortedKeys(m); len(keys) > 0 && g.r.IntN(2) == 0 {
			if known := keys[g.r.IntN(len(keys))]; known != "" {
				k = strings.ToUpper(known[:1]) + known[1:]
			}
		}
		m[k] = g.anyValue(0)
		return m
	case 2:
		if keys := sortedKeys(m); len(keys) > 0 {
			delete(m, keys[g.r.IntN(len(keys))])
		}
		return m
	case 3:
		return g.deep(1 + g.r.IntN(64))
	}
	return nil
}

// anyValue is a value of any JSON type: where the schema wants another, the answer must still
// be a rejection naming the field.
func (g *gen) anyValue(depth int) any {
	switch g.r.IntN(9) {
	case 0:
		return g.general()
	case 1:
		return g.integer()
	case 2:
		return g.float()
	case 3:
		return g.r.IntN(2) == 0
	case 4:
		return nil
	case 5:
		if depth > 3 {
			return []any{}
		}
		return []any{g.anyValue(depth + 1), g.anyValue(depth + 1)}
	case 6:
		if depth > 3 {
			return map[string]any{}
		}
		return map[string]any{"a": g.anyValue(depth + 1), "name": g.general()}
	case 7:
		return g.deep(1 + g.r.IntN(100))
	}
	return g.str("", "")
}

// deep nests maps and lists depth levels deep.
func (g *gen) deep(depth int) any {
	var v any = "leaf"
	for i := range depth {
		if i%2 == 0 {
			v = map[string]any{"a": v}
		} else {
			v = []any{v}
		}
	}
	return v
}

func (g *gen) integer() int64 {
	if g.r.IntN(3) == 0 {
		return g.r.Int64N(300) - 50
	}
	return []int64{0, -1, 1, 2, 8, 9, 16, 17, 32, 33, 99, 100, 101, 1000, 1001, 65535, 65536, 1e9, 1e9 + 1,
		math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MinInt32 - 1, math.MaxInt64, math.MinInt64}[g.r.IntN(25)]
}

func (g *gen) float() float64 {
	if g.r.IntN(3) == 0 {
		return g.r.Float64()*20 - 5
	}
	return []float64{0, 0.5, -0.5, 1, 10, 10.000001, 1e-300, 5e-324, 1e308, -1e308, math.MaxFloat64, 0.1 + 0.2, 2.5}[g.r.IntN(13)]
}

func (g *gen) pick(vs ...string) string { return vs[g.r.IntN(len(vs))] }

var durationFields = map[string]bool{"progressDeadline": true, "scaleDownDelay": true, "duration": true, "interval": true, "maxHold": true,
	"timeout": true, "window": true, "request": true, "idle": true, "perTryTimeout": true, "baseEjectionTime": true, "ttl": true}

var nameFields = map[string]bool{"name": true, "previewService": true, "service": true, "canaryService": true, "stableService": true,
	"namespace": true, "sectionName": true, "header": true, "revision": true}

var enumValues = []string{"Deployment", "apps/v1", "Gateway", "Service", "Exact", "RegularExpression", "Required", "BestEffort", "Disabled",
	"Hold", "Rollback", "traefik", "istio", "linkerd", "envoy", "nginx", "request-success-rate", "request-duration-p99", "Inconclusive",
	"Fail", "Pass", "HigherIsBetter", "LowerIsBetter", "auto", "gatewayAPI", "consul", "Strict", "Permissive", "GET", "POST", "PATCH",
	"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream", "RoundRobin", "LeastRequest", "Random",
	"ConsistentHash", "gateway.networking.k8s.io", "", "Unknown", "apps/v2", "v1", "Deployment ", "exact"}

func (g *gen) str(key, cur string) string {
	if g.r.IntN(4) == 0 {
		return g.general()
	}
	if cur != "" && g.r.IntN(3) == 0 {
		return g.edit(cur)
	}
	switch {
	case durationFields[key]:
		return g.duration()
	case key == "query":
		return g.query()
	case key == "addresses" || key == "address":
		return g.url()
	case key == "hostnames":
		return g.pick("*", "*.example.com", "**.example.com", "a.*.com", "EXAMPLE.com", "example.com.", "-a.com", "a..b", "localhost", "1.2.3.4",
			dnsName(g.r, 253, true), dnsName(g.r, 254, true))
	case key == "paths" || key == "path":
		return g.pick("", "/", "/api/*", "/*", "/**", "/a*b", "api", "/a b", "/%2F", "/%2f", "//", "/a//b", "/./", "/../", "/a/..", "/a/.", "/a?b",
			"/a#b", "/"+strings.Repeat("p", 1023), "/"+strings.Repeat("p", 1024), "/~user/$x;y=z@w")
	case key == "value":
		return g.pick("", " ", "a;b", "a,b", `"q"`, "\r\nX-Injected: 1", "☃", strings.Repeat("v", 4096), strings.Repeat("v", 4097),
			"^(a+)+$", "[", "(?i)beta", "a b")
	case key == "serviceAccount":
		return g.pick("ns/name", "ns/", "/name", "a/b/c", "NS/Name", "ns/name.with.dots", "ns/-x", dnsName(g.r, 63, false)+"/"+dnsName(g.r, 253, true))
	case key == "targetPort":
		return g.pick("http", "123", "a--b", "HTTP", "abcdefghijklmnop", "abcdefghijklmno", "-a", "a-", "0", "", "h_p")
	case nameFields[key]:
		return g.objectName()
	case key == "kind" || key == "apiVersion" || key == "mode" || key == "type" || key == "algorithm" || key == "provider" ||
		key == "dataPlane" || key == "builtin" || key == "noData" || key == "onUnreachable" || key == "direction" || key == "group" ||
		key == "methods" || key == "retryOn":
		if cur != "" && g.r.IntN(3) == 0 {
			return g.pick(strings.ToLower(cur), strings.ToUpper(cur), cur+" ", " "+cur)
		}
		return enumValues[g.r.IntN(len(enumValues))]
	}
	return g.general()
}

// edit changes a valid value a little: most bugs sit next to a valid value.
func (g *gen) edit(cur string) string {
	switch g.r.IntN(5) {
	case 0:
		i := g.r.IntN(len(cur) + 1)
		return cur[:i] + g.pick(".", "-", "_", " ", "A", "\n", "é", "{", "}", `"`, "/", "*", "\x00") + cur[i:]
	case 1:
		return cur + cur
	case 2: // grow to a length at a bound
		n := boundaryLengths[g.r.IntN(len(boundaryLengths))]
		if n <= len(cur) {
			return cur[:n]
		}
		return cur + strings.Repeat(cur[len(cur)-1:], n-len(cur))
	case 3:
		return strings.ToUpper(cur)
	}
	return cur[:g.r.IntN(len(cur))]
}

var boundaryLengths = []int{15, 16, 32, 33, 61, 62, 63, 64, 253, 254, 256, 257, 317, 318, 1024, 1025, 2048, 2049, 4096, 4097, 8192, 8193}

func (g *gen) general() string {
	switch g.r.IntN(4) {
	case 0: // huge
		n := []int{256, 1024, 4096, 10240, 1 + g.r.IntN(10240)}[g.r.IntN(5)]
		return g.randomString(n)
	case 1:
		return dnsName(g.r, boundaryLengths[g.r.IntN(len(boundaryLengths))], g.r.IntN(2) == 0)
	}
	return g.pick("", " ", "\x00", "\t", "\n", "\r\n", "\x7f", "\u00a0", "\u200b", "\u202eevil", "e\u0301", "日本語", "🙂", "\U0010FFFF",
		"\ufffd", "null", "true", "0", "-1", "{}", "[]", "${HOME}", "$(id)", "<script>", "'", `"`, `\`, "{{ .Service }}", "%s%n")
}

// randomString mixes ASCII, other scripts, control characters and emoji.
func (g *gen) randomString(n int) string {
	var b strings.Builder
	for b.Len() < n {
		switch g.r.IntN(8) {
		case 0:
			b.WriteRune(rune(g.r.IntN(0x20)))
		case 1:
			b.WriteRune(rune(0x80 + g.r.IntN(0x2000)))
		case 2:
			b.WriteRune(rune(0x1F300 + g.r.IntN(0x300)))
		default:
			b.WriteByte(byte(0x20 + g.r.IntN(0x5f)))
		}
	}
	return b.String()
}

func (g *gen) duration() string {
	switch g.r.IntN(6) {
	case 0:
		return strings.Repeat("1h", 16+g.r.IntN(2)) // at and past MaxLength 32
	case 1:
		return strconv.Itoa(g.r.IntN(100000)) + g.pick("ms", "s", "m", "h")
	}
	return g.pick("", "-1s", "1e9h", "5", "0", "0s", "0ms", "1ns", "1us", "1µs", "999ms", "1s", "10s", "9s", "99ms", "100ms", "5m", "5m1ms",
		"1h1h", "1.5h", "0.5s", ".5s", "5.s", "PT5S", " 5s", "5s ", "5 s", "2562047h", "2562048h", "9223372036854775807ns", "99999999999999999999h",
		"1h2m3s4ms", "00000000000000000000000000001s", "000000000000000000000000000001s", "1d", "1w", "-0s", "+5s", "5S", "NaN", "1e3s")
}

func (g *gen) url() string {
	return g.pick("", "http://", "https://", "http://prom:9090", "https://prom.monitoring.svc:9090/", "http://[::1]:9090", "http://[::1",
		"http://10.0.0.1", "http://169.254.169.254/latest", "http://user:pass@prom:9090", "https://prom:99999", "http://prom:-1", "http://%zz",
		"ftp://prom", "file:///etc/passwd", "http:///path", "http://a b", "HTTP://PROM", "http://prom/"+strings.Repeat("p", 2040), "prom:9090",
		"//prom", "http://prom?x=1#f", "unix:///var/run/x.sock", "http://0", "http://ü.example", "http://prom:9090/\x00", "https://[fe80::1%25eth0]:9090")
}

func (g *gen) query() string {
	switch g.r.IntN(8) {
	case 0:
		n := 1 + g.r.IntN(4000)
		return strings.Repeat("(", n) + "1" + strings.Repeat(")", n)
	case 1:
		return "sum(x{" + strings.Repeat(`a="{{ .Service }}",`, 1+g.r.IntN(400)) + "})"
	case 2:
		return strings.Repeat("-", 1+g.r.IntN(8000)) + "1"
	}
	return g.pick("up", "sum(up)", "up[5m]", "1", "-1", "NaN", "{{ .Service }}", "{{", "}}", "{{ .Svc }}", `{{ define "x" }}{{ end }}`,
		`{{ template "x" }}`, `{{ .Service | printf "%s" }}`, `{{ if .Service }}x{{ end }}`, `rate(x{service="{{ .Service }}"}[{{ .Window }}])`,
		`sum(rate(x{service="{{ .Service }}"}[{{ .Window }}]))`, `x{service="{{ .Service }}"} offset {{ .Window }}`, `x{service=~"{{ .Service }}.*"}`,
		`x{service=~"\\{{ .Service }}"}`, `x{service='{{ .Service }}'}`, "x{service=`{{ .Service }}`}", `x{ {{ .Service }}="a"}`, `vector({{ .Window }})`,
		`# {{ .Service }}`, `label_replace(up, "a", "{{ .Service }}", "b", ".*")`, `x @ start()`, `x[1m:10s]`, `histogram_quantile(0.99, x)`,
		`{{/* c */}}up`, `{{- .Service -}}`, `x{a="{{ .Service }}{{ .Revision }}"}`, `x{a="{{ .Service }}☃"}`, `sum by (le) (x)`, `1 / 0`,
		`x{a="{{ .Window }}"}[{{ .Window }}]`, `{{ .Window }}`, `x{service="{{.Service}}"} and on() vector(1)`, `x{a=""}`, `{__name__=~".+"}`)
}

// dnsName is a lowercase DNS-style name of exactly n characters (with dots: a subdomain).
func dnsName(r *rand.Rand, n int, dots bool) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		switch {
		case i == 0 || i == n-1:
			b[i] = letters[r.IntN(26)]
		case dots && i%20 == 0 && b[i-1] != '.' && b[i-1] != '-':
			b[i] = '.'
		case b[i-1] != '.' && r.IntN(8) == 0:
			b[i] = '-'
		default:
			b[i] = letters[r.IntN(len(letters))]
		}
		if i > 0 && b[i] == '.' && b[i-1] == '-' {
			b[i-1] = 'x'
		}
		if i == n-1 && i > 0 && b[i-1] == '.' {
			b[i-1] = 'y'
		}
	}
	return string(b)
}

// ---- statistics and findings ----

type fuzzStats struct {
	mu       sync.Mutex
	counts   map[string]*[4]int
	webhooks map[string]int
	slowest  time.Duration
	slowIdx  []int
	findings map[string]map[string]*finding // class -> signature -> first example
	notes    map[string]map[string]int
	infos    map[string]int
}

type finding struct {
	count  int
	index  int
	detail string
	object string
}

func newFuzzStats() *fuzzStats {
	s := &fuzzStats{counts: map[string]*[4]int{}, webhooks: map[string]int{}, findings: map[string]map[string]*finding{}, notes: map[string]map[string]int{}, infos: map[string]int{}}
	for _, k := range fuzzKinds {
		s.counts[k] = &[4]int{}
	}
	return s
}

func (s *fuzzStats) count(kind string, o fuzzOutcome, webhook string, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts[kind]
	if c == nil {
		c = &[4]int{}
		s.counts[kind] = c
	}
	c[o]++
	if webhook != "" {
		s.webhooks[kind+" "+webhook]++
	}
	s.slowest = max(s.slowest, took)
}

var (
	quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	digits = regexp.MustCompile(`[0-9]+`)
)

// signature groups findings that differ only in values.
func signature(detail string) string {
	sig := digits.ReplaceAllString(quoted.ReplaceAllString(detail, `"…"`), "0")
	if len(sig) > 240 {
		sig = sig[:240]
	}
	return sig
}

func (s *fuzzStats) fail(class string, index int, p problem, obj *unstructured.Unstructured) {
	sig, detail := signature(p.key), p.detail
	s.mu.Lock()
	defer s.mu.Unlock()
	byClass := s.findings[class]
	if byClass == nil {
		byClass = map[string]*finding{}
		s.findings[class] = byClass
	}
	if f := byClass[sig]; f != nil {
		f.count++
		if index < f.index {
			f.index, f.detail = index, detail
			f.object = abbreviated(obj)
		}
		return
	}
	byClass[sig] = &finding{count: 1, index: index, detail: detail, object: abbreviated(obj)}
}

// slow records a case whose request took fuzzSlowRequest or more.
func (s *fuzzStats) slow(index int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowIdx = append(s.slowIdx, index)
}

// slowCases lists the first slow cases, for a fail-open finding.
func (s *fuzzStats) slowCases() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]int{}, s.slowIdx...)
	sort.Ints(out)
	return out[:min(len(out), fuzzExamples)]
}

func (s *fuzzStats) note(what, detail string) {
	sig := signature(detail)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notes[what] == nil {
		s.notes[what] = map[string]int{}
	}
	s.notes[what][sig]++
}

func (s *fuzzStats) info(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.infos[what]++
}

func (s *fuzzStats) report(t *testing.T, seed uint64, n int, elapsed time.Duration) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d objects in %s (seed %#x, %d workers, slowest request %s)\n\n", n, elapsed.Round(time.Second), seed, fuzzWorkers, s.slowest.Round(time.Millisecond))
	b.WriteString("| Kind | " + strings.Join(fuzzOutcomeNames, " | ") + " |\n|---|---:|---:|---:|---:|\n")
	var total [4]int
	for _, k := range fuzzKinds {
		c := s.counts[k]
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", k, c[0], c[1], c[2], c[3])
		for i := range total {
			total[i] += c[i]
		}
	}
	fmt.Fprintf(&b, "| all | %d | %d | %d | %d |\n\nDenials by webhook:\n", total[0], total[1], total[2], total[3])
	for _, k := range sortedKeys(anyMap(s.webhooks)) {
		fmt.Fprintf(&b, "  %s: %d\n", k, s.webhooks[k])
	}
	for what, sigs := range s.notes {
		total := 0
		for _, c := range sigs {
			total += c
		}
		fmt.Fprintf(&b, "Note, not a failure: %s: %d times, %d kinds\n", what, total, len(sigs))
	}
	for _, k := range sortedKeys(anyMap(s.infos)) {
		fmt.Fprintf(&b, "%s: %d\n", k, s.infos[k])
	}
	t.Log("\n" + b.String())

	classes := make([]string, 0, len(s.findings))
	for c := range s.findings {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for _, class := range classes {
		fs := make([]*finding, 0, len(s.findings[class]))
		total := 0
		for _, f := range s.findings[class] {
			fs = append(fs, f)
			total += f.count
		}
		sort.Slice(fs, func(i, j int) bool {
			return fs[i].count > fs[j].count || (fs[i].count == fs[j].count && fs[i].index < fs[j].index)
		})
		var m strings.Builder
		fmt.Fprintf(&m, "%s: %d objects, %d distinct kinds of finding (seed %#x)", class, total, len(fs), seed)
		for i, f := range fs {
			if i == fuzzExamples {
				fmt.Fprintf(&m, "\n... and %d more kinds", len(fs)-i)
				break
			}
			fmt.Fprintf(&m, "\n--- %d× e.g. case %d (SLUICE_FUZZ_SEED=%#x SLUICE_FUZZ_CASE=%d): %s", f.count, f.index, seed, f.index, f.detail)
			if f.object != "" {
				fmt.Fprintf(&m, "\n%s", f.object)
			}
		}
		t.Error(m.String())
	}
}

func anyMap(m map[string]int) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// abbreviated is the object as JSON with long strings and lists cut, so that a report stays
// readable; SLUICE_FUZZ_CASE prints it whole.
func abbreviated(obj *unstructured.Unstructured) string {
	if obj == nil {
		return ""
	}
	var cut func(v any, depth int) any
	cut = func(v any, depth int) any {
		if depth > 8 {
			if _, scalar := v.(string); !scalar {
				return "…(nested deeper)"
			}
		}
		switch x := v.(type) {
		case string:
			if r := []rune(x); len(r) > 100 {
				return string(r[:60]) + fmt.Sprintf("…(%d bytes)", len(x))
			}
		case []any:
			out := []any{}
			for i, e := range x {
				if i == 10 {
					out = append(out, fmt.Sprintf("…(%d items)", len(x)))
					break
				}
				out = append(out, cut(e, depth+1))
			}
			return out
		case map[string]any:
			out := map[string]any{}
			for k, e := range x {
				out[k] = cut(e, depth+1)
			}
			return out
		}
		return v
	}
	data, err := json.MarshalIndent(cut(obj.Object, 0), "    ", "  ")
	if err != nil {
		return fmt.Sprintf("    (%v)", err)
	}
	return "    " + string(data)
}

// ---- small helpers ----

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ptrOr(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// dedupe keeps one problem per key: the same gap found by several providers or inputs is one.
func dedupe(items []problem) []problem {
	seen := map[string]bool{}
	var out []problem
	for _, p := range items {
		if k := signature(p.key); !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}
