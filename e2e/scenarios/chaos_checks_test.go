package scenarios

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mesh/sluice/e2e/cluster"
	"github.com/sluice-mesh/sluice/e2e/load"
	"github.com/sluice-mesh/sluice/e2e/nodeagent"
)

// chaosRun is what TestChaosMeasured observed, and the checks and reports over it.
type chaosRun struct {
	t  *testing.T
	ns string
	// begin is when the releases and the chaos started: failures before are the warm-up's.
	begin    time.Time
	plan     []release
	outcomes []outcome
	actions  []cluster.ChaosAction
	results  []load.Result
	samples  []cluster.SplitSample
	history  []rolloutChange
	final    endState
	// access is Traefik's access log entry of each of our requests, by id (checkAccessLog).
	access map[string]cluster.AccessEntry
	// notes are timeline lines from the checks (violations), printed on failure.
	notes []rolloutChange
}

// violation fails the test with at most a few examples of one broken invariant.
func (r *chaosRun) violation(invariant string, examples []string, at []time.Time) {
	if len(examples) == 0 {
		return
	}
	for i, e := range examples[:min(len(examples), 20)] {
		r.notes = append(r.notes, rolloutChange{at: at[i], what: "VIOLATION " + invariant + ": " + e})
	}
	shown := examples[:min(len(examples), 10)]
	r.t.Errorf("%s: %d times, e.g.\n  %s", invariant, len(examples), strings.Join(shown, "\n  "))
}

// checkOutcomes: every bad release rolled back, every good one promoted, each as itself.
func (r *chaosRun) checkOutcomes() {
	for i, rel := range r.plan {
		if i >= len(r.outcomes) {
			r.t.Errorf("release %s never started: the one before did not end", rel)
			continue
		}
		o := r.outcomes[i]
		switch {
		case o.err != "":
			r.t.Errorf("release %s: %s", rel, o.err)
		case rel.bad && !o.rolledBack:
			r.t.Errorf("bad release %s was not rolled back (promoted: %v)", rel, o.promoted)
		case !rel.bad && !o.promoted:
			r.t.Errorf("good release %s was not promoted (rolled back: %v, reason %q)", rel, o.rolledBack, o.abortReason)
		}
	}
}

// checkAnswers: what the demo app said about itself in its answers.
func (r *chaosRun) checkAnswers() {
	var notReady, terminating []string
	var notReadyAt, terminatingAt []time.Time
	for _, res := range r.results {
		if res.App == nil {
			continue
		}
		desc := fmt.Sprintf("%s %s answered by pod %s (%s), %s", stamp(res.Start), res.ID, res.App.Pod, res.App.Version, r.blame(res.Start, res.End))
		if res.App.Terminating {
			terminating, terminatingAt = append(terminating, desc), append(terminatingAt, res.Start)
		} else if !res.App.Ready {
			notReady, notReadyAt = append(notReady, desc), append(notReadyAt, res.Start)
		}
	}
	r.violation("request answered by a pod that was not ready (X-Ready: false)", notReady, notReadyAt)
	r.violation("request answered by a terminating pod, of a slot being scaled down (X-Terminating: true)", terminating, terminatingAt)
}

// podLife is one pod as the node agent ran it.
type podLife struct {
	pod, ip                              string
	started, ready, terminating, stopped time.Time
}

func podLives(events []nodeagent.PodEvent) map[string][]*podLife {
	byUID := map[string]*podLife{}
	byIP := map[string][]*podLife{}
	for _, e := range events {
		l, ok := byUID[string(e.UID)]
		if !ok {
			l = &podLife{pod: e.Pod, ip: e.IP}
			byUID[string(e.UID)] = l
			byIP[e.IP] = append(byIP[e.IP], l)
		}
		first := func(t *time.Time) {
			if t.IsZero() {
				*t = e.Time
			}
		}
		switch e.Kind {
		case nodeagent.PodStarted:
			first(&l.started)
		case nodeagent.PodReady:
			first(&l.ready)
		case nodeagent.PodTerminating:
			first(&l.terminating)
		case nodeagent.PodStopped:
			first(&l.stopped)
		}
	}
	return byIP
}

