package consul

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// target is a Service the policy can configure, with the Consul protocol its ServiceDefaults
// sets ("" leaves the protocol to Consul's defaults).
type target struct {
	name     string
	protocol string
}

// maxReason is status.unsupported[].reason's length limit.
const maxReason = 1024

// usableServices keeps the Services Consul has a service for and whose protocol the policy
// can set, and explains the others under field targetRefs (one entry: the field is the key of
// status.unsupported). needHTTP: the policy uses L7 features, so the service's protocol must
// be HTTP-based.
func usableServices(svcs []corev1.Service, needHTTP bool) ([]target, []meshv1alpha1.UnsupportedField) {
	var out []target
	var reasons []string
	for i := range svcs {
		svc := &svcs[i]
		if len(svc.Spec.Selector) == 0 {
			// consul-k8s registers the injected Pods behind a Service's endpoints; a Service
			// without a selector has none, so no Consul service carries its name.
			reasons = append(reasons, fmt.Sprintf("Service %s has no selector, so consul-k8s registers no Consul service for it", svc.Name))
			continue
		}
		t := target{name: svc.Name}
		if needHTTP {
			proto, reason := httpProtocol(svc)
			if reason != "" {
				reasons = append(reasons, reason)
				continue
			}
			t.protocol = proto
		}
		out = append(out, t)
	}
	if len(reasons) == 0 {
		return out, nil
	}
	reason := strings.Join(reasons, "; ")
	if len(reason) > maxReason {
		reason = reason[:maxReason-3] + "..."
	}
	return out, []meshv1alpha1.UnsupportedField{{Field: "targetRefs", Reason: reason}}
}

// httpProtocols maps the appProtocol values of HTTP-based ports to Consul protocols; gRPC and
// HTTP/2 keep their own so Envoy speaks HTTP/2 to them.
var httpProtocols = map[string]string{
	"http":              "http",
	"http2":             "http2",
	"h2c":               "http2",
	"kubernetes.io/h2c": "http2",
	"grpc":              "grpc",
}

// httpProtocol is the Consul protocol of a Service from its ports' appProtocol: http when none
// is declared. Consul sets one protocol per service, so ports that declare a non-HTTP protocol,
// or different HTTP ones, leave nothing the policy's L7 settings could use.
func httpProtocol(svc *corev1.Service) (protocol, reason string) {
	found := map[string]bool{}
	for _, p := range svc.Spec.Ports {
		if p.AppProtocol == nil || *p.AppProtocol == "" {
			continue
		}
		proto, ok := httpProtocols[strings.ToLower(*p.AppProtocol)]
		if !ok {
			return "", fmt.Sprintf("Service %s port %s declares appProtocol %s, but the policy needs Consul protocol http, which Consul sets for the whole service", svc.Name, portName(p), *p.AppProtocol)
		}
		found[proto] = true
	}
	switch len(found) {
	case 0:
		return "http", ""
	case 1:
		for proto := range found {
			return proto, ""
		}
	}
	protos := make([]string, 0, len(found))
	for p := range found {
		protos = append(protos, p)
	}
	sort.Strings(protos)
	return "", fmt.Sprintf("Service %s declares different protocols on its ports (%s), but Consul sets one protocol per service", svc.Name, strings.Join(protos, ", "))
}

func portName(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return fmt.Sprint(p.Port)
}
