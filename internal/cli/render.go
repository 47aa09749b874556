package cli

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/rollout"
)

// maxPods bounds the pods listed under one slot; the rest are counted.
const maxPods = 8

// tree draws a Rollout: its state as labelled lines, then its slots (stable first) with their
// pods. Pure: same view and time, same text.
func tree(v *rolloutView, now time.Time, s style) []string {
	ro := v.ro
	t := &treeWriter{s: s}
	head := s.paint(bold, fmt.Sprintf("Rollout %s/%s", ro.Namespace, ro.Name)) + "  " + s.phase(ro.Status.Phase)
	if ro.DeletionTimestamp != nil {
		head += "  " + s.paint(yellow, "being deleted: traffic goes back to the target Deployment")
	}
	if ro.Status.ObservedGeneration != ro.Generation && ro.Status.Phase != "" {
		head += "  " + s.paint(faint, fmt.Sprintf("(generation %d not yet observed)", ro.Generation))
	}
	t.lines = append(t.lines, head)

	t.field("Strategy", strategyLine(v, s))
	t.field("Weight", weightLine(v, s))
	t.field("Autoscaler", autoscalerLine(ro, s))
	t.fields("Images", imageLines(v))
	t.fields("Gates", gateLines(v, now, s))
	t.fields("Hold", holdLines(v, now, s))
	t.field(conditionLine(ro, s))
	if ro.Status.ScaleDownTime != nil {
		t.field("Scale down", fmt.Sprintf("slot %s %s", stableSlot(ro).Other(), scaleDownWhen(ro.Status.ScaleDownTime.Time, now)))
	}
	t.field("Last action", actionLine(ro, now, s))
	if h := ro.Status.History; len(h) > 0 {
		t.field("Last release", releaseLine(h[0], now, s))
	}

	slotsShown := slotOrder(v)
	for i, slot := range slotsShown {
		t.slot(v, slot, i == len(slotsShown)-1)
	}
	return t.lines
}

// treeWriter collects the lines of one tree.
type treeWriter struct {
	s     style
	lines []string
}

const labelWidth = 14

func (t *treeWriter) field(label, value string) { t.fields(label, []string{value}) }

// fields writes a labelled value over one or more lines; nothing for no value.
func (t *treeWriter) fields(label string, values []string) {
	for i, v := range values {
		if v == "" {
			continue
		}
		l := ""
		if i == 0 {
			l = label
		}
		t.lines = append(t.lines, "│ "+padRight(t.s.paint(faint, l), labelWidth)+v)
	}
}

func (t *treeWriter) slot(v *rolloutView, slot meshv1alpha1.Slot, last bool) {
	branch, indent := "├── ", "│   "
	if last {
		branch, indent = "└── ", "    "
	}
	sv := v.slots[slot]
	ro := v.ro
	name := ro.GetSlotDeploymentName(slot)
	role := slotRole(ro, slot)
	switch {
	case sv.err != nil:
		t.lines = append(t.lines, branch+fmt.Sprintf("slot %s  %s  Deployment %s: %s", slot, role, name, t.s.paint(red, errText(sv.err))))
		return
	case sv.deploy == nil:
		t.lines = append(t.lines, branch+fmt.Sprintf("slot %s  %s  Deployment %s does not exist yet", slot, role, name))
		return
	}
	d := sv.deploy
	rev := sv.revision()
	want := ptr.Deref(d.Spec.Replicas, 1)
	ready := fmt.Sprintf("%d/%d ready", d.Status.ReadyReplicas, want)
	if d.Status.ReadyReplicas < want {
		ready = t.s.paint(yellow, ready)
	}
	line := fmt.Sprintf("revision %s  %s  slot %s  Deployment %s  %s", orDash(rev), t.s.paint(roleColor(role), role), slot, name, ready)
	if w, ok := v.route.st.Weights[ro.GetSlotServiceName(slot)]; ok && v.route.err == nil && v.route.st.Found {
		line += fmt.Sprintf("  route weight %d", w)
	}
	if cfg := slotConfig(ro, slot); cfg != "" {
		line += "  config " + cfg
	}
	t.lines = append(t.lines, branch+line)
	if sv.podErr != nil {
		t.lines = append(t.lines, indent+"└── "+t.s.paint(red, "pods: "+errText(sv.podErr)))
		return
	}
	shown := sv.pods
	more := 0
	if len(shown) > maxPods {
		more, shown = len(shown)-maxPods, shown[:maxPods]
	}
	for i := range shown {
		b := "├── "
		if i == len(shown)-1 && more == 0 {
			b = "└── "
		}
		t.lines = append(t.lines, indent+b+podLine(&shown[i], rev, t.s))
	}
	if more > 0 {
		t.lines = append(t.lines, indent+fmt.Sprintf("└── … %d more pods", more))
	}
}

