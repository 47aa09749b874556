package checks

import (
	"context"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

var key = types.NamespacedName{Namespace: "ns", Name: "r"}

// waker records wakes and lets a test wait for one.
type waker struct {
	mu   sync.Mutex
	keys []types.NamespacedName
	ch   chan struct{}
}

func newWaker() *waker { return &waker{ch: make(chan struct{}, 16)} }

func (w *waker) wake(k types.NamespacedName) {
	w.mu.Lock()
	w.keys = append(w.keys, k)
	w.mu.Unlock()
	w.ch <- struct{}{}
}

func (w *waker) wait(t *testing.T) {
	t.Helper()
	select {
	case <-w.ch:
	case <-time.After(10 * time.Second):
		t.Fatal("no wake")
	}
}

func TestRunner(t *testing.T) {
	t.Run("result for the same ticket, after a wake", func(t *testing.T) {
		w := newWaker()
		r := &Runner[string]{Wake: w.wake}
		release := make(chan struct{})
		if !r.Start(key, "t1", time.Minute, func(context.Context) string { <-release; return "pass" }, func() string { return "timeout" }) {
			t.Fatal("not started")
		}
		if r.Start(key, "t1", time.Minute, func(context.Context) string { return "second" }, nil) {
			t.Error("a second check started while one runs")
		}
		if _, ok := r.Take(key, "t1"); ok {
			t.Error("a result before the check finished")
		}
		close(release)
		w.wait(t)
		if got, ok := r.Take(key, "t1"); !ok || got != "pass" {
			t.Errorf("Take = %q, %v", got, ok)
		}
		if r.Busy(key) {
			t.Error("still busy after the result was taken")
		}
	})
	t.Run("a stale ticket drops the result", func(t *testing.T) {
		w := newWaker()
		r := &Runner[string]{Wake: w.wake}
		r.Start(key, "step0", time.Minute, func(context.Context) string { return "fail" }, nil)
		w.wait(t)
		if _, ok := r.Take(key, "step1"); ok {
			t.Error("a result for another step was handed out")
		}
		if r.Busy(key) {
			t.Error("the stale result was kept")
		}
	})
	t.Run("a check that never returns ends at its deadline", func(t *testing.T) {
		w := newWaker()
		r := &Runner[string]{Wake: w.wake}
		hang := make(chan struct{})
		defer close(hang)
		r.Start(key, "t", 50*time.Millisecond, func(context.Context) string { <-hang; return "late" }, func() string { return "unreachable" })
		w.wait(t)
		if got, _ := r.Take(key, "t"); got != "unreachable" {
			t.Errorf("got %q", got)
		}
	})
	t.Run("forget drops a running check's result", func(t *testing.T) {
		r := &Runner[string]{}
		done := make(chan struct{})
		r.Start(key, "t", time.Minute, func(ctx context.Context) string { <-ctx.Done(); close(done); return "x" }, func() string { return "y" })
		r.Forget(key)
		<-done // the context was cancelled
		if r.Busy(key) || r.InFlight() != 0 {
			t.Error("forgotten check still tracked")
		}
	})
	t.Run("keys are independent", func(t *testing.T) {
		w := newWaker()
		r := &Runner[string]{Wake: w.wake}
		hang := make(chan struct{})
		defer close(hang)
		other := types.NamespacedName{Namespace: "ns", Name: "other"}
		r.Start(key, "t", time.Minute, func(context.Context) string { <-hang; return "" }, func() string { return "" })
		r.Start(other, "t", time.Minute, func(context.Context) string { return "fail" }, nil)
		w.wait(t)
		if got, ok := r.Take(other, "t"); !ok || got != "fail" {
			t.Errorf("other key blocked behind a hung check: %q %v", got, ok)
		}
	})
}
