// Package load sends steady HTTP traffic through a Gateway and counts what answers: requests
// per version (the demo app's X-Version header), status codes, and when each version was last
// seen. The e2e scenarios assert on these counts, and the rollback benchmark measures when the
// last request reached a rolled-back version. With Keep set it also records every request
// (Result): who answered it and in what state (the demo app's X-Pod, X-Ready and
// X-Terminating headers), or why it failed (Cause), for scenarios that must account for each
// request.
package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"
)

// Generator sends requests at a fixed rate until its context ends.
type Generator struct {
	// URL is requested (the Gateway entrypoint); Host, when set, is the Host header.
	URL  string
	Host string
	// Header is added to every request (e.g. an A/B header).
	Header http.Header
	// RPS is the request rate; Workers bound the requests in flight.
	RPS     int
	Workers int
	// Client sends the requests (its Transport may dial into a network namespace).
	Client *http.Client
	// Keep records every request as a Result (see Results).
	Keep bool
	// IDHeader, when set, carries a unique id per request (<ID prefix><sequence>), so a
	// request can be found in the Gateway's access log.
	IDHeader string

	mu      sync.Mutex
	counts  Counts
	seq     uint64
	results []Result
}

// Counts is what the Generator has seen so far.
type Counts struct {
	Total     int
	ByVersion map[string]int
	ByCode    map[int]int
	Errors    int // transport errors (no HTTP answer)
	// FirstSeen and LastSeen are, per version, when a request answered by it completed.
	FirstSeen map[string]time.Time
	LastSeen  map[string]time.Time
	// FirstFailure is, per version, when it first answered with a 5xx.
	FirstFailure map[string]time.Time
	// Failures are the requests that got no 200, in order of completion (the first
	// maxFailures of them).
	Failures []Failure
}

func newCounts() Counts {
	return Counts{ByVersion: map[string]int{}, ByCode: map[int]int{}, FirstSeen: map[string]time.Time{}, LastSeen: map[string]time.Time{}, FirstFailure: map[string]time.Time{}}
}

// Run sends requests until ctx ends, then waits for those in flight.
func (g *Generator) Run(ctx context.Context) {
	workers := g.Workers
	if workers <= 0 {
		workers = 8
	}
	rps := g.RPS
	if rps <= 0 {
		rps = 50
	}
	jobs := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				g.once(ctx)
			}
		}()
	}
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			close(jobs)
			wg.Wait()
			return
		case <-tick.C:
			select {
			case jobs <- struct{}{}:
			default: // all workers busy: the target is slow; drop rather than queue
			}
		}
	}
}

func (g *Generator) once(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL, nil)
	if err != nil {
		return
	}
	if g.Host != "" {
		req.Host = g.Host
	}
	for k, vs := range g.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	start := time.Now()
	res := Result{Start: start}
	if g.IDHeader != "" {
		g.mu.Lock()
		g.seq++
		res.ID = fmt.Sprintf("%s%d", idPrefix, g.seq)
		g.mu.Unlock()
		req.Header.Set(g.IDHeader, res.ID)
	}
	resp, err := g.Client.Do(req)
	now := time.Now()
	if err != nil {
		if ctx.Err() == nil {
			res.End, res.Err = now, err
			g.record(func(c *Counts) {
				c.Errors++
				c.addFailure(Failure{Start: start, End: now, Err: err.Error()})
			}, res)
		}
		return
	}
	var failure *Failure
	if resp.StatusCode != http.StatusOK {
		f := failureOf(start, now, resp)
		failure = &f
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	version := resp.Header.Get("X-Version")
	res.End, res.Code = time.Now(), resp.StatusCode
	if version != "" {
		res.App = &AppInfo{Version: version, Pod: resp.Header.Get("X-Pod"),
			Ready: resp.Header.Get("X-Ready") == "true", Terminating: resp.Header.Get("X-Terminating") == "true"}
	}
	g.record(func(c *Counts) {
		if failure != nil {
			c.addFailure(*failure)
		}
		c.ByCode[resp.StatusCode]++
		if version != "" {
			c.ByVersion[version]++
			if _, ok := c.FirstSeen[version]; !ok {
				c.FirstSeen[version] = now
			}
			c.LastSeen[version] = now
			if _, ok := c.FirstFailure[version]; !ok && resp.StatusCode >= 500 {
				c.FirstFailure[version] = now
			}
		}
	}, res)
}

// idPrefix tells this process's request ids apart from other clients' in a shared log.
var idPrefix = fmt.Sprintf("load-%d-", os.Getpid())

func (g *Generator) record(f func(*Counts), res Result) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.counts.ByVersion == nil {
		g.counts = newCounts()
	}
	g.counts.Total++
	f(&g.counts)
	if g.Keep {
		g.results = append(g.results, res)
	}
}

// Results copies the requests recorded so far (Keep), in the order they completed.
func (g *Generator) Results() []Result {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Result(nil), g.results...)
}

// Snapshot copies the counts so far.
func (g *Generator) Snapshot() Counts {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := newCounts()
	c.Total, c.Errors = g.counts.Total, g.counts.Errors
	for k, v := range g.counts.ByVersion {
		c.ByVersion[k] = v
	}
	for k, v := range g.counts.ByCode {
		c.ByCode[k] = v
	}
	for k, v := range g.counts.FirstSeen {
		c.FirstSeen[k] = v
	}
	for k, v := range g.counts.LastSeen {
		c.LastSeen[k] = v
	}
	for k, v := range g.counts.FirstFailure {
		c.FirstFailure[k] = v
	}
	c.Failures = append([]Failure(nil), g.counts.Failures...)
	return c
}

// Versions lists the versions seen, sorted.
func (c Counts) Versions() []string {
	out := make([]string, 0, len(c.ByVersion))
	for v := range c.ByVersion {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}

// Share is the fraction of answered requests that version served.
func (c Counts) Share(version string) float64 {
	n := 0
	for _, v := range c.ByVersion {
		n += v
	}
	if n == 0 {
		return 0
	}
	return float64(c.ByVersion[version]) / float64(n)
}

// Since is the difference between two snapshots: what happened in between.
func (c Counts) Since(before Counts) Counts {
	d := newCounts()
	d.Total, d.Errors = c.Total-before.Total, c.Errors-before.Errors
	for k, v := range c.ByVersion {
		if n := v - before.ByVersion[k]; n > 0 {
			d.ByVersion[k] = n
			d.LastSeen[k] = c.LastSeen[k]
		}
	}
	for k, v := range c.ByCode {
		if n := v - before.ByCode[k]; n > 0 {
			d.ByCode[k] = n
		}
	}
	if len(before.Failures) <= len(c.Failures) {
		d.Failures = append([]Failure(nil), c.Failures[len(before.Failures):]...)
	}
	return d
}