// checkAccessLog: where Traefik sent each of our requests, failed ones included, against the
// node agent's record of the pod at that address at that moment.
func (r *chaosRun) checkAccessLog() {
	entries, skipped, err := cl.ReadAccessLog()
	if err != nil {
		r.t.Errorf("reading Traefik's access log: %v", err)
		return
	}
	ours := map[string]load.Result{}
	for _, res := range r.results {
		ours[res.ID] = res
	}
	lives := podLives(cl.Agent.PodEvents())
	var notReady, terminating, nobody []string
	var notReadyAt, terminatingAt, nobodyAt []time.Time
	r.access = map[string]cluster.AccessEntry{}
	for _, e := range entries {
		res, ok := ours[e.RequestID]
		if !ok {
			continue
		}
		r.access[e.RequestID] = e
		ip := e.BackendIP()
		if ip == "" {
			continue // Traefik had no server to send it to (counted by cause)
		}
		var l *podLife
		for _, c := range lives[ip] {
			if !c.started.After(e.Start) {
				l = c
			}
		}
		desc := fmt.Sprintf("%s %s sent to %s, answered %d (%s)", stamp(e.Start), e.RequestID, e.ServiceAddr, e.Status, res.Cause())
		switch {
		case l == nil:
			nobody, nobodyAt = append(nobody, desc+", no pod there"), append(nobodyAt, e.Start)
		case !l.terminating.IsZero() && !l.terminating.After(e.Start):
			terminating = append(terminating, fmt.Sprintf("%s: pod %s terminating since %s, %s", desc, l.pod, stamp(l.terminating), r.blame(e.Start, e.Start)))
			terminatingAt = append(terminatingAt, e.Start)
		case l.ready.IsZero() || l.ready.After(e.Start):
			notReady = append(notReady, fmt.Sprintf("%s: pod %s started %s, ready %s, %s", desc, l.pod, stamp(l.started), stamp(l.ready), r.blame(e.Start, e.Start)))
			notReadyAt = append(notReadyAt, e.Start)
		}
	}
	r.t.Logf("access log: %d of our %d requests logged by Traefik (the others found no Traefik running), %d unreadable lines", len(r.access), len(r.results), skipped)
	r.violation("request sent by Traefik to a pod not ready yet", notReady, notReadyAt)
	r.violation("request sent by Traefik to a terminating pod, of a slot being scaled down", terminating, terminatingAt)
	r.violation("request sent by Traefik to an address without a pod", nobody, nobodyAt)
}

// checkSplit: every look at the route and the slots during the run.
func (r *chaosRun) checkSplit() {
	var sums, under []string
	var sumsAt, underAt []time.Time
	for _, s := range r.samples {
		if len(s.Weights) > 0 && s.WeightSum() != 100 {
			sums, sumsAt = append(sums, fmt.Sprintf("%s weights %v (route generation %d)", stamp(s.Time), s.Weights, s.RouteGeneration)), append(sumsAt, s.Time)
		}
		for d, replicas := range s.Replicas {
			if w := s.Weights[d]; w > 0 && replicas == 0 {
				under = append(under, fmt.Sprintf("%s Deployment %s at 0 replicas while the route gives Service %s weight %d (generation %d), %s",
					stamp(s.Time), d, d, w, s.RouteGeneration, r.blame(s.Time, s.Time)))
				underAt = append(underAt, s.Time)
			}
		}
	}
	r.t.Logf("route: %d samples of the route and the slot Deployments (every 100 ms while the API server answered)", len(r.samples))
	r.violation("route weights not summing to 100", sums, sumsAt)
	r.violation("slot scaled to zero while the route still gives it traffic", under, underAt)
}

