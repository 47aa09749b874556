// Package checks runs slow work (gate queries, data-plane probes) off the reconcile workers.
// A reconcile asks for a check and returns at once; the check runs in its own goroutine, at
// most one per object at a time, and when it finishes the object is queued again so the next
// reconcile takes the result. A Prometheus that accepts connections and never answers then
// delays only the checks that ask it, never another object's reconcile (its rollback, say).
package checks

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Runner runs checks of type T per object key.
type Runner[T any] struct {
	// Wake is called with the key when a check finishes (it queues a reconcile); it must not
	// block. Nil: nobody is woken, the result waits for the next reconcile.
	Wake func(types.NamespacedName)

	mu   sync.Mutex
	jobs map[types.NamespacedName]*job[T]
}

type job[T any] struct {
	ticket string
	done   bool
	result T
	cancel context.CancelFunc
}

// Start runs fn for key unless a check for key is running or its result waits to be taken.
// ticket names what the check judges; Take hands the result out only for the same ticket.
// fn gets a context that ends after timeout; if fn has not returned by then, the result is
// onTimeout() and fn's late answer is dropped. Start reports whether it started a check.
func (r *Runner[T]) Start(key types.NamespacedName, ticket string, timeout time.Duration, fn func(context.Context) T, onTimeout func() T) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, busy := r.jobs[key]; busy {
		return false
	}
	if r.jobs == nil {
		r.jobs = map[types.NamespacedName]*job[T]{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	j := &job[T]{ticket: ticket, cancel: cancel}
	r.jobs[key] = j
	go r.run(ctx, key, j, fn, onTimeout)
	return true
}

func (r *Runner[T]) run(ctx context.Context, key types.NamespacedName, j *job[T], fn func(context.Context) T, onTimeout func() T) {
	answer := make(chan T, 1) // buffered: a late fn never blocks on a reader that left
	go func() { answer <- fn(ctx) }()
	var res T
	select {
	case res = <-answer:
	case <-ctx.Done():
		res = onTimeout()
	}
	j.cancel()

	r.mu.Lock()
	if r.jobs[key] != j {
		r.mu.Unlock() // forgotten meanwhile
		return
	}
	j.done, j.result = true, res
	wake := r.Wake
	r.mu.Unlock()
	if wake != nil {
		wake(key)
	}
}

// Take returns the finished result of key's check when it was started with ticket, and
// forgets it. A finished result for another ticket is stale and dropped. Nothing is returned
// while the check runs.
func (r *Runner[T]) Take(key types.NamespacedName, ticket string) (T, bool) {
	var zero T
	r.mu.Lock()
	defer r.mu.Unlock()
	j, ok := r.jobs[key]
	if !ok || !j.done {
		return zero, false
	}
	delete(r.jobs, key)
	if j.ticket != ticket {
		return zero, false
	}
	return j.result, true
}

// Busy reports whether key has a check running or a result not taken yet.
func (r *Runner[T]) Busy(key types.NamespacedName) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.jobs[key]
	return ok
}

// Forget cancels key's check, if any, and drops its result (the object is gone).
func (r *Runner[T]) Forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if j, ok := r.jobs[key]; ok {
		j.cancel()
		delete(r.jobs, key)
	}
}

// InFlight is the number of keys with a check running or a result not taken yet.
func (r *Runner[T]) InFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.jobs)
}
