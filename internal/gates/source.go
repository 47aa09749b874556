package gates

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// MetricSource runs instant PromQL queries. Implementations must be safe for concurrent use.
type MetricSource interface {
	// Query evaluates query at the instant at. A failure is an *UnreachableError (no address
	// could answer) or a *QueryError (an address answered and rejected the query).
	Query(ctx context.Context, query string, at time.Time) (Answer, error)
}

// Answer is the result of one query and where it came from.
type Answer struct {
	Value model.Value
	// Address is the Prometheus address that answered.
	Address string
	// Warnings Prometheus attached to the answer (e.g. "metric might not be a counter").
	Warnings []string
}

// UnreachableError means no address gave an answer: every one failed at the transport level,
// timed out, answered 5xx, refused the credentials, or is not a Prometheus API. Evaluate turns
// it into the Unreachable verdict, which never counts toward rollback.
type UnreachableError struct {
	// Attempts holds one error per address, in the order tried.
	Attempts []AddressError
}

// AddressError is why one address gave no answer.
type AddressError struct {
	Address string
	Err     error
}

func (e *UnreachableError) Error() string {
	parts := make([]string, 0, len(e.Attempts))
	for _, a := range e.Attempts {
		parts = append(parts, a.Address+": "+a.Err.Error())
	}
	return "prometheus unreachable: " + strings.Join(parts, "; ")
}

// QueryError means a Prometheus answered and rejected the query itself (bad_data: PromQL that
// does not parse after expansion; execution: e.g. many-to-many matching). Asking another
// address would give the same answer, so none is tried.
type QueryError struct {
	Address string
	Type    string // Prometheus errorType: bad_data or execution
	Msg     string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("query rejected by %s (%s): %s", e.Address, e.Type, e.Msg)
}

// Auth is what the caller read from spec.prometheus.secretRef. It is a plain struct so that
// this package needs no Kubernetes client: the controller reads the Secret.
type Auth struct {
	// Token is sent as "Authorization: Bearer <token>" (Secret key `token`).
	Token string
	// Username and Password are sent as basic auth (Secret keys `username`, `password`);
	// ignored when Token is set.
	Username, Password string
	// CA is a PEM bundle (Secret key `ca.crt`). When set, it replaces the system roots for
	// https addresses, so a private Prometheus is trusted only through its own CA.
	CA []byte
}

// PrometheusSource is a MetricSource over the Prometheus HTTP API with one or more addresses
// tried in order.
//
// Build it once per HealthGate revision and keep it: it owns an http.Transport whose
// connection pool is reused by every query. A good cache key for the caller is
// gate UID + metadata.generation + the Secret's resourceVersion, so a changed address, timeout
// or credential builds a new source; call Close on the one it replaces.
type PrometheusSource struct {
	addresses []string
	clients   []promv1.API
	timeout   time.Duration
	transport *http.Transport
}

// NewPrometheusSource builds a source from a HealthGate's spec.prometheus and the credentials
// of its Secret (zero Auth when there is none).
func NewPrometheusSource(spec meshv1alpha1.PrometheusSource, auth Auth) (*PrometheusSource, error) {
	if len(spec.Addresses) == 0 {
		return nil, errors.New("spec.prometheus.addresses is empty")
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(auth.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(auth.CA) {
			return nil, errors.New("ca.crt holds no PEM certificate")
		}
		tlsConfig.RootCAs = pool
	}
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		// A dead address must fail fast enough to leave time for the next one; the query
		// timeout still bounds every attempt.
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	var rt http.RoundTripper = transport
	if auth.Token != "" || auth.Username != "" || auth.Password != "" {
		rt = &authRoundTripper{auth: auth, next: transport}
	}
	httpClient := &http.Client{
		Transport: rt,
		// The credentials are added to every request the transport sends, redirected ones
		// too, so following a redirect could hand them to another host. The query API does
		// not redirect; a 3xx is reported as a bad response and the next address is tried.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}

	s := &PrometheusSource{timeout: spec.GetTimeout(), transport: transport}
	for _, addr := range spec.Addresses {
		c, err := promapi.NewClient(promapi.Config{Address: addr, Client: httpClient})
		if err != nil {
			return nil, fmt.Errorf("spec.prometheus.addresses: %q: %w", addr, err)
		}
		s.addresses = append(s.addresses, addr)
		s.clients = append(s.clients, promv1.NewAPI(c))
	}
	return s, nil
}

// Close releases the idle connections of a source the caller is replacing. A query still in
// flight on it completes normally (its connection then idles out after 90 s), so a cache
// may Close a source another reconcile is still using.
func (s *PrometheusSource) Close() { s.transport.CloseIdleConnections() }

// Query runs query at each address in turn until one answers. Each attempt has its own
// timeout (spec.prometheus.timeout), so the worst case is timeout × addresses.
func (s *PrometheusSource) Query(ctx context.Context, query string, at time.Time) (Answer, error) {
	unreachable := &UnreachableError{}
	for i, api := range s.clients {
		addr := s.addresses[i]
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		// The timeout is sent too, so Prometheus stops evaluating a query nobody waits for.
		// Infos (e.g. "metric might not be a counter") are hints to query authors, not errors.
		v, warnings, _, err := api.Query(actx, query, at, promv1.WithTimeout(s.timeout))
		cancel()
		if err == nil {
			return Answer{Value: v, Address: addr, Warnings: warnings}, nil
		}
		if ctx.Err() != nil {
			// The caller gave up (shutdown, reconcile deadline): not the addresses' fault, but
			// still no answer, and the remaining addresses must not be tried.
			unreachable.Attempts = append(unreachable.Attempts, AddressError{addr, ctx.Err()})
			return Answer{}, unreachable
		}
		var apiErr *promv1.Error
		if errors.As(err, &apiErr) && (apiErr.Type == promv1.ErrBadData || apiErr.Type == promv1.ErrExec) {
			return Answer{Address: addr}, &QueryError{Address: addr, Type: string(apiErr.Type), Msg: apiErr.Msg}
		}
		// Everything else says nothing about the query: connection refused, timeout, 5xx
		// (including Prometheus's own timeout/canceled), 401/403/404 and other non-API 4xx
		// (wrong credentials, wrong path prefix), or a body that is not Prometheus JSON.
		unreachable.Attempts = append(unreachable.Attempts, AddressError{addr, describe(err)})
	}
	return Answer{}, unreachable
}

// describe shortens client errors to what a person needs in a status message.
func describe(err error) error {
	var apiErr *promv1.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Type {
		case promv1.ErrClient:
			if strings.Contains(apiErr.Msg, "401") || strings.Contains(apiErr.Msg, "403") {
				return fmt.Errorf("%s (check the credentials in spec.prometheus.secretRef)", apiErr.Msg)
			}
			return errors.New(apiErr.Msg)
		case promv1.ErrServer, promv1.ErrBadResponse:
			return errors.New(apiErr.Msg)
		}
		return fmt.Errorf("%s: %s", apiErr.Type, apiErr.Msg)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timed out")
	}
	return err
}

// authRoundTripper adds the credentials to every request (redirects are not followed, see
// NewPrometheusSource).
type authRoundTripper struct {
	auth Auth
	next http.RoundTripper
}

func (a *authRoundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context()) // a RoundTripper must not modify the caller's request
	if a.auth.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.auth.Token)
	} else {
		req.SetBasicAuth(a.auth.Username, a.auth.Password)
	}
	return a.next.RoundTrip(req)
}
