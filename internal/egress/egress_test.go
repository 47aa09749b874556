package egress

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestDefaultAllowsPrivateRangesOnly(t *testing.T) {
	p := Default()
	for host, allowed := range map[string]bool{
		"10.96.0.10":      true,
		"192.168.1.5":     true,
		"fd12::5":         true,
		"8.8.8.8":         false, // public
		"127.0.0.1":       false, // loopback
		"::1":             false,
		"169.254.169.254": false, // metadata (AWS, GCP, Azure)
		"100.100.100.200": false, // metadata (Alibaba), inside the default 100.64.0.0/10
		"fd00:ec2::254":   false, // metadata (AWS, IPv6), inside the default fc00::/7
		"0.0.0.0":         false,
		"224.0.0.1":       false,
	} {
		err := p.CheckHost(host)
		if (err == nil) != allowed {
			t.Errorf("CheckHost(%s) = %v, want allowed=%v", host, err, allowed)
		}
		if err != nil && !strings.Contains(err.Error(), Flag) {
			t.Errorf("the refusal does not say how to change the list: %v", err)
		}
	}
}

func TestListedRangesUnlockReservedAddresses(t *testing.T) {
	p, err := Parse([]string{"127.0.0.0/8", "prometheus.example.com", "*.monitoring.svc"})
	if err != nil {
		t.Fatal(err)
	}
	for host, allowed := range map[string]bool{
		"127.0.0.1":               true,
		"169.254.169.254":         false,
		"prometheus.example.com":  true,
		"PROMETHEUS.example.com.": true,
		"evil.example.com":        true, // not refused yet: the ranges decide once it resolves
		"prom.monitoring.svc":     true,
		"10.0.0.1":                false,
		"fe80::1":                 false,
		"::ffff:127.0.0.1":        true, // IPv4-mapped: judged as IPv4
		"::ffff:169.254.169.254":  false,
	} {
		if err := p.CheckHost(host); (err == nil) != allowed {
			t.Errorf("CheckHost(%s) = %v, want allowed=%v", host, err, allowed)
		}
	}
	names, err := Parse([]string{"prometheus.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := names.CheckHost("evil.example.com"); err == nil {
		t.Error("a list of names only allowed an unlisted name")
	}
	if err := names.CheckHost("monitoring.svc"); err == nil {
		t.Error("an unlisted name was allowed")
	}
}

func TestParseRefusesWhatIsNotAnEntry(t *testing.T) {
	for _, e := range []string{"10.0.0.0/33", "http://prom:9090", "*.", "a..b", "prom:9090"} {
		if _, err := Parse([]string{e}); err == nil || !strings.Contains(err.Error(), Flag) {
			t.Errorf("Parse(%q) = %v, want an error naming %s", e, err, Flag)
		}
	}
}

// The address dialled is the address checked: a listed name that resolves to loopback is
// refused unless a listed range contains the loopback address.
func TestDialerChecksTheResolvedAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dial := func(entries []string, host string, exempt map[string]bool) error {
		p, err := Parse(entries)
		if err != nil {
			t.Fatal(err)
		}
		d := &Dialer{Policy: p, Dialer: &net.Dialer{}, Exempt: exempt}
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
		if err == nil {
			_ = c.Close()
		}
		return err
	}
	if err := dial([]string{"localhost"}, "localhost", nil); !IsRefused(err) {
		t.Errorf("a listed name resolving to loopback: %v, want a refusal", err)
	}
	if err := dial(nil, "127.0.0.1", nil); !IsRefused(err) {
		t.Errorf("loopback under the default list: %v, want a refusal", err)
	}
	if err := dial([]string{"localhost", "127.0.0.0/8", "::1"}, "localhost", nil); err != nil {
		t.Errorf("a listed name and listed loopback ranges: %v, want a connection", err)
	}
	if err := dial([]string{"10.0.0.0/8"}, "127.0.0.1", map[string]bool{net.JoinHostPort("127.0.0.1", port): true}); err != nil {
		t.Errorf("the exempt proxy address: %v, want a connection", err)
	}
}
