package rollout

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	mv1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// world is a random but plausible cluster: slots take time to become ready and sometimes lose
// pods, the route lags behind and is sometimes not accepted, gates answer at random, people
// act and push new revisions.
type world struct {
	rng    *rand.Rand
	now    time.Time
	target string
	// replicas is the count the target (or an autoscaler) asks for; it changes at random.
	replicas int32
	slots    map[mv1.Slot]SlotState
	route    TrafficState
}

func (w *world) observe(spec *mv1.RolloutSpec, st *mv1.RolloutStatus) Observations {
	o := Observations{Now: w.now, Generation: 1, Target: TargetState{Found: w.rng.IntN(50) != 0, Revision: w.target, Replicas: w.replicas},
		Slots: map[mv1.Slot]SlotState{a: w.slots[a], b: w.slots[b]}, Traffic: w.route}
	o.Traffic.Weights = map[mv1.Slot]int32{a: w.route.Weights[a], b: w.route.Weights[b]}
	o.Traffic.Reaches = map[mv1.Slot]bool{a: w.route.Reaches[a], b: w.route.Reaches[b]}
	if w.route.Accepted && w.route.Split != "" && w.rng.IntN(2) == 0 {
		// The data plane serves the accepted route at some point; the probe says so (or, one
		// time in five, that no probe was possible and route status stands in).
		o.Traffic.Proof = &Proof{Split: w.route.Split, OK: true, Probed: w.rng.IntN(5) != 0}
	}
	if CheckDue(spec, st, o) {
		verdicts := []mv1.Verdict{mv1.VerdictPass, mv1.VerdictPass, mv1.VerdictPass, mv1.VerdictFail, mv1.VerdictInconclusive, mv1.VerdictUnreachable}
		o.Check = &Check{Verdict: verdicts[w.rng.IntN(len(verdicts))], Premature: w.rng.IntN(4) == 0}
	}
	if w.rng.IntN(15) == 0 {
		actions := []mv1.RolloutAction{mv1.ActionPromote, mv1.ActionPromoteFull, mv1.ActionAbort, mv1.ActionRetry, mv1.ActionPause, mv1.ActionResume}
		o.Action = actions[w.rng.IntN(len(actions))]
	}
	return o
}

func (w *world) apply(d Decision) {
	// Slots in a fixed order: ranging over the map would draw random numbers in a different
	// order on every run, and a failing seed could not be replayed.
	for _, s := range []mv1.Slot{a, b} {
		in, ok := d.Slots[s]
		cur := w.slots[s]
		if !ok || in.Keep {
			continue // nothing written
		}
		if in.Revision != "" && in.Revision != cur.Revision {
			cur = SlotState{Revision: in.Revision} // new template: pods restart, not ready
		}
		cur.Replicas = in.Replicas
		cur.Available = min(cur.Available, cur.Replicas)
		switch {
		case cur.Available < cur.Replicas && w.rng.IntN(3) == 0:
			cur.Available += 1 + w.rng.Int32N(cur.Replicas-cur.Available) // pods become ready
		case cur.Available > 0 && w.rng.IntN(40) == 0:
			cur.Available = w.rng.Int32N(cur.Available) // pods crashed
		}
		cur.Ready = cur.Replicas > 0 && cur.Available == cur.Replicas
		w.slots[s] = cur
	}
	switch {
	case d.Traffic != nil && w.rng.IntN(10) < 7:
		canary := d.Status.StableSlot.Other()
		t := d.Traffic
		w.route = TrafficState{Found: true, Accepted: w.rng.IntN(10) < 8, Matches: t.Matches, MirrorPercent: t.MirrorPercent,
			Weights:   map[mv1.Slot]int32{a: t.Weights[a], b: t.Weights[b]},
			Reaches:   map[mv1.Slot]bool{a: t.Weights[a] > 0, b: t.Weights[b] > 0},
			ProbeSlot: t.ProbeSlot, ProbeRevision: t.ProbeRevision,
			Split: fmt.Sprintf("%v/%v/%d/%s/%s", t.Weights, t.Matches, t.MirrorPercent, t.ProbeSlot, t.ProbeRevision)}
		if t.ProbeSlot != "" {
			w.route.Reaches[t.ProbeSlot] = true
		}
		if t.Matches || t.MirrorPercent > 0 {
			w.route.Reaches[canary] = true
		}
	case w.rng.IntN(20) == 0:
		w.route.Accepted = false // a new generation (another writer's edit) not yet processed
	case !w.route.Accepted && w.rng.IntN(3) == 0:
		w.route.Accepted = true
	}
	if w.rng.IntN(60) == 0 {
		w.target = fmt.Sprintf("rev%d", w.rng.IntN(4)+1)
	}
	if w.rng.IntN(20) == 0 {
		w.replicas = 1 + w.rng.Int32N(10) // the autoscaler changes its mind
	}
	w.now = w.now.Add(time.Duration(w.rng.IntN(40)) * time.Second)
}

