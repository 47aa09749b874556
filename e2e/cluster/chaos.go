package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ChaosOptions configure a chaos loop (see StartChaos).
type ChaosOptions struct {
	// Seed makes the sequence of components, gaps and outages repeatable.
	Seed uint64
	// Components are the processes the loop kills; default Manager, Prometheus, Traefik and
	// APIServer. They are dealt like cards: each round kills every one once, in a shuffled
	// order, so even a short run hits them all.
	Components []string
	// Gap is how long the cluster runs undisturbed between two actions, Outage how long a
	// killed component stays down: each drawn uniformly from [min, max].
	Gap, Outage [2]time.Duration
	// Logf receives one line per kill and per recovery, with timestamps.
	Logf func(format string, args ...any)
}

// ChaosAction is one kill and its recovery.
type ChaosAction struct {
	Component string
	// Killed: SIGKILL is about to be sent. Restarted: it runs again. Ready: the cluster's
	// readiness checks pass again (Traefik pings, Prometheus and the manager report ready, the
	// Gateway is programmed; for the API server, /readyz).
	Killed, Restarted, Ready time.Time
	Err                      error
}

// Window is the time from the kill to the cluster being ready again, plus after: what a
// request failing in it may be blamed on.
func (a ChaosAction) Window(after time.Duration) (from, to time.Time) {
	end := a.Ready
	if end.IsZero() {
		end = a.Restarted
	}
	return a.Killed, end.Add(after)
}

// Chaos is a running chaos loop.
type Chaos struct {
	c      *Cluster
	opts   ChaosOptions
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	actions []ChaosAction
}

// StartChaos kills one component at a time at random moments (SIGKILL, like a crash), keeps it
// down for a random outage, starts it again and waits for the cluster to be ready, until Stop.
// One component is down at a time; a component is always restarted, also when Stop comes
// during its outage.
func (c *Cluster) StartChaos(opts ChaosOptions) *Chaos {
	if len(opts.Components) == 0 {
		opts.Components = []string{Manager, Prometheus, Traefik, APIServer}
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := &Chaos{c: c, opts: opts, cancel: cancel, done: make(chan struct{})}
	go ch.loop(ctx)
	return ch
}

// Stop ends the loop once the current action (if any) has recovered; it returns the actions.
func (ch *Chaos) Stop() []ChaosAction {
	ch.cancel()
	<-ch.done
	return ch.Actions()
}

// Actions returns the actions so far.
func (ch *Chaos) Actions() []ChaosAction {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return append([]ChaosAction(nil), ch.actions...)
}

func (ch *Chaos) loop(ctx context.Context) {
	defer close(ch.done)
	rng := rand.New(rand.NewPCG(ch.opts.Seed, 0x5eed))
	between := func(r [2]time.Duration) time.Duration {
		if r[1] <= r[0] {
			return r[0]
		}
		return r[0] + time.Duration(rng.Int64N(int64(r[1]-r[0])))
	}
	var deck []string
	for n := 1; ; n++ {
		if len(deck) == 0 {
			deck = append(deck, ch.opts.Components...)
			rng.Shuffle(len(deck), func(i, j int) { deck[i], deck[j] = deck[j], deck[i] })
		}
		// Drawn in a fixed order whatever happens, so a seed always gives the same plan.
		gap, comp, outage := between(ch.opts.Gap), deck[0], between(ch.opts.Outage)
		deck = deck[1:]
		select {
		case <-ctx.Done():
			return
		case <-time.After(gap):
		}
		a := ch.act(ctx, n, comp, outage)
		ch.mu.Lock()
		ch.actions = append(ch.actions, a)
		ch.mu.Unlock()
		if a.Err != nil {
			ch.opts.Logf("chaos #%d %s: %v; chaos stops", n, comp, a.Err)
			return
		}
	}
}

// act kills comp, waits outage (cut short by ctx), restarts it and waits for readiness.
func (ch *Chaos) act(ctx context.Context, n int, comp string, outage time.Duration) ChaosAction {
	a := ChaosAction{Component: comp, Killed: time.Now()}
	if err := ch.c.Kill(comp); err != nil {
		a.Err = err
		return a
	}
	ch.opts.Logf("chaos #%d %s: killed at %s; down for %v", n, comp, stamp(a.Killed), outage.Round(time.Millisecond))
	select {
	case <-ctx.Done():
	case <-time.After(outage):
	}
	// A restart must finish whatever the caller's context: the cluster stays whole.
	rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := ch.c.Stack.Restart(rctx, comp); err != nil {
		a.Err = fmt.Errorf("restarting: %w", err)
		return a
	}
	a.Restarted = time.Now()
	if err := ch.c.waitReady(rctx); err != nil {
		a.Err = fmt.Errorf("after the restart: %w", err)
		return a
	}
	a.Ready = time.Now()
	ch.opts.Logf("chaos #%d %s: restarted at %s (down %v), cluster ready at %s (+%v)", n, comp,
		stamp(a.Restarted), a.Restarted.Sub(a.Killed).Round(time.Millisecond), stamp(a.Ready), a.Ready.Sub(a.Restarted).Round(time.Millisecond))
	return a
}

func stamp(t time.Time) string { return t.Format("15:04:05.000") }