// checkEnd: one live revision, the right one, and the traffic after the end on it alone.
func (r *chaosRun) checkEnd(settledTotal int) {
	e := r.final
	if e.rollout == nil {
		return
	}
	if e.stableVersion != e.wantVersion {
		r.t.Errorf("at the end the stable slot %s runs %q, want %s (the last promoted release)", e.rollout.Status.StableSlot, e.stableVersion, e.wantVersion)
	}
	if e.sample.WeightSum() != 100 {
		r.t.Errorf("at the end the route's weights are %v", e.sample.Weights)
	}
	after := map[string]int{}
	for _, res := range r.results[min(settledTotal, len(r.results)):] {
		v := res.Cause()
		if res.App != nil {
			v += " from " + res.App.Version
		}
		after[v]++
	}
	if len(after) != 1 || after[load.CauseOK+" from "+e.wantVersion] == 0 {
		r.t.Errorf("traffic after the end: %v, want every request answered ok by %s", after, e.wantVersion)
	}
}

// blame names the chaos action whose window (kill to ready, plus chaosBlame) overlaps
// [from, to], the latest one when windows overlap, or "no chaos" ("before the releases" for
// the warm-up, while Traefik may not serve the new route yet).
func (r *chaosRun) blame(from, to time.Time) string {
	if to.Before(r.begin) {
		return "before the releases"
	}
	name := "no chaos"
	for _, a := range r.actions {
		start, end := a.Window(chaosBlame)
		if !to.Before(start) && !from.After(end) {
			name = a.Component + " outage"
		}
	}
	return name
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format("15:04:05.000")
}

// report logs failed requests per cause and per chaos action, the rollback latencies and the
// chaos actions: the figures docs/benchmarks.md records.
func (r *chaosRun) report() {
	t := r.t
	bad := map[string]bool{}
	for _, rel := range r.plan {
		bad[rel.version] = rel.bad
	}
	type key struct{ cause, blame string }
	failed := map[key]int{}
	injected := 0
	var unexplained []string
	for _, res := range r.results {
		c := res.Cause()
		if c == load.CauseOK {
			continue
		}
		if c == load.CauseAppError && bad[res.App.Version] {
			injected++ // the bad versions' own errors, before their rollback
			continue
		}
		k := key{c, r.blame(res.Start, res.End)}
		failed[k]++
		if k.blame == "no chaos" {
			unexplained = append(unexplained, r.describe(res))
		}
	}
	keys := make([]key, 0, len(failed))
	for k := range failed {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return failed[keys[i]] > failed[keys[j]] })
	var b strings.Builder
	fmt.Fprintf(&b, "requests: %d sent, %d answered 500 by a bad version (injected), other failures:", len(r.results), injected)
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %5d  %-20s %s", failed[k], k.cause, k.blame)
	}
	if len(unexplained) > 0 {
		fmt.Fprintf(&b, "\nfailures outside any chaos window:\n  %s", strings.Join(unexplained[:min(len(unexplained), 20)], "\n  "))
	}
	t.Log(b.String())
	r.reportRollbacks()
	r.reportChaos()
}

// describe is one request with what Traefik's access log says of it.
func (r *chaosRun) describe(res load.Result) string {
	d := fmt.Sprintf("%s–%s %s %s", stamp(res.Start), stamp(res.End), res.ID, res.Cause())
	if res.Err != nil {
		d += fmt.Sprintf(" (%v)", res.Err)
	}
	if res.App != nil {
		d += fmt.Sprintf(" from %s %s", res.App.Pod, res.App.Version)
	}
	if e, ok := r.access[res.ID]; ok {
		d += fmt.Sprintf("; Traefik: %d, backend %q answered %d, service %s", e.Status, e.ServiceAddr, e.OriginStatus, e.ServiceName)
	} else {
		d += "; not in Traefik's access log"
	}
	return d
}