// slotOrder: the stable slot, then the other one when it has a Deployment or a release.
func slotOrder(v *rolloutView) []meshv1alpha1.Slot {
	stable := stableSlot(v.ro)
	out := []meshv1alpha1.Slot{stable}
	if other := v.slots[stable.Other()]; other.deploy != nil || other.err != nil || releaseActive(&v.ro.Status) {
		out = append(out, stable.Other())
	}
	return out
}

// slotRole names what a slot does now: stable, canary (preview in blue-green), or idle.
func slotRole(ro *meshv1alpha1.Rollout, slot meshv1alpha1.Slot) string {
	st := &ro.Status
	switch {
	case slot == stableSlot(ro):
		return "stable"
	case st.CanaryRevision != "" && st.Phase != meshv1alpha1.PhaseHealthy:
		if st.Phase == meshv1alpha1.PhaseRolledBack || st.Phase == meshv1alpha1.PhaseRollingBack {
			return "rolled back"
		}
		if ro.Spec.Strategy.BlueGreen != nil {
			return "preview"
		}
		return "canary"
	}
	return "idle"
}

func roleColor(role string) string {
	switch role {
	case "stable":
		return green
	case "canary", "preview":
		return cyan
	case "rolled back":
		return red
	}
	return faint
}

func podLine(p *corev1.Pod, slotRev string, s style) string {
	ready := false
	restarts := int32(0)
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		restarts += cs.RestartCount
	}
	phase := string(p.Status.Phase)
	if phase == "" {
		phase = "Pending"
	}
	if p.DeletionTimestamp != nil {
		phase = "Terminating"
	}
	readiness := s.paint(green, "ready")
	if !ready {
		readiness = s.paint(yellow, "not ready")
	}
	line := fmt.Sprintf("pod %s  %s  %s", p.Name, phase, readiness)
	if restarts > 0 {
		line += fmt.Sprintf("  %d restarts", restarts)
	}
	if rev := p.Labels[rollout.LabelRevision]; rev != "" && slotRev != "" && rev != slotRev {
		line += "  " + s.paint(faint, "old revision "+rev)
	}
	return line
}

// strategyLine: the strategy and where the release is in it.
func strategyLine(v *rolloutView, s style) string {
	ro := v.ro
	st := &ro.Status
	if bg := ro.Spec.Strategy.BlueGreen; bg != nil {
		line := "blue-green"
		if bg.AutoPromote {
			line += ", switches by itself"
		} else {
			line += ", switches on promote"
		}
		if need := bg.GetPrePromotionChecks(); need > 0 {
			passed := int32(0)
			if st.Analysis != nil && releaseActive(st) {
				passed = st.Analysis.StepPassed
			}
			line += fmt.Sprintf(", pre-promotion checks %d/%d", passed, need)
		}
		if bg.PreviewService != "" {
			line += ", preview Service " + bg.PreviewService
		}
		return line
	}
	steps := rollout.Steps(&ro.Spec)
	n := len(steps)
	if st.CurrentStep == nil || !releaseActive(st) {
		return fmt.Sprintf("canary, %d steps", n)
	}
	i := int(*st.CurrentStep)
	if i >= n {
		return fmt.Sprintf("canary, all %d steps done: promoting", n)
	}
	return fmt.Sprintf("canary, step %d/%d: %s", i+1, n, stepText(steps[i], st, s))
}

