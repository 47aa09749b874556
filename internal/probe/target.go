package probe

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// probeLabel replaces the wildcard of a wildcard hostname: the Host a probe sends must be a
// name, and any name under the wildcard is accepted by the listener and the route.
const probeLabel = "sluice-probe"

// GatewayTarget is where to probe a route through the Gateway parent ref points at (gw, read
// by the caller): the first address the Gateway reports in status.addresses (IPAddress or
// Hostname), on the port of a listener the ref selects (sectionName, port) that speaks HTTP or
// HTTPS (HTTP preferred) and is not reported unprogrammed, with a Host the listener and the
// route both accept. The Gateway API has no other way to say where a listener is reached;
// where the address does not serve the listener's port (Traefik's Helm chart maps Service port
// 80 to listener port 8000), the caller needs an override. Errors wrap ErrNoTarget and say why.
func GatewayTarget(gw *gwv1.Gateway, ref gwv1.ParentReference, routeHostnames []gwv1.Hostname) (Target, error) {
	parent := "Gateway " + gw.Namespace + "/" + gw.Name
	addr, err := gatewayAddress(gw)
	if err != nil {
		return Target{}, fmt.Errorf("%w: %s: %w", ErrNoTarget, parent, err)
	}
	var https *Target
	var why []string
	for _, l := range gw.Spec.Listeners {
		if ref.SectionName != nil && *ref.SectionName != l.Name {
			continue
		}
		if ref.Port != nil && *ref.Port != l.Port {
			continue
		}
		name := fmt.Sprintf("%s listener %s", parent, l.Name)
		scheme := ""
		switch l.Protocol {
		case gwv1.HTTPProtocolType:
			scheme = "http"
		case gwv1.HTTPSProtocolType:
			scheme = "https"
		default:
			why = append(why, fmt.Sprintf("listener %s speaks %s", l.Name, l.Protocol))
			continue
		}
		if notProgrammed(gw, l.Name) {
			why = append(why, fmt.Sprintf("listener %s is not programmed", l.Name))
			continue
		}
		host, ok := commonHost(l.Hostname, routeHostnames)
		if !ok {
			why = append(why, fmt.Sprintf("listener %s accepts none of the route's hostnames", l.Name))
			continue
		}
		t := Target{URL: scheme + "://" + net.JoinHostPort(addr, strconv.Itoa(int(l.Port))), Host: host, Parent: name}
		if scheme == "http" {
			return t, nil
		}
		if https == nil {
			https = &t
		}
	}
	if https != nil {
		return *https, nil
	}
	if len(why) == 0 {
		why = append(why, "no listener matches the parentRef"+selector(ref))
	}
	return Target{}, fmt.Errorf("%w: %s: %s", ErrNoTarget, parent, strings.Join(why, "; "))
}

// gatewayAddress is the first address a client can dial.
func gatewayAddress(gw *gwv1.Gateway) (string, error) {
	for _, a := range gw.Status.Addresses {
		typ := gwv1.IPAddressType
		if a.Type != nil {
			typ = *a.Type
		}
		if (typ == gwv1.IPAddressType || typ == gwv1.HostnameAddressType) && a.Value != "" {
			return a.Value, nil
		}
	}
	if len(gw.Status.Addresses) == 0 {
		return "", fmt.Errorf("no address in status.addresses (the Gateway is not programmed, or its controller reports none)")
	}
	return "", fmt.Errorf("status.addresses has no IPAddress or Hostname address")
}

// notProgrammed: the Gateway reports the listener with Programmed=False. No status yet is not
// held against it: the probe itself will tell.
func notProgrammed(gw *gwv1.Gateway, name gwv1.SectionName) bool {
	for _, ls := range gw.Status.Listeners {
		if ls.Name == name {
			c := meta.FindStatusCondition(ls.Conditions, string(gwv1.ListenerConditionProgrammed))
			return c != nil && c.Status == metav1.ConditionFalse
		}
	}
	return false
}

func selector(ref gwv1.ParentReference) string {
	var parts []string
	if ref.SectionName != nil {
		parts = append(parts, "sectionName "+string(*ref.SectionName))
	}
	if ref.Port != nil {
		parts = append(parts, fmt.Sprintf("port %d", *ref.Port))
	}
	if len(parts) == 0 {
		return ""
	}
	return "'s " + strings.Join(parts, " and ")
}

// commonHost is a Host both the listener's hostname and the route's hostnames accept (the
// Gateway API's intersection), as a concrete name; "" when neither constrains it. ok is false
// when they have nothing in common.
func commonHost(listener *gwv1.Hostname, route []gwv1.Hostname) (host string, ok bool) {
	l := ""
	if listener != nil {
		l = string(*listener)
	}
	if len(route) == 0 {
		return concrete(l), true
	}
	for _, h := range route {
		if m, ok := intersect(l, string(h)); ok {
			return concrete(m), true
		}
	}
	return "", false
}

// intersect is the more specific of two hostnames when one accepts the other ("" accepts all).
func intersect(a, b string) (string, bool) {
	switch {
	case a == "":
		return b, true
	case b == "":
		return a, true
	case strings.EqualFold(a, b):
		return b, true
	case covers(a, b):
		return b, true
	case covers(b, a):
		return a, true
	}
	return "", false
}

// covers: wildcard w ("*.example.com") accepts h (an exact name or a narrower wildcard) with
// at least one more label.
func covers(w, h string) bool {
	if !strings.HasPrefix(w, "*.") {
		return false
	}
	suffix := strings.ToLower(w[1:])
	h = strings.ToLower(h)
	return strings.HasSuffix(h, suffix) && len(h) > len(suffix)
}

func concrete(h string) string {
	if strings.HasPrefix(h, "*.") {
		return probeLabel + h[1:]
	}
	return h
}

// ServiceTarget is where to probe a GAMMA route whose parent is svc (east-west): the Service's
// cluster IP on the port the ref selects (port, else sectionName as the port's name, else the
// only port), with the Service's DNS name as Host. Only a request that leaves a mesh proxy is
// routed by the route, so this target proves something only when the prober runs in a pod with
// the mesh's sidecar; from anywhere else the answer lacks AnswerHeader and Judge says so.
func ServiceTarget(svc *corev1.Service, ref gwv1.ParentReference) (Target, error) {
	parent := "Service " + svc.Namespace + "/" + svc.Name
	ip := svc.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone {
		return Target{}, fmt.Errorf("%w: %s has no cluster IP", ErrNoTarget, parent)
	}
	var port *corev1.ServicePort
	for i := range svc.Spec.Ports {
		p := &svc.Spec.Ports[i]
		switch {
		case ref.Port != nil && p.Port == *ref.Port,
			ref.Port == nil && ref.SectionName != nil && p.Name == string(*ref.SectionName),
			ref.Port == nil && ref.SectionName == nil && len(svc.Spec.Ports) == 1:
			port = p
		}
		if port != nil {
			break
		}
	}
	switch {
	case port == nil && ref.Port == nil && ref.SectionName == nil:
		return Target{}, fmt.Errorf("%w: %s has %d ports and the parentRef names none (set its port or sectionName)", ErrNoTarget, parent, len(svc.Spec.Ports))
	case port == nil:
		return Target{}, fmt.Errorf("%w: %s: no port matches the parentRef%s", ErrNoTarget, parent, selector(ref))
	}
	return Target{
		URL:    "http://" + net.JoinHostPort(ip, strconv.Itoa(int(port.Port))),
		Host:   svc.Name + "." + svc.Namespace + ".svc",
		Parent: fmt.Sprintf("%s port %d", parent, port.Port),
	}, nil
}
