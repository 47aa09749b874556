package gates

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"golang.org/x/net/http/httpproxy"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/egress"
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
	refused   []error // per address: the egress policy's refusal, known before any query
	clients   []promv1.API
	timeout   time.Duration
	transport *http.Transport
}

// NewPrometheusSource builds a source from a HealthGate's spec.prometheus and the credentials
// of its Secret (zero Auth when there is none). policy limits the addresses it may call (nil:
// any address; the manager always passes its --gate-egress-allow policy). Credentials are sent
// only over https: an http:// address with credentials is an error, not a downgrade.
func NewPrometheusSource(spec meshv1alpha1.PrometheusSource, auth Auth, policy *egress.Policy) (*PrometheusSource, error) {
	if len(spec.Addresses) == 0 {
		return nil, errors.New("spec.prometheus.addresses is empty")
	}
	hosts := make([]string, len(spec.Addresses))
	for i, addr := range spec.Addresses {
		u, err := url.Parse(addr)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("spec.prometheus.addresses[%d]: %q is not an http or https URL with a host", i, addr)
		}
		if auth.hasCredentials() && u.Scheme != "https" {
			return nil, fmt.Errorf("spec.prometheus.secretRef: credentials are sent only over https, and spec.prometheus.addresses[%d] is %s://%s: use https (with ca.crt for a private CA), or a Secret without token, username and password", i, u.Scheme, u.Host)
		}
		hosts[i] = u.Hostname()
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
		DialContext:         dialer(policy),
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 5 * time.Second,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
	var rt http.RoundTripper = transport
	if auth.hasCredentials() {
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
	allRefused := policy != nil
	for i, addr := range spec.Addresses {
		c, err := promapi.NewClient(promapi.Config{Address: addr, Client: httpClient})
		if err != nil {
			return nil, fmt.Errorf("spec.prometheus.addresses[%d]: %q: %w", i, addr, err)
		}
		var refusal error
		if policy != nil {
			refusal = policy.CheckHost(hosts[i])
		}
		allRefused = allRefused && refusal != nil
		s.addresses = append(s.addresses, addr)
		s.refused = append(s.refused, refusal)
		s.clients = append(s.clients, promv1.NewAPI(c))
	}
	if allRefused {
		return nil, fmt.Errorf("spec.prometheus.addresses[0]: %w", s.refused[0])
	}
	return s, nil
}

func (a Auth) hasCredentials() bool { return a.Token != "" || a.Username != "" || a.Password != "" }

// dialer connects only where policy allows (nil: anywhere). The HTTP proxy the manager is
// configured with (HTTP_PROXY, HTTPS_PROXY) is dialled unchecked: it is then the place that
// enforces egress, and the request's own host was checked by CheckHost.
func dialer(policy *egress.Policy) func(ctx context.Context, network, address string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if policy == nil {
		return d.DialContext
	}
	exempt := map[string]bool{}
	cfg := httpproxy.FromEnvironment()
	for _, p := range []string{cfg.HTTPProxy, cfg.HTTPSProxy} {
		if u, err := url.Parse(p); err == nil && u.Host != "" {
			port := u.Port()
			if port == "" {
				port = map[string]string{"https": "443"}[u.Scheme]
				if port == "" {
					port = "80"
				}
			}
			exempt[net.JoinHostPort(u.Hostname(), port)] = true
		}
	}
	return (&egress.Dialer{Policy: policy, Dialer: d, Exempt: exempt}).DialContext
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
		if s.refused[i] != nil {
			unreachable.Attempts = append(unreachable.Attempts, AddressError{addr, s.refused[i]})
			continue
		}
		actx, cancel := context.WithTimeout(ctx, s.timeout)
		// The timeout is sent too, so Prometheus stops evaluating a query nobody waits for.
		// Infos (e.g. "metric might not be a counter") are hints to query authors, not errors.
		v, warnings, _, err := api.Query(actx, query, at, promv1.WithTimeout(s.timeout))
		cancel()
		if err == nil {
			for i := range warnings {
				warnings[i] = clip(warnings[i], 200)
			}
			return Answer{Value: v, Address: addr, Warnings: warnings[:min(len(warnings), 3)]}, nil
		}
		if ctx.Err() != nil {
			// The caller gave up (shutdown, reconcile deadline): not the addresses' fault, but
			// still no answer, and the remaining addresses must not be tried.
			unreachable.Attempts = append(unreachable.Attempts, AddressError{addr, ctx.Err()})
			return Answer{}, unreachable
		}
		var apiErr *promv1.Error
		if errors.As(err, &apiErr) && (apiErr.Type == promv1.ErrBadData || apiErr.Type == promv1.ErrExec) {
			return Answer{Address: addr}, &QueryError{Address: addr, Type: string(apiErr.Type), Msg: clip(apiErr.Msg, 300)}
		}
		// Everything else says nothing about the query: connection refused, timeout, 5xx
		// (including Prometheus's own timeout/canceled), 401/403/404 and other non-API 4xx
		// (wrong credentials, wrong path prefix), or a body that is not Prometheus JSON.
		unreachable.Attempts = append(unreachable.Attempts, AddressError{addr, describe(err)})
	}
	return Answer{}, unreachable
}