func stepText(step meshv1alpha1.CanaryStep, st *meshv1alpha1.RolloutStatus, s style) string {
	switch {
	case step.SetWeight != nil:
		return fmt.Sprintf("setWeight %d", *step.SetWeight)
	case step.Pause != nil && step.Pause.Duration != nil:
		text := "pause " + short(step.Pause.Duration.Duration)
		if st.StepStartTime != nil {
			text += " (until " + st.StepStartTime.Add(step.Pause.Duration.Duration).UTC().Format(time.TimeOnly) + " UTC)"
		}
		return text
	case step.Pause != nil:
		return s.paint(yellow, "pause until promoted")
	case step.Analysis != nil:
		passed := int32(0)
		if st.Analysis != nil {
			passed = st.Analysis.StepPassed
		}
		return fmt.Sprintf("analysis, %d of %d passing checks", passed, step.Analysis.Checks)
	}
	return "?"
}

// weightLine: the canary weight status asks for, and what the route carries.
func weightLine(v *rolloutView, s style) string {
	ro := v.ro
	desired := ro.Status.CanaryWeight
	line := fmt.Sprintf("%d%% on the canary", desired)
	rt := v.route
	switch {
	case rt.err != nil:
		return line + "; HTTPRoute " + rt.name + ": " + s.paint(red, errText(rt.err))
	case !rt.st.Found:
		return line + "; HTTPRoute " + rt.name + " " + s.paint(yellow, "does not exist")
	}
	canarySvc := ro.GetSlotServiceName(stableSlot(ro).Other())
	var parts []string
	total := int32(0)
	for _, name := range slices.Sorted(maps.Keys(rt.st.Weights)) {
		parts = append(parts, fmt.Sprintf("%s %d", name, rt.st.Weights[name]))
		total += rt.st.Weights[name]
	}
	actual := "0"
	if total > 0 {
		actual = strconv.FormatFloat(float64(rt.st.Weights[canarySvc])*100/float64(total), 'f', -1, 64)
	}
	routeText := fmt.Sprintf("route %s%%", actual)
	if actual != strconv.Itoa(int(desired)) {
		routeText = s.paint(yellow, routeText)
	}
	line += ", " + routeText + " (HTTPRoute " + rt.name
	if len(parts) > 0 {
		line += ": " + strings.Join(parts, ", ")
	}
	if rt.st.MirrorPercent > 0 {
		line += fmt.Sprintf(", mirror %d%%", rt.st.MirrorPercent)
	}
	if rt.st.Accepted {
		line += ", accepted)"
	} else {
		line += ", " + s.paint(yellow, "not accepted") + ")"
		if rt.st.Message != "" {
			line += ": " + rt.st.Message
		}
	}
	return line
}

// imageLines: the images of the stable and the canary revision.
func imageLines(v *rolloutView) []string {
	ro := v.ro
	stable := stableSlot(ro)
	var out []string
	if imgs := images(v, stable, ro.Status.StableRevision); imgs != "" {
		out = append(out, "stable  "+imgs)
	}
	if releaseActive(&ro.Status) || ro.Status.Phase == meshv1alpha1.PhaseRolledBack || ro.Status.Phase == meshv1alpha1.PhaseRollingBack {
		label := "canary  "
		if ro.Spec.Strategy.BlueGreen != nil {
			label = "preview "
		}
		if imgs := images(v, stable.Other(), ro.Status.CanaryRevision); imgs != "" {
			out = append(out, label+imgs)
		}
	}
	return out
}

// images lists name=image of the revision: from the slot running it, else from the target
// Deployment when that is the revision it asks for (a slot not yet updated).
func images(v *rolloutView, slot meshv1alpha1.Slot, rev string) string {
	var spec *corev1.PodSpec
	if sv := v.slots[slot]; sv.deploy != nil && (rev == "" || sv.revision() == rev) {
		spec = &sv.deploy.Spec.Template.Spec
	} else if v.target != nil && rev != "" && rollout.Revision(&v.target.Spec.Template) == rev {
		spec = &v.target.Spec.Template.Spec
	}
	if spec == nil {
		return ""
	}
	parts := make([]string, 0, len(spec.Containers))
	for _, c := range spec.Containers {
		parts = append(parts, c.Name+"="+c.Image)
	}
	return strings.Join(parts, ", ")
}