func TestInvariantsHoldForRandomHistories(t *testing.T) {
	specs := map[string]func() *mv1.RolloutSpec{
		"canary": func() *mv1.RolloutSpec {
			s := canarySpec()
			s.Strategy.Canary.Match = []mv1.RouteMatch{{Headers: []mv1.ValueMatch{{Name: "x", Value: "1"}}}}
			s.Strategy.Canary.Mirror = &mv1.Mirror{Percent: 10}
			return s
		},
		"shorthand": func() *mv1.RolloutSpec {
			return modSpec(canarySpec(), func(s *mv1.RolloutSpec) { s.Strategy.Canary = &mv1.CanaryStrategy{StepWeight: i32(25)} })
		},
		"blue-green": func() *mv1.RolloutSpec { return blueGreenSpec(true) },
	}
	steps, promotions, rollbacks := 0, 0, 0
	for name, mk := range specs {
		for seed := uint64(1); seed <= 400; seed++ {
			spec := mk()
			w := &world{rng: rand.New(rand.NewPCG(seed, 7)), now: t0, target: r1, replicas: 2, slots: map[mv1.Slot]SlotState{}}
			st := mv1.RolloutStatus{}
			for i := 0; i < 300; i++ {
				o := w.observe(spec, &st)
				d := Next(spec, &st, o)
				where := fmt.Sprintf("%s seed %d step %d (%s → %s)", name, seed, i, st.Phase, d.Status.Phase)
				checkInvariants(t, where, &st, o, d)
				if d.Status.StableRevision != st.StableRevision && st.StableRevision != "" {
					promotions++
				}
				if d.Status.Phase == mv1.PhaseRolledBack && st.Phase != mv1.PhaseRolledBack {
					rollbacks++
				}
				st = d.Status
				w.apply(d)
				steps++
			}
		}
	}
	// The histories must actually reach the interesting places, or the test proves nothing.
	if promotions < 20 || rollbacks < 20 {
		t.Errorf("%d steps reached only %d promotions and %d rollbacks", steps, promotions, rollbacks)
	}
	t.Logf("%d steps, %d promotions, %d rollbacks", steps, promotions, rollbacks)
}

func checkInvariants(t *testing.T, where string, before *mv1.RolloutStatus, o Observations, d Decision) {
	t.Helper()
	st := d.Status
	if tr := d.Traffic; tr != nil && tr.ProbeSlot != "" {
		// The probe rule reaches only a slot running the revision it was made for.
		if s := o.Slots[tr.ProbeSlot]; tr.ProbeRevision != s.Revision || s.Revision == "" {
			t.Fatalf("%s: probe rule to slot %s for revision %q, which runs %+v", where, tr.ProbeSlot, tr.ProbeRevision, s)
		}
	}
	// The canary gets its first weight only once the data plane proved it answers.
	if tr := d.Traffic; tr != nil && tr.Weights[st.StableSlot.Other()] > 0 && (st.DataPlane == nil || st.DataPlane.Slot != st.StableSlot.Other() || st.DataPlane.Revision != st.CanaryRevision) {
		t.Fatalf("%s: weight %d to slot %s before the data plane proved revision %s answers there (%+v)", where, tr.Weights[st.StableSlot.Other()], st.StableSlot.Other(), st.CanaryRevision, st.DataPlane)
	}
	if tr := d.Traffic; tr != nil {
		if tr.Weights[a]+tr.Weights[b] != 100 {
			t.Fatalf("%s: weights %v do not sum to 100", where, tr.Weights)
		}
		canary := st.StableSlot.Other()
		if tr.Weights[canary] > 0 || tr.Matches || tr.MirrorPercent > 0 {
			s := o.Slots[canary]
			if s.Available == 0 || s.Revision != st.CanaryRevision {
				t.Fatalf("%s: traffic %+v to canary slot %s that is %+v (canary revision %q)", where, tr, canary, s, st.CanaryRevision)
			}
		}
		// More weight to the canary only with its share of ready pods; all of it only with as
		// many as the stable slot runs (no capacity dip at promotion).
		if w, was := tr.Weights[canary], o.Traffic.Weights[canary]; w > was && o.Slots[canary].Available < share(st.Replicas, w) {
			t.Fatalf("%s: canary weight %d%% → %d%% with %d ready pods (share of %d: %d)", where, was, w, o.Slots[canary].Available, st.Replicas, share(st.Replicas, w))
		}
	}
	// The stable slot follows the count asked for (the target's, or an autoscaler's).
	if in, ok := d.Slots[st.StableSlot]; ok && !in.Keep && o.Target.Found && o.Target.Replicas > 0 && in.Replicas != o.Target.Replicas {
		t.Fatalf("%s: stable slot %s sized %d, the target asks for %d", where, st.StableSlot, in.Replicas, o.Target.Replicas)
	}
	drained := func(s mv1.Slot) bool {
		return o.Traffic.Found && o.Traffic.Accepted && served(&st, o.Traffic) && !o.Traffic.Reaches[s]
	}
	for s, in := range d.Slots {
		cur := o.Slots[s]
		if in.Keep {
			continue
		}
		if in.Replicas == 0 && cur.Replicas > 0 && !drained(s) {
			t.Fatalf("%s: slot %s scaled to zero while the accepted route may still send it requests %+v", where, s, o.Traffic)
		}
		if in.Revision == "" || in.Revision == cur.Revision || cur.Revision == "" {
			continue
		}
		if s == st.StableSlot && st.StableRevision == "" {
			continue // initializing: the only slot there is rolls to the target's template
		}
		if s == st.StableSlot {
			t.Fatalf("%s: the stable slot %s changes template (%s → %s)", where, s, cur.Revision, in.Revision)
		}
		if cur.Replicas > 0 && !drained(s) {
			t.Fatalf("%s: template of canary slot %s changes (%s → %s) while the accepted route may still send it requests %+v", where, s, cur.Revision, in.Revision, o.Traffic)
		}
	}
	if before.StableRevision != "" && st.StableRevision != before.StableRevision && st.StableRevision != before.CanaryRevision {
		t.Fatalf("%s: stable revision %s → %s, which was never the canary", where, before.StableRevision, st.StableRevision)
	}
	if o.Check != nil && o.Check.Verdict == mv1.VerdictUnreachable && o.Action == "" && o.Target.Found && o.Target.Revision == before.CanaryRevision {
		if st.StableRevision != before.StableRevision || st.Phase == mv1.PhaseRollingBack {
			t.Fatalf("%s: an unreachable Prometheus promoted or rolled back", where)
		}
	}
}