// reportRollbacks logs each bad release's rollback latency under chaos: from its first failed
// request to the route's canary weight 0 (100 ms polling) and to its last answer.
func (r *chaosRun) reportRollbacks() {
	var toZero []time.Duration
	var b strings.Builder
	b.WriteString("rollbacks (first failed request → canary weight 0 on the route; → last answer of the bad version):")
	for _, o := range r.outcomes {
		if !o.bad || !o.rolledBack {
			continue
		}
		var firstFail, lastAnswer time.Time
		for _, res := range r.results {
			if res.App == nil || res.App.Version != o.version {
				continue
			}
			if res.Code >= 500 && (firstFail.IsZero() || res.End.Before(firstFail)) {
				firstFail = res.End
			}
			if res.End.After(lastAnswer) {
				lastAnswer = res.End
			}
		}
		canary := "shop-" + string(o.canarySlot)
		var zero time.Time
		for _, s := range r.samples {
			if s.Time.After(firstFail) && s.Weights[canary] == 0 {
				zero = s.Time
				break
			}
		}
		if firstFail.IsZero() || zero.IsZero() {
			fmt.Fprintf(&b, "\n  %-8s no failed request seen or no weight 0 seen (first failure %s)", o.version, stamp(firstFail))
			continue
		}
		toZero = append(toZero, zero.Sub(firstFail))
		fmt.Fprintf(&b, "\n  %-8s %6.2f s  %6.2f s  %s", o.version, zero.Sub(firstFail).Seconds(), lastAnswer.Sub(firstFail).Seconds(), r.blame(firstFail, zero))
	}
	if len(toZero) > 0 {
		slices.Sort(toZero)
		q := func(p float64) float64 { return toZero[int(p*float64(len(toZero)-1))].Seconds() }
		fmt.Fprintf(&b, "\n  to weight 0 over %d rollbacks: min %.2f s, median %.2f s, p90 %.2f s, max %.2f s", len(toZero), q(0), q(0.5), q(0.9), q(1))
	}
	r.t.Log(b.String())
}

func (r *chaosRun) reportChaos() {
	per := map[string][]time.Duration{}
	for _, a := range r.actions {
		if !a.Ready.IsZero() {
			per[a.Component] = append(per[a.Component], a.Ready.Sub(a.Killed))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos: %d actions (kill → cluster ready again):", len(r.actions))
	for _, c := range []string{cluster.Manager, cluster.Prometheus, cluster.Traefik, cluster.APIServer} {
		d := per[c]
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		fmt.Fprintf(&b, "\n  %-16s %2d kills, down %.1f–%.1f s", c, len(d), d[0].Seconds(), d[len(d)-1].Seconds())
	}
	r.t.Log(b.String())
}

// timeline prints everything that happened, in order: releases, Rollout status changes, chaos
// actions and violations. For a failed run's evidence.
func (r *chaosRun) timeline() {
	lines := slices.Clone(r.history)
	for _, o := range r.outcomes {
		lines = append(lines, rolloutChange{at: o.started, what: fmt.Sprintf("RELEASE %s (bad %v) into slot %s", o.version, o.bad, o.canarySlot)})
		if !o.ended.IsZero() {
			lines = append(lines, rolloutChange{at: o.ended, what: fmt.Sprintf("RELEASE %s ended: promoted %v, rolled back %v %q", o.version, o.promoted, o.rolledBack, o.abortReason)})
		}
	}
	for _, a := range r.actions {
		lines = append(lines, rolloutChange{at: a.Killed, what: "CHAOS kill " + a.Component})
		if !a.Ready.IsZero() {
			lines = append(lines, rolloutChange{at: a.Ready, what: "CHAOS ready again after " + a.Component})
		}
	}
	lines = append(lines, r.notes...)
	last := ""
	for _, s := range r.samples {
		what := fmt.Sprintf("route weights %v (generation %d); replicas %v ready %v; ready endpoints %v", s.Weights, s.RouteGeneration, s.Replicas, s.ReadyReplicas, s.Endpoints)
		if what != last {
			lines = append(lines, rolloutChange{at: s.Time, what: what})
			last = what
		}
	}
	for _, e := range cl.Agent.PodEvents() {
		if strings.HasPrefix(e.Pod, r.ns+"/") {
			lines = append(lines, rolloutChange{at: e.Time, what: fmt.Sprintf("pod %s %s on %s", strings.TrimPrefix(e.Pod, r.ns+"/"), e.Kind, e.IP)})
		}
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].at.Before(lines[j].at) })
	var b strings.Builder
	b.WriteString("timeline:")
	for _, l := range lines {
		fmt.Fprintf(&b, "\n  %s %s", stamp(l.at), l.what)
	}
	r.t.Log(b.String())
}
