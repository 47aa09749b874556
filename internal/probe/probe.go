// Package probe proves through the data plane that a slot answers, before the first weight
// moves to it: route status and EndpointSlices say what the proxy was told, not what it serves.
//
// The Rollout's route carries a probe rule (Rule) that only requests with Sluice's probe header
// and an unguessable token match, routed only to the slot's Service; its ResponseHeaderModifier
// marks every answer that went through it. A Prober sends such requests to the route's parents
// (a Gateway's address and listener port, see GatewayTarget; a GAMMA Service, see
// ServiceTarget) and judges the answers: marked and not 5xx means a pod of the slot answered
// through the proxy. It is a plain network call: run it off the reconcile worker, bounded by ctx.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Header names of the probe protocol. The request header is what the probe rule matches; the
// answer headers are what the rule's ResponseHeaderModifier sets: an answer that carries the
// token went through the rule (a Gateway that has not programmed the rule answers without it),
// and one that carries the split version came from the configuration that has that split (the
// route is translated and served as a whole, so the rule and the split arrive together).
const (
	Header       = "X-Sluice-Probe"
	AnswerHeader = "X-Sluice-Probe-Rule"
	SplitHeader  = "X-Sluice-Split"
)

// Defaults of a Request and of the whole probe.
const (
	DefaultAttemptTimeout = 2 * time.Second
	DefaultInterval       = 100 * time.Millisecond
	// DefaultBudget bounds a probe whose context has no deadline.
	DefaultBudget = 10 * time.Second
	// maxBody is how much of an answer's body a message quotes.
	maxBody = 200
)

// Target is one entry point of the data plane for one route parent.
type Target struct {
	// URL is the scheme, address and port to send to, e.g. http://10.0.0.1:8000.
	URL string
	// Host is the Host header (and TLS server name): a hostname of the route the listener
	// accepts. Empty: the URL's host.
	Host string
	// Parent names the route parent and listener, for messages.
	Parent string
}

// Request is one probe of one slot.
type Request struct {
	// Targets are the route's parents; every one must answer.
	Targets []Target
	// Path requested; the probe rule matches it exactly. Default "/".
	Path string
	// Token is the probe header's value (see Token); the rule sets it in AnswerHeader.
	Token string
	// Split, when set, is the version of the split the route carries now (see Version); the
	// rule sets it in SplitHeader, so an answer with it proves the data plane serves that split.
	Split string
	// Successes is how many answers in a row each target must give (default 1). Set it above
	// the endpoints the data plane may hold for the slot: a round-robin proxy then reaches
	// each of them, stale ones included.
	Successes int
	// AttemptTimeout bounds one request (default DefaultAttemptTimeout).
	AttemptTimeout time.Duration
	// Interval is the wait after a failed attempt (default DefaultInterval).
	Interval time.Duration
}

// Result is what a probe proved.
type Result struct {
	// OK: every target answered Successes times in a row through the probe rule, not 5xx.
	OK bool
	// Status of the last answer; 0 when the last attempt got none.
	Status int
	// Latency is from the start of the probe to the proof, or to giving up.
	Latency time.Duration
	// Attempts counts the requests sent.
	Attempts int
	// Failure says why the last attempt did not prove it ("" when OK): the caller falls back,
	// waits or warns by kind, and metrics count by it.
	Failure Failure
	// Message says what was proven, or why not (the target and its last answer or error).
	Message string
}

// Failure is why an answer (or its absence) proves nothing.
type Failure string

// Failures, from the farthest from the slot to the nearest.
const (
	// NoAnswer: the Gateway's address did not answer (wrong address or port, a network
	// policy, the controller outside the cluster's network): nothing is known of the slot.
	NoAnswer Failure = "NoAnswer"
	// RuleNotServed: the Gateway answered without the probe rule's mark: it does not serve the
	// rule yet, or (GAMMA) the request passed no mesh proxy.
	RuleNotServed Failure = "RuleNotServed"
	// SplitNotServed: the rule answered, from a configuration with an older split.
	SplitNotServed Failure = "SplitNotServed"
	// SlotUnreachable: the rule answered 5xx: the proxy cannot reach the slot (or it fails).
	SlotUnreachable Failure = "SlotUnreachable"
)

// Prober proves that a slot answers through the data plane.
type Prober interface {
	// Probe sends requests until every target proved the slot answers, or ctx ends (then the
	// Result says why not). It never takes longer than ctx allows (DefaultBudget without a
	// deadline).
	Probe(ctx context.Context, req Request) Result
}

// HTTPProber probes over HTTP(S).
type HTTPProber struct {
	// Transport sends the requests. Nil: a transport without keep-alives, so every attempt is
	// a new connection (a Gateway with several replicas behind one address is sampled again on
	// each attempt) that does not verify the Gateway's certificate (the probe carries no
	// credential and proves reachability, not identity).
	Transport http.RoundTripper
}

var _ Prober = (*HTTPProber)(nil)

var defaultTransport = &http.Transport{
	DisableKeepAlives: true,
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see HTTPProber.Transport
}