// gateLines: the last check and, per metric, its verdict and value against the threshold.
func gateLines(v *rolloutView, now time.Time, s style) []string {
	ro := v.ro
	if ro.Spec.Analysis == nil {
		return nil
	}
	a := ro.Status.Analysis
	if a == nil || a.LastCheck == nil {
		names := make([]string, 0, len(ro.Spec.Analysis.HealthGates))
		for _, g := range ro.Spec.Analysis.HealthGates {
			names = append(names, g.Name)
		}
		return []string{s.paint(faint, "no check yet in this release") + " (" + strings.Join(names, ", ") + ")"}
	}
	first := fmt.Sprintf("last check %s %s: passed %d, failed %d (limit %d), inconclusive %d, unreachable %d",
		s.verdict(a.Verdict), ago(now, a.LastCheck.Time), a.Passed, a.Failed, ro.Spec.Analysis.GetFailureLimit(), a.Inconclusive, a.Unreachable)
	out := []string{first}
	rows := make([][4]string, 0, len(a.Gates))
	for _, g := range a.Gates {
		rows = append(rows, [4]string{g.Gate + "/" + g.Name, s.verdict(g.Verdict), orDash(shortValue(g.Value)), threshold(v, g)})
	}
	var w [3]int
	for _, r := range rows {
		for i := range w {
			w[i] = max(w[i], visibleLen(r[i]))
		}
	}
	for i, r := range rows {
		line := "  " + padRight(r[0], w[0]) + "  " + padRight(r[1], w[1]) + "  " + padRight(r[2], w[2]) + "  " + r[3]
		if msg := a.Gates[i].Message; msg != "" && a.Gates[i].Verdict != meshv1alpha1.VerdictPass {
			line += "  " + s.paint(faint, msg)
		}
		out = append(out, strings.TrimRight(line, " "))
	}
	return out
}

// threshold says what a healthy value of the metric is, from its HealthGate's spec.
func threshold(v *rolloutView, g meshv1alpha1.GateMetricVerdict) string {
	gate, ok := v.gates[g.Gate]
	if !ok {
		if err := v.gateErrs[g.Gate]; err != nil {
			return "(HealthGate " + g.Gate + ": " + errText(err) + ")"
		}
		return ""
	}
	for i := range gate.Spec.Metrics {
		m := &gate.Spec.Metrics[i]
		if m.Name != g.Name {
			continue
		}
		var parts []string
		if r := m.ThresholdRange; r != nil {
			switch {
			case r.Min != nil && r.Max != nil:
				parts = append(parts, fmt.Sprintf("healthy %s to %s", num(*r.Min), num(*r.Max)))
			case r.Min != nil:
				parts = append(parts, "healthy >= "+num(*r.Min))
			case r.Max != nil:
				parts = append(parts, "healthy <= "+num(*r.Max))
			}
		}
		if c := m.CompareToStable; c != nil {
			parts = append(parts, fmt.Sprintf("at most %s%% worse than stable", num(c.MaxDegradation*100)))
		}
		return strings.Join(parts, ", ")
	}
	return "(metric not in HealthGate " + g.Gate + " any more)"
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

// holdLines: what keeps the weights where they are, if anything.
func holdLines(v *rolloutView, now time.Time, s style) []string {
	ro := v.ro
	st := &ro.Status
	var out []string
	if ro.Spec.Paused {
		out = append(out, s.paint(yellow, "paused by spec.paused")+" (set it to false to go on)")
	}
	if st.ManualPause {
		out = append(out, s.paint(yellow, "paused by the pause action")+" (kubectl sluice resume "+ro.Name+")")
	}
	if st.HoldStartTime != nil {
		maxHold := ro.Spec.Analysis.GetMaxHold()
		end := st.HoldStartTime.Add(maxHold)
		line := fmt.Sprintf("Prometheus unreachable since %s, weights frozen at %d%%", ago(now, st.HoldStartTime.Time), st.CanaryWeight)
		if now.Before(end) {
			line += fmt.Sprintf("; stalls %s (maxHold %s)", ago(now, end), short(maxHold))
		} else {
			line += fmt.Sprintf("; maxHold %s passed: stalled until it answers or someone acts", short(maxHold))
		}
		out = append(out, s.paint(yellow, line))
	}
	if c := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionStalled); c != nil && c.Status == metav1.ConditionTrue && c.Reason == rollout.ReasonInconclusiveLimit {
		out = append(out, s.paint(yellow, "no verdict from the gates: "+c.Message))
	}
	return out
}

