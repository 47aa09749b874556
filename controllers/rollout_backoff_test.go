package controllers

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// 3. Retries of a failed reconcile (a rollback whose write failed among them) back off to at
// most a few seconds, never to controller-runtime's default of minutes.
func TestRolloutRetriesBackOffToAFewSecondsAtMost(t *testing.T) {
	rl := rolloutRateLimiter()
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "shop", Name: "checkout"}}
	var last time.Duration
	for range 40 {
		last = rl.When(req)
	}
	if last > 5*time.Second || last < time.Second {
		t.Errorf("after 40 failures the next retry waits %s, want a few seconds at most", last)
	}
	rl.Forget(req)
	if first := rl.When(req); first > 100*time.Millisecond {
		t.Errorf("the first retry waits %s", first)
	}
}

// Steady requeues are spread (never earlier than asked: a timer must not fire early).
func TestJitterSpreadsSteadyRequeuesOnlyLater(t *testing.T) {
	if jitter(time.Second) != time.Second {
		t.Error("short timers must stay exact")
	}
	seen := map[time.Duration]bool{}
	for range 50 {
		d := jitter(30 * time.Second)
		if d < 30*time.Second || d > 33*time.Second {
			t.Fatalf("jitter(30s) = %s", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct requeues in 50: not jittered", len(seen))
	}
}

// 6. The look at lagging endpoints backs off, and stops when the lag ends.
func TestEndpointsPollBacksOffWhileLagging(t *testing.T) {
	var b endpointsBackoff
	key := types.NamespacedName{Namespace: "shop", Name: "checkout"}
	var got []time.Duration
	for range 7 {
		got = append(got, b.next(key, true))
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	if d := b.next(key, false); d != 0 {
		t.Errorf("no lag, still polling every %s", d)
	}
	if d := b.next(key, true); d != 500*time.Millisecond {
		t.Errorf("a new lag starts at %s", d)
	}
}
