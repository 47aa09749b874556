package probe

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func listener(name string, port int32, proto gwv1.ProtocolType, host string) gwv1.Listener {
	l := gwv1.Listener{Name: gwv1.SectionName(name), Port: port, Protocol: proto}
	if host != "" {
		l.Hostname = ptr.To(gwv1.Hostname(host))
	}
	return l
}

func gatewayWith(addrs []gwv1.GatewayStatusAddress, ls ...gwv1.Listener) *gwv1.Gateway {
	return &gwv1.Gateway{
		ObjectMeta: metav1.ObjectMeta{Namespace: "gateways", Name: "edge"},
		Spec:       gwv1.GatewaySpec{GatewayClassName: "traefik", Listeners: ls},
		Status:     gwv1.GatewayStatus{Addresses: addrs},
	}
}

func ip(v string) gwv1.GatewayStatusAddress { return gwv1.GatewayStatusAddress{Value: v} }

func hostnames(hs ...string) []gwv1.Hostname {
	out := make([]gwv1.Hostname, 0, len(hs))
	for _, h := range hs {
		out = append(out, gwv1.Hostname(h))
	}
	return out
}

func TestGatewayTarget(t *testing.T) {
	web := listener("web", 8000, gwv1.HTTPProtocolType, "")
	websecure := listener("websecure", 8443, gwv1.HTTPSProtocolType, "")
	shop := listener("shop", 8001, gwv1.HTTPProtocolType, "*.shop.example.com")
	tcp := listener("db", 5432, gwv1.TCPProtocolType, "")
	addr := []gwv1.GatewayStatusAddress{ip("10.96.0.10")}
	unprogrammed := gatewayWith(addr, web, websecure)
	unprogrammed.Status.Listeners = []gwv1.ListenerStatus{{Name: "web", Conditions: []metav1.Condition{{Type: string(gwv1.ListenerConditionProgrammed), Status: metav1.ConditionFalse}}}}

	cases := []struct {
		name      string
		gw        *gwv1.Gateway
		ref       gwv1.ParentReference
		hostnames []gwv1.Hostname
		want      Target
		err       string
	}{
		{name: "the e2e Gateway", gw: gatewayWith(addr, web), hostnames: hostnames("demo.example.com"),
			want: Target{URL: "http://10.96.0.10:8000", Host: "demo.example.com", Parent: "Gateway gateways/edge listener web"}},
		{name: "HTTP preferred over HTTPS", gw: gatewayWith(addr, websecure, web),
			want: Target{URL: "http://10.96.0.10:8000", Parent: "Gateway gateways/edge listener web"}},
		{name: "sectionName picks the HTTPS listener", gw: gatewayWith(addr, web, websecure), ref: gwv1.ParentReference{SectionName: ptr.To(gwv1.SectionName("websecure"))},
			hostnames: hostnames("shop.example.com"), want: Target{URL: "https://10.96.0.10:8443", Host: "shop.example.com", Parent: "Gateway gateways/edge listener websecure"}},
		{name: "port picks the listener", gw: gatewayWith(addr, web, shop), ref: gwv1.ParentReference{Port: ptr.To(gwv1.PortNumber(8001))},
			want: Target{URL: "http://10.96.0.10:8001", Host: "sluice-probe.shop.example.com", Parent: "Gateway gateways/edge listener shop"}},
		{name: "a Hostname address", gw: gatewayWith([]gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.HostnameAddressType), Value: "lb.example.net"}}, web),
			want: Target{URL: "http://lb.example.net:8000", Parent: "Gateway gateways/edge listener web"}},
		{name: "an IPv6 address", gw: gatewayWith([]gwv1.GatewayStatusAddress{ip("fd00::10")}, web),
			want: Target{URL: "http://[fd00::10]:8000", Parent: "Gateway gateways/edge listener web"}},
		{name: "a named address is skipped", gw: gatewayWith([]gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.NamedAddressType), Value: "pool-a"}, ip("10.0.0.1")}, web),
			want: Target{URL: "http://10.0.0.1:8000", Parent: "Gateway gateways/edge listener web"}},
		{name: "a listener reported unprogrammed is skipped", gw: unprogrammed, hostnames: hostnames("shop.example.com"),
			want: Target{URL: "https://10.96.0.10:8443", Host: "shop.example.com", Parent: "Gateway gateways/edge listener websecure"}},
		{name: "a wildcard listener and an exact route hostname", gw: gatewayWith(addr, shop), hostnames: hostnames("other.example.com", "api.shop.example.com"),
			want: Target{URL: "http://10.96.0.10:8001", Host: "api.shop.example.com", Parent: "Gateway gateways/edge listener shop"}},
		{name: "a wildcard route hostname under no listener hostname", gw: gatewayWith(addr, web), hostnames: hostnames("*.example.com"),
			want: Target{URL: "http://10.96.0.10:8000", Host: "sluice-probe.example.com", Parent: "Gateway gateways/edge listener web"}},
		{name: "no address yet", gw: gatewayWith(nil, web), err: "no address in status.addresses"},
		{name: "only a named address", gw: gatewayWith([]gwv1.GatewayStatusAddress{{Type: ptr.To(gwv1.NamedAddressType), Value: "pool-a"}}, web), err: "no IPAddress or Hostname address"},
		{name: "a TCP listener only", gw: gatewayWith(addr, tcp), err: "listener db speaks TCP"},
		{name: "no listener of that name", gw: gatewayWith(addr, web), ref: gwv1.ParentReference{SectionName: ptr.To(gwv1.SectionName("admin"))}, err: "no listener matches the parentRef's sectionName admin"},
		{name: "hostnames that do not meet", gw: gatewayWith(addr, shop), hostnames: hostnames("shop.example.com"), err: "listener shop accepts none of the route's hostnames"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := GatewayTarget(tc.gw, tc.ref, tc.hostnames)
			if tc.err != "" {
				if !errors.Is(err, ErrNoTarget) || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "Gateway gateways/edge") {
					t.Fatalf("error %v, want ErrNoTarget with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestCommonHost(t *testing.T) {
	cases := []struct {
		listener string
		route    []string
		want     string
		ok       bool
	}{
		{"", nil, "", true},
		{"shop.example.com", nil, "shop.example.com", true},
		{"*.example.com", nil, "sluice-probe.example.com", true},
		{"", []string{"a.example.com"}, "a.example.com", true},
		{"A.Example.com", []string{"a.example.com"}, "a.example.com", true},
		{"*.example.com", []string{"example.com"}, "", false}, // a wildcard needs one more label
		{"*.example.com", []string{"*.b.example.com"}, "sluice-probe.b.example.com", true},
		{"*.b.example.com", []string{"*.example.com"}, "sluice-probe.b.example.com", true},
		{"a.example.com", []string{"*.example.com"}, "a.example.com", true},
		{"a.example.com", []string{"b.example.com"}, "", false},
	}
	for _, tc := range cases {
		var l *gwv1.Hostname
		if tc.listener != "" {
			l = ptr.To(gwv1.Hostname(tc.listener))
		}
		got, ok := commonHost(l, hostnames(tc.route...))
		if got != tc.want || ok != tc.ok {
			t.Errorf("commonHost(%q, %v) = %q %v, want %q %v", tc.listener, tc.route, got, ok, tc.want, tc.ok)
		}
	}
}

func TestServiceTarget(t *testing.T) {
	svc := func(ip string, ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "checkout"}, Spec: corev1.ServiceSpec{ClusterIP: ip, Ports: ports}}
	}
	http := corev1.ServicePort{Name: "http", Port: 80}
	grpc := corev1.ServicePort{Name: "grpc", Port: 9090}
	cases := []struct {
		name string
		svc  *corev1.Service
		ref  gwv1.ParentReference
		want Target
		err  string
	}{
		{name: "the only port", svc: svc("10.96.1.2", http),
			want: Target{URL: "http://10.96.1.2:80", Host: "checkout.shop.svc", Parent: "Service shop/checkout port 80"}},
		{name: "by port", svc: svc("10.96.1.2", grpc, http), ref: gwv1.ParentReference{Port: ptr.To(gwv1.PortNumber(80))},
			want: Target{URL: "http://10.96.1.2:80", Host: "checkout.shop.svc", Parent: "Service shop/checkout port 80"}},
		{name: "by port name", svc: svc("10.96.1.2", grpc, http), ref: gwv1.ParentReference{SectionName: ptr.To(gwv1.SectionName("http"))},
			want: Target{URL: "http://10.96.1.2:80", Host: "checkout.shop.svc", Parent: "Service shop/checkout port 80"}},
		{name: "two ports, none chosen", svc: svc("10.96.1.2", grpc, http), err: "has 2 ports and the parentRef names none"},
		{name: "no such port", svc: svc("10.96.1.2", http), ref: gwv1.ParentReference{Port: ptr.To(gwv1.PortNumber(8080))}, err: "no port matches the parentRef's port 8080"},
		{name: "headless", svc: svc(corev1.ClusterIPNone, http), err: "has no cluster IP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ServiceTarget(tc.svc, tc.ref)
			if tc.err != "" {
				if !errors.Is(err, ErrNoTarget) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want ErrNoTarget with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