// Probe implements Prober.
func (p *HTTPProber) Probe(ctx context.Context, req Request) Result {
	start := time.Now()
	req = req.withDefaults()
	if len(req.Targets) == 0 {
		return Result{Message: "no probe target: the route has no parent the controller can send to"}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultBudget)
		defer cancel()
	}
	base := &http.Client{
		Transport: p.Transport,
		// A redirect is an answer: the rule's slot (or a filter) answered it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if base.Transport == nil {
		base.Transport = defaultTransport
	}
	var res Result
	for _, t := range req.Targets {
		client := withServerName(base, t)
		if client != base {
			defer client.CloseIdleConnections() // a clone for this target's TLS name
		}
		streak := 0
		var last answer
		for streak < req.Successes {
			a := attempt(ctx, client, t, req)
			res.Attempts++
			if a.err != nil && ctx.Err() != nil && last.message != "" {
				a = last // the budget ran out mid-request: report the last real answer
			}
			res.Status, res.Failure = a.status, a.failure
			if a.ok {
				streak++
				continue
			}
			streak, last = 0, a
			if !wait(ctx, req.Interval) {
				res.Latency = time.Since(start)
				res.Message = fmt.Sprintf("%s: not proven within %s after %d attempts: %s",
					t.Parent, res.Latency.Round(time.Millisecond), res.Attempts, last.message)
				return res
			}
		}
	}
	res.OK = true
	res.Latency = time.Since(start)
	res.Message = fmt.Sprintf("the slot answered through %s in %s (%d attempts)",
		parents(req.Targets), res.Latency.Round(time.Millisecond), res.Attempts)
	return res
}

// withServerName makes an HTTPS target's TLS handshake name its Host: Gateways choose the
// certificate, and some the listener, by SNI, which would otherwise be the address.
func withServerName(c *http.Client, t Target) *http.Client {
	tr, ok := c.Transport.(*http.Transport)
	if !ok || t.Host == "" || !strings.HasPrefix(t.URL, "https:") {
		return c
	}
	tr = tr.Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{} //nolint:gosec // the caller's transport chose its verification
	}
	tr.TLSClientConfig.ServerName = hostOnly(t.Host)
	out := *c
	out.Transport = tr
	return &out
}

func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

func (r Request) withDefaults() Request {
	if r.Path == "" {
		r.Path = "/"
	}
	if r.Successes < 1 {
		r.Successes = 1
	}
	if r.AttemptTimeout <= 0 {
		r.AttemptTimeout = DefaultAttemptTimeout
	}
	if r.Interval <= 0 {
		r.Interval = DefaultInterval
	}
	return r
}

// answer is the verdict on one attempt.
type answer struct {
	ok      bool
	status  int
	err     error
	failure Failure
	message string
}

func attempt(ctx context.Context, client *http.Client, t Target, req Request) answer {
	ctx, cancel := context.WithTimeout(ctx, req.AttemptTimeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(t.URL, "/")+req.Path, nil)
	if err != nil {
		return answer{err: err, failure: NoAnswer, message: fmt.Sprintf("invalid probe URL %q: %v", t.URL, err)}
	}
	if t.Host != "" {
		hr.Host = t.Host
	}
	hr.Header.Set(Header, req.Token)
	hr.Header.Set("User-Agent", "sluice-probe")
	resp, err := client.Do(hr)
	if err != nil {
		return answer{err: err, failure: NoAnswer, message: fmt.Sprintf("no answer from %s: %v", t.URL, err)}
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	failure, why := Judge(resp.StatusCode, resp.Header, req.Token, req.Split)
	a := answer{ok: failure == "", status: resp.StatusCode, failure: failure, message: why}
	if !a.ok && len(body) > 0 {
		a.message += fmt.Sprintf(" (body %q)", strings.TrimSpace(string(body)))
	}
	return a
}

// Judge decides whether one answer proves that the slot answered through the probe rule (of
// the configuration with split, when split is set): "" if it does, else the Failure and why:
//   - without the token in AnswerHeader the probe rule did not handle the request: the data
//     plane has not programmed it yet (a 404 from the Gateway), or the request did not pass
//     a proxy (a GAMMA probe from outside the mesh);
//   - with another split version in SplitHeader, the data plane still serves an older
//     configuration of the route;
//   - with it, a 5xx means the proxy could not reach the slot (Traefik: 500 for a backendRef
//     it could not resolve, e.g. no EndpointSlice in its view; 503 "no available server"
//     when it knows no ready endpoint; 502 when the connection to the endpoint failed; 504 when
//     it did not answer in time; Envoy-based planes: 503 no healthy upstream, 502, 504), or
//     the slot itself failed: either way its first weight must wait (fail closed);
//   - any other status (2xx, 3xx, 4xx) came from a pod of the slot.
func Judge(status int, h http.Header, token, split string) (Failure, string) {
	if token == "" || h.Get(AnswerHeader) != token {
		return RuleNotServed, fmt.Sprintf("answered %d without the probe rule's %s header: the data plane does not serve the probe rule yet", status, AnswerHeader)
	}
	if got := h.Get(SplitHeader); split != "" && got != split {
		return SplitNotServed, fmt.Sprintf("answered %d through the probe rule of split %q, not %q: the data plane does not serve the current split yet", status, got, split)
	}
	if status >= 500 {
		return SlotUnreachable, fmt.Sprintf("the probe rule answered %d %s: the proxy cannot reach the slot yet", status, http.StatusText(status))
	}
	return "", ""
}

// ErrNoTarget: a route parent offers nothing the controller can send a probe to.
var ErrNoTarget = errors.New("no probe target")

func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func parents(ts []Target) string {
	names := make([]string, 0, len(ts))
	for _, t := range ts {
		names = append(names, t.Parent)
	}
	return strings.Join(names, ", ")
}
