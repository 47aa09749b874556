package load

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// maxFailures bounds the failures a Generator keeps (the counts go on).
const maxFailures = 1000

// maxFailureBody is how much of a failed answer's body is kept.
const maxFailureBody = 200

// Failure is one request that did not get a 200: what answered, or what went wrong, and when.
// Tests explain failed requests with it (a proxy's "no available server" is not a pod's 500).
type Failure struct {
	// Start and End are when the request was sent and when it completed.
	Start, End time.Time
	// Code is the status (0 for a transport error).
	Code int
	// Version is the demo app's X-Version header ("" when no pod answered).
	Version string
	// Body is the start of the answer's body; Err the transport error.
	Body, Err string
	// Server is the answer's Server header (a proxy names itself there, a pod usually not).
	Server string
}

func (f Failure) String() string {
	at := f.End.Format("15:04:05.000")
	if f.Code == 0 {
		return fmt.Sprintf("%s (%s) transport error: %s", at, f.End.Sub(f.Start).Round(time.Millisecond), f.Err)
	}
	return fmt.Sprintf("%s (%s) %d version %q server %q body %q", at, f.End.Sub(f.Start).Round(time.Millisecond), f.Code, f.Version, f.Server, f.Body)
}

// failureOf describes a failed answer; the body is read (up to maxFailureBody) and the rest
// left to the caller to drain.
func failureOf(start, end time.Time, resp *http.Response) Failure {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxFailureBody))
	return Failure{Start: start, End: end, Code: resp.StatusCode, Version: resp.Header.Get("X-Version"),
		Body: strings.TrimSpace(string(body)), Server: resp.Header.Get("Server")}
}

func (c *Counts) addFailure(f Failure) {
	if len(c.Failures) < maxFailures {
		c.Failures = append(c.Failures, f)
	}
}
