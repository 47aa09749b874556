// Package egress decides which network addresses the manager may call on a user's behalf.
// A HealthGate names the Prometheus addresses the manager queries, so whoever may create a
// HealthGate could otherwise make the manager call anything it can reach (server-side request
// forgery): the cloud's metadata service, the node's loopback, an internal admin API.
//
// A Policy allows host names (exact, or "*.suffix") and address ranges (CIDRs, single IPs). A
// connection is allowed when its host name is allowed or every address the name resolves to
// lies in an allowed range. Whatever the name, loopback, link-local (cloud metadata lives
// there), unspecified, multicast and the known metadata addresses are refused unless a listed
// range contains them; the address is checked after resolution, on the address actually
// dialled, so a name that resolves somewhere else later (DNS rebinding) is still caught.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Policy is an egress allow-list. The zero value allows nothing; use Parse or Default.
type Policy struct {
	names    []string // exact host names, lower case
	suffixes []string // ".suffix" of "*.suffix" entries
	nets     []netip.Prefix
	// unlock: a listed range containing a refused address allows it. Only a configured list
	// unlocks: the default's 100.64.0.0/10 must not allow 100.100.100.200.
	unlock bool
	source string // what to tell a person who wants to change it
}

// DefaultEntries is the allow-list when none is configured: the private address ranges, where
// a cluster's Services and pods live (RFC 1918, RFC 4193 unique local, RFC 6598 shared
// address space), and no public address.
var DefaultEntries = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"}

// Flag is the manager flag that sets the list (named in refusals).
const Flag = "--gate-egress-allow"

// refused are never dialled unless a listed range contains the address. They overlap the
// default ranges on purpose: 100.100.100.200 (a cloud's metadata service) is in 100.64.0.0/10,
// and a default entry does not unlock it.
var refused = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), // loopback
	netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10"), // link-local, metadata
	netip.MustParsePrefix("0.0.0.0/8"), netip.MustParsePrefix("::/128"), // unspecified, "this network"
	netip.MustParsePrefix("224.0.0.0/4"), netip.MustParsePrefix("ff00::/8"), // multicast
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS metadata over IPv6
}

// Default is the policy of DefaultEntries.
func Default() *Policy {
	p, err := parse(DefaultEntries)
	if err != nil {
		panic(err) // constant input
	}
	p.source = "the default (private address ranges only; set " + Flag + " to change it)"
	return p
}

// Parse builds a policy from entries: host names ("prometheus.monitoring.svc"), wildcards
// ("*.monitoring.svc": any name ending so, not the bare suffix), IPs and CIDRs. An empty list
// is the Default.
func Parse(entries []string) (*Policy, error) {
	if len(entries) == 0 {
		return Default(), nil
	}
	p, err := parse(entries)
	if err != nil {
		return nil, err
	}
	p.unlock = true
	p.source = Flag + "=" + strings.Join(entries, ",")
	return p, nil
}

func parse(entries []string) (*Policy, error) {
	p := &Policy{}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
			continue
		case strings.Contains(e, "/"):
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR: %w", Flag, e, err)
			}
			p.nets = append(p.nets, pfx.Masked())
		case isIP(e):
			ip, _ := netip.ParseAddr(e)
			p.nets = append(p.nets, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		case strings.HasPrefix(e, "*."):
			if !validName(e[2:]) {
				return nil, fmt.Errorf("%s: %q is not a host name pattern (*.example.com)", Flag, e)
			}
			p.suffixes = append(p.suffixes, e[1:])
		default:
			if !validName(e) {
				return nil, fmt.Errorf("%s: %q is not a host name, IP or CIDR", Flag, e)
			}
			p.names = append(p.names, strings.TrimSuffix(e, "."))
		}
	}
	return p, nil
}

func isIP(s string) bool { _, err := netip.ParseAddr(s); return err == nil }

func validName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
				return false
			}
		}
	}
	return true
}

// RefusedError says why an address may not be called.
type RefusedError struct {
	Host   string
	Reason string
	Policy string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s is not allowed by the manager's egress allow-list (%s): %s", e.Host, e.Policy, e.Reason)
}

// IsRefused says whether err is (or wraps) a refusal of the policy.
func IsRefused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// nameAllowed says whether a host name (not an IP literal) is listed.
func (p *Policy) nameAllowed(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, n := range p.names {
		if host == n {
			return true
		}
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(host, s) {
			return true
		}
	}
	return false
}

func (p *Policy) inListed(ip netip.Addr) bool {
	for _, n := range p.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// checkIP says whether ip may be dialled for host (the name it came from, or the IP itself).
func (p *Policy) checkIP(host string, ip netip.Addr, nameOK bool) error {
	ip = ip.Unmap()
	for _, r := range refused {
		if r.Contains(ip) {
			if p.unlock && p.inListed(ip) {
				return nil
			}
			return &RefusedError{Host: host, Policy: p.source, Reason: fmt.Sprintf("%s is a loopback, link-local, metadata or otherwise reserved address, allowed only when a listed range contains it", ip)}
		}
	}
	if nameOK || p.inListed(ip) {
		return nil
	}
	return &RefusedError{Host: host, Policy: p.source, Reason: fmt.Sprintf("it resolves to %s, which no listed range contains", ip)}
}

// CheckHost is the check that needs no DNS: a listed name, or an IP literal the policy allows.
// A name that is not listed may still be allowed by the ranges its addresses lie in: that is
// decided when dialling.
func (p *Policy) CheckHost(host string) error {
	if ip, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return p.checkIP(host, ip, false)
	}
	if !p.nameAllowed(host) && len(p.nets) == 0 {
		return &RefusedError{Host: host, Policy: p.source, Reason: "the host name is not listed"}
	}
	return nil
}

// Dialer dials only what the policy allows: it resolves the host itself and connects to a
// checked address, so the address checked is the address used. exempt are "host:port"
// addresses dialled unchecked (the HTTP proxy the manager is configured with: the proxy is
// then the place that enforces egress, and the request's host is still checked by CheckHost).
type Dialer struct {
	Policy   *Policy
	Dialer   *net.Dialer
	Resolver *net.Resolver
	Exempt   map[string]bool
}

// DialContext implements http.Transport.DialContext.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if d.Exempt[address] {
		return d.Dialer.DialContext(ctx, network, address)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	nameOK := false
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		nameOK = d.Policy.nameAllowed(host)
		r := d.Resolver
		if r == nil {
			r = net.DefaultResolver
		}
		if ips, err = r.LookupNetIP(ctx, "ip", host); err != nil {
			return nil, err
		}
	}
	// Every address must pass: a name that resolves to one public and one metadata address
	// must not reach the metadata one by the dialler's choice.
	for _, ip := range ips {
		if err := d.Policy.checkIP(host, ip, nameOK); err != nil {
			return nil, err
		}
	}
	var last error
	for _, ip := range ips {
		conn, err := d.Dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		last = err
	}
	return nil, last
}