// conditionLine: Stalled (needs a person), else what the release waits for, else Ready.
func conditionLine(ro *meshv1alpha1.Rollout, s style) (string, string) {
	c := ro.Status.Conditions
	if x := meta.FindStatusCondition(c, meshv1alpha1.ConditionStalled); x != nil && x.Status == metav1.ConditionTrue {
		return "Stalled", s.paint(red, x.Reason) + ": " + x.Message
	}
	if x := meta.FindStatusCondition(c, meshv1alpha1.ConditionReconciling); x != nil && x.Status == metav1.ConditionTrue {
		return "Waiting", s.paint(cyan, x.Reason) + ": " + x.Message
	}
	if x := meta.FindStatusCondition(c, meshv1alpha1.ConditionReady); x != nil {
		if x.Status == metav1.ConditionTrue {
			return "Ready", s.paint(green, x.Reason) + ": " + x.Message
		}
		return "Not ready", s.paint(yellow, x.Reason) + ": " + x.Message
	}
	return "Waiting", s.paint(faint, "no conditions yet: the manager has not reconciled this Rollout")
}

func scaleDownWhen(t, now time.Time) string {
	if t.After(now) {
		return "scales down " + ago(now, t)
	}
	return "is scaling down"
}

// actionLine: an action waiting for the manager, else the last one it took.
func actionLine(ro *meshv1alpha1.Rollout, now time.Time, s style) string {
	if a, ok := ro.Annotations[meshv1alpha1.AcceptedActionAnnotation]; ok {
		action, _, _ := strings.Cut(a, "/")
		return s.paint(yellow, action+" accepted by the manager, being applied")
	}
	if a, ok := ro.Annotations[meshv1alpha1.ActionAnnotation]; ok {
		return s.paint(yellow, a+" requested, not yet taken by the manager")
	}
	la := ro.Status.LastAction
	if la == nil {
		return ""
	}
	return fmt.Sprintf("%s %s", la.Action, ago(now, la.Time.Time))
}

func releaseLine(r meshv1alpha1.ReleaseRecord, now time.Time, s style) string {
	outcome := string(r.Outcome)
	switch r.Outcome {
	case meshv1alpha1.OutcomePromoted:
		outcome = s.paint(green, outcome)
	case meshv1alpha1.OutcomeRolledBack:
		outcome = s.paint(red, outcome)
		if r.AbortReason != "" {
			outcome += " (" + r.AbortReason + ")"
		}
	}
	return fmt.Sprintf("revision %s %s %s", r.Revision, outcome, ago(now, r.EndTime.Time))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// errText is an error on one line.
func errText(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// shortValue shows a gate's value with 4 significant digits (status keeps the full one).
func shortValue(v string) string {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return v
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}

// autoscalerLine says what drives the pod count: an HPA targeting the Rollout, or one that
// targets the Deployment and scales nothing ("" for neither).
func autoscalerLine(ro *meshv1alpha1.Rollout, s style) string {
	if c := meta.FindStatusCondition(ro.Status.Conditions, meshv1alpha1.ConditionAutoscaling); c != nil && c.Status == metav1.ConditionFalse {
		return s.paint(yellow, c.Message)
	}
	if ro.Status.Autoscaler == "" {
		return ""
	}
	return fmt.Sprintf("HorizontalPodAutoscaler %s: %d pods in the stable slot", ro.Status.Autoscaler, ptr.Deref(ro.Spec.Replicas, ro.Status.Replicas))
}

// slotConfig lists the config copies a slot runs (config tracking), from status.
func slotConfig(ro *meshv1alpha1.Rollout, slot meshv1alpha1.Slot) string {
	for _, st := range ro.Status.Slots {
		if st.Slot != slot {
			continue
		}
		var out []string
		for _, c := range st.Config {
			out = append(out, c.Copy)
		}
		return strings.Join(out, ", ")
	}
	return ""
}