// describe turns a failed attempt into what a person needs in status, and never more: not
// the answer's body (an address may be something other than Prometheus, and whoever wrote the
// HealthGate must not read its answers through Sluice: server-side request forgery), and not the
// client's raw error (it names internal addresses and sockets). What is kept: the HTTP status,
// Prometheus's error type, and a category of the transport failure.
func describe(err error) error {
	var refused *egress.RefusedError
	if errors.As(err, &refused) {
		return refused
	}
	var apiErr *promv1.Error
	if errors.As(err, &apiErr) {
		code := httpStatus.FindStringSubmatch(apiErr.Msg)
		switch {
		case code != nil && (code[1] == "401" || code[1] == "403"):
			return fmt.Errorf("answered HTTP %s (check the credentials in spec.prometheus.secretRef)", code[1])
		case code != nil && code[1][0] == '3':
			return fmt.Errorf("answered HTTP %s (redirects are not followed: name the final address)", code[1])
		case code != nil && code[1] == "404":
			return errors.New("answered HTTP 404 (is the address the Prometheus server's root, without /api/v1?)")
		case code != nil:
			return fmt.Errorf("answered HTTP %s", code[1])
		case apiErr.Type == promv1.ErrTimeout || apiErr.Type == promv1.ErrCanceled:
			return fmt.Errorf("the Prometheus server gave up on the query (%s)", apiErr.Type)
		case apiErr.Type == promv1.ErrBadResponse:
			return errors.New("the answer is not the Prometheus query API's (a redirect, or not a Prometheus server)")
		}
		return fmt.Errorf("the Prometheus server reported an error of type %q", apiErr.Type)
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authorityErr x509.UnknownAuthorityError
	var netErr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return errors.New("timed out")
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return errors.New("host name not found (DNS)")
	case errors.As(err, &dnsErr):
		return errors.New("DNS lookup failed")
	case errors.Is(err, syscall.ECONNREFUSED):
		return errors.New("connection refused")
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("connection closed by the server")
	case errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH):
		return errors.New("no route to host")
	case errors.As(err, &hostErr):
		return errors.New("TLS: the server's certificate is not for this host name")
	case errors.As(err, &authorityErr) || errors.As(err, &certErr):
		return errors.New("TLS: the server's certificate is not trusted (a private CA goes into ca.crt of spec.prometheus.secretRef)")
	case strings.Contains(err.Error(), "tls:") || strings.Contains(err.Error(), "x509:"):
		return errors.New("TLS handshake failed")
	}
	return errors.New("the connection failed")
}

// httpStatus is how the Prometheus client says a response had a non-API status code.
var httpStatus = regexp.MustCompile(`^(?:client error: |server error: |bad response code )(\d{3})$`)

// clip bounds text a server wrote (Prometheus's own error and warning messages are kept: they
// explain a rejected query) to n bytes of printable characters.
func clip(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
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
