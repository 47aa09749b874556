package rollout

import (
	"testing"

	mv1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// pods is a slot of rev with n pods asked for, avail of them ready and published.
func pods(rev string, n, avail int32) SlotState {
	return SlotState{Revision: rev, Replicas: n, Available: avail, Ready: n > 0 && avail == n}
}

func autoscaled(n int32) *mv1.RolloutSpec {
	return modSpec(canarySpec(), func(s *mv1.RolloutSpec) { s.Replicas = &n })
}

// The pod counts of an autoscaled Rollout: the stable slot follows spec.replicas, the canary
// gets its weight's share (at least one pod), weight moves only to pods that are ready, a
// scale-up under way takes no traffic away, and promotion waits for a full-size canary.
func TestAutoscaledSizing(t *testing.T) {
	cases := []struct {
		name string
		spec *mv1.RolloutSpec
		st   mv1.RolloutStatus
		obs  Observations
		want want
	}{
		{"spec.replicas overrides the target's count", autoscaled(7), healthy(),
			with(obs(r1, pods(r1, 3, 3), SlotState{}, route(100, 0)), func(o *Observations) { o.Target.Replicas = 2 }),
			want{phase: mv1.PhaseHealthy, slotA: &SlotIntent{Revision: r1, Replicas: 7}}},
		{"spec.replicas 0 keeps one pod", autoscaled(0), healthy(),
			obs(r1, pods(r1, 3, 3), SlotState{}, route(100, 0)),
			want{slotA: &SlotIntent{Revision: r1, Replicas: 1}}},
		{"a release sizes the canary to the first weight's share", autoscaled(20), healthy(),
			obs(r2, pods(r1, 20, 20), SlotState{}, route(100, 0)),
			want{phase: mv1.PhaseProgressing, slotA: &SlotIntent{Revision: r1, Replicas: 20}, slotB: &SlotIntent{Revision: r2, Replicas: 2}}},
		{"the step's share ready: weight moves", autoscaled(20), releasing(0, 0),
			obs(r2, pods(r1, 20, 20), pods(r2, 2, 2), route(100, 0)),
			want{weightB: i32(10), slotB: &SlotIntent{Revision: r2, Replicas: 2}}},
		{"one pod of the share ready: no weight yet", autoscaled(20), releasing(0, 0),
			obs(r2, pods(r1, 20, 20), pods(r2, 2, 1), route(100, 0)),
			want{weightB: i32(0), step: i32(0), conds: map[string]string{"Reconciling": "True/WaitingForPods"}}},
		{"next step: the canary grows first, its weight stays", autoscaled(20), with(releasing(3, 10), func(s *mv1.RolloutStatus) { s.StepStartTime = nil }),
			obs(r2, pods(r1, 20, 20), pods(r2, 10, 4), route(90, 10)),
			want{weightB: i32(10), step: i32(3), slotB: &SlotIntent{Revision: r2, Replicas: 10}, conds: map[string]string{"Reconciling": "True/WaitingForPods"},
				check: func(t *testing.T, d Decision) {
					if d.Status.CanaryWeight != 10 || d.Status.StepStartTime != nil {
						t.Errorf("weight %d, step start %v: want 10 and not started", d.Status.CanaryWeight, d.Status.StepStartTime)
					}
				}}},
		{"next step: the share ready, weight moves", autoscaled(20), with(releasing(3, 10), func(s *mv1.RolloutStatus) { s.StepStartTime = nil }),
			obs(r2, pods(r1, 20, 20), pods(r2, 10, 10), route(90, 10)),
			want{weightB: i32(50)}},
		{"the autoscaler asks for more: both slots grow, nothing moves back", autoscaled(40), releasing(4, 50),
			obs(r2, pods(r1, 20, 20), pods(r2, 10, 10), route(50, 50)),
			want{weightB: i32(50), slotA: &SlotIntent{Revision: r1, Replicas: 40}, slotB: &SlotIntent{Revision: r2, Replicas: 20}}},
		{"pods of the canary still starting after a scale-up: traffic stays", autoscaled(40), releasing(4, 50),
			obs(r2, pods(r1, 40, 25), pods(r2, 20, 11), route(50, 50)),
			want{weightB: i32(50), phase: mv1.PhasePaused}},
		{"promotion: the canary scales to the stable count before it takes everything", autoscaled(20), with(releasing(5, 50), func(s *mv1.RolloutStatus) { s.StepStartTime = nil }),
			obs(r2, pods(r1, 20, 20), pods(r2, 10, 10), route(50, 50)),
			want{weightB: i32(50), slotB: &SlotIntent{Revision: r2, Replicas: 20}, conds: map[string]string{"Reconciling": "True/WaitingForPods"}}},
		{"promotion: full size ready, all traffic moves", autoscaled(20), with(releasing(5, 50), func(s *mv1.RolloutStatus) { s.StepStartTime = nil }),
			obs(r2, pods(r1, 20, 20), pods(r2, 20, 20), route(50, 50)),
			want{weightB: i32(100), phase: mv1.PhasePromoting}},
		{"promoted: the new stable slot keeps the full count", autoscaled(20), with(releasing(5, 100), func(s *mv1.RolloutStatus) { s.Phase = mv1.PhasePromoting }),
			obs(r2, pods(r1, 20, 20), pods(r2, 20, 20), route(0, 100)),
			want{phase: mv1.PhaseHealthy, stable: b, slotB: &SlotIntent{Revision: r2, Replicas: 20}, slotA: keep}},
		{"A/B matches: the canary runs the full count (the matched share is unknown)",
			modSpec(autoscaled(10), func(s *mv1.RolloutSpec) {
				s.Strategy.Canary.Match = []mv1.RouteMatch{{Headers: []mv1.ValueMatch{{Name: "x-canary", Value: "always"}}}}
			}), healthy(),
			obs(r2, pods(r1, 10, 10), SlotState{}, route(100, 0)),
			want{slotB: &SlotIntent{Revision: r2, Replicas: 10}}},
		{"blue-green: the preview runs the full count", modSpec(blueGreenSpec(true), func(s *mv1.RolloutSpec) { s.Replicas = i32(6) }), healthy(),
			obs(r2, pods(r1, 6, 6), SlotState{}, route(100, 0)),
			want{slotB: &SlotIntent{Revision: r2, Replicas: 6}}},
		{"rolled back: the canary is not scaled up on its way out", autoscaled(20), with(releasing(0, 10), func(s *mv1.RolloutStatus) {
			s.Phase, s.ReleaseStartTime = mv1.PhaseRolledBack, nil
		}),
			obs(r2, pods(r1, 20, 20), pods(r2, 2, 2), route(100, 0)),
			want{check: func(t *testing.T, d Decision) {
				if in := d.Slots[b]; !in.Keep && in.Replicas > 2 {
					t.Errorf("canary slot %+v scaled up after rollback", in)
				}
			}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkWant(t, Next(tc.spec, &tc.st, tc.obs), tc.want)
		})
	}
}

func TestShare(t *testing.T) {
	for _, c := range []struct{ n, w, want int32 }{
		{1, 5, 1}, {3, 10, 1}, {20, 10, 2}, {20, 11, 3}, {10, 50, 5}, {10, 100, 10}, {7, 0, 1}, {100000, 1, 1000},
	} {
		if got := share(c.n, c.w); got != c.want {
			t.Errorf("share(%d, %d%%) = %d, want %d", c.n, c.w, got, c.want)
		}
	}
}
