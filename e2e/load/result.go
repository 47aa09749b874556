package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Result is one request the Generator sent (recorded with Keep).
type Result struct {
	// ID is the value sent in the Generator's IDHeader ("" without one).
	ID         string
	Start, End time.Time
	// Code is the HTTP status, 0 when no answer came (Err says why).
	Code int
	Err  error
	// App is set when the demo app answered (the response has X-Version); nil for answers
	// the Gateway made itself (404 without a route, 502/503/504) and for transport errors.
	App *AppInfo
}

// AppInfo is what the demo app said about itself in its answer.
type AppInfo struct {
	Version, Pod string
	// Ready: its readiness endpoint would have answered 200 when the request arrived.
	Ready bool
	// Terminating: it had received SIGTERM before the request arrived.
	Terminating bool
}

// Failed reports whether the request did not get a 2xx answer.
func (r Result) Failed() bool { return r.Code < 200 || r.Code > 299 }

// Causes of a failed request, as Cause names them.
const (
	CauseOK         = "ok"
	CauseAppError   = "app 5xx" // the demo app answered 5xx (a bad version's injected errors)
	CauseRefused    = "connection refused"
	CauseReset      = "connection reset" // the peer closed the connection under the request
	CauseTimeout    = "timeout"
	CauseTransport  = "transport error"
	gatewayCausePfx = "gateway " // + the status: 404 (no route), 502, 503, 504 from the Gateway itself
)

// Cause names why a request failed: CauseOK for a 2xx, CauseAppError for a 5xx the app
// answered, "gateway <code>" for any other status (the Gateway's own answer, or an app's 4xx),
// and the kind of transport error otherwise.
func (r Result) Cause() string {
	switch {
	case r.Err == nil && !r.Failed():
		return CauseOK
	case r.Err == nil && r.App != nil && r.Code >= 500:
		return CauseAppError
	case r.Err == nil && r.App != nil:
		return fmt.Sprintf("app %d", r.Code)
	case r.Err == nil:
		return fmt.Sprintf("%s%d", gatewayCausePfx, r.Code)
	}
	var ne net.Error
	switch {
	case errors.Is(r.Err, syscall.ECONNREFUSED):
		return CauseRefused
	case errors.Is(r.Err, syscall.ECONNRESET), errors.Is(r.Err, io.EOF), errors.Is(r.Err, io.ErrUnexpectedEOF), errors.Is(r.Err, syscall.EPIPE):
		return CauseReset
	case errors.Is(r.Err, context.DeadlineExceeded), errors.As(r.Err, &ne) && ne.Timeout():
		return CauseTimeout
	}
	return CauseTransport
}
