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
	slots  map[mv1.Slot]SlotState
	route  TrafficState
}

func (w *world) observe(spec *mv1.RolloutSpec, st *mv1.RolloutStatus) Observations {
	o := Observations{Now: w.now, Generation: 1, Target: TargetState{Found: w.rng.IntN(50) != 0, Revision: w.target, Replicas: 2},
		Slots: map[mv1.Slot]SlotState{a: w.slots[a], b: w.slots[b]}, Traffic: w.route}
	o.Traffic.Weights = map[mv1.Slot]int32{a: w.route.Weights[a], b: w.route.Weights[b]}
	if CheckDue(spec, st, o) {
		verdicts := []mv1.Verdict{mv1.VerdictPass, mv1.VerdictPass, mv1.VerdictPass, mv1.VerdictFail, mv1.VerdictInconclusive, mv1.VerdictUnreachable}
		o.Check = &Check{Verdict: verdicts[w.rng.IntN(len(verdicts))]}
	}
	if w.rng.IntN(15) == 0 {
		actions := []mv1.RolloutAction{mv1.ActionPromote, mv1.ActionAbort, mv1.ActionRetry, mv1.ActionPause, mv1.ActionResume}
		o.Action = actions[w.rng.IntN(len(actions))]
	}
	return o
}

func (w *world) apply(d Decision) {
	for s, in := range d.Slots {
		cur := w.slots[s]
		if in.Revision != "" && in.Revision != cur.Revision {
			cur = SlotState{Revision: in.Revision} // new template: pods restart, not ready
		}
		if cur.Replicas != in.Replicas {
			cur.Replicas, cur.Ready = in.Replicas, false
		}
		switch {
		case cur.Replicas > 0 && !cur.Ready && w.rng.IntN(3) == 0:
			cur.Ready = true
		case cur.Ready && w.rng.IntN(40) == 0:
			cur.Ready = false // a pod crashed
		}
		w.slots[s] = cur
	}
	if d.Traffic != nil && w.rng.IntN(10) < 7 {
		w.route = TrafficState{Found: true, Accepted: w.rng.IntN(10) < 8, Matches: d.Traffic.Matches, MirrorPercent: d.Traffic.MirrorPercent,
			Weights: map[mv1.Slot]int32{a: d.Traffic.Weights[a], b: d.Traffic.Weights[b]}}
	}
	if w.rng.IntN(60) == 0 {
		w.target = fmt.Sprintf("rev%d", w.rng.IntN(4)+1)
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
		for seed := uint64(1); seed <= 40; seed++ {
			spec := mk()
			w := &world{rng: rand.New(rand.NewPCG(seed, 7)), now: t0, target: r1, slots: map[mv1.Slot]SlotState{}}
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
	if tr := d.Traffic; tr != nil {
		if tr.Weights[a]+tr.Weights[b] != 100 {
			t.Fatalf("%s: weights %v do not sum to 100", where, tr.Weights)
		}
		canary := st.StableSlot.Other()
		if tr.Weights[canary] > 0 || tr.Matches || tr.MirrorPercent > 0 {
			s := o.Slots[canary]
			if !s.Ready || s.Revision != st.CanaryRevision {
				t.Fatalf("%s: traffic %+v to canary slot %s that is %+v (canary revision %q)", where, tr, canary, s, st.CanaryRevision)
			}
		}
	}
	for s, in := range d.Slots {
		cur := o.Slots[s]
		if in.Revision == "" || in.Revision == cur.Revision || cur.Revision == "" {
			continue
		}
		if s == st.StableSlot && st.StableRevision == "" {
			continue // initializing: the only slot there is rolls to the target's template
		}
		if s == st.StableSlot {
			t.Fatalf("%s: the stable slot %s changes template (%s → %s)", where, s, cur.Revision, in.Revision)
		}
		if o.Traffic.Weights[s] > 0 || o.Traffic.Matches || o.Traffic.MirrorPercent > 0 {
			t.Fatalf("%s: template of canary slot %s changes (%s → %s) while the route sends it traffic %+v", where, s, cur.Revision, in.Revision, o.Traffic)
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
