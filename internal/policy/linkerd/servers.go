package linkerd

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/sluice-mesh/sluice/internal/policy"
)

// The Server accessPolicy values used (Linkerd's default inbound policies).
const (
	accessDeny            = "deny"
	accessAuthenticated   = "all-authenticated"
	accessUnauthenticated = "all-unauthenticated"
)

// server is one Linkerd Server: a container port on the pods a target Service selects.
type server struct {
	name     string
	selector map[string]string
	port     intstr.IntOrString
}

// servers returns a Server per TCP port of the target Services, and why a Service or port got
// none. Two Services that select the same pods on the same target port share one Server:
// Linkerd's admission refuses a second Server for the same pods and port.
func servers(policyName string, svcs []corev1.Service) ([]server, []string) {
	var out []server
	var problems []string
	seen := map[string]bool{}
	for i := range svcs {
		svc := &svcs[i]
		if len(svc.Spec.Selector) == 0 {
			problems = append(problems, fmt.Sprintf("Service %s has no selector, and a Linkerd Server selects pods by label", svc.Name))
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
				problems = append(problems, fmt.Sprintf("Service %s port %d is %s, and Linkerd proxies TCP only", svc.Name, p.Port, p.Protocol))
				continue
			}
			s := server{name: policy.ObjectName(policyName, svc.Name, portName(p)), selector: svc.Spec.Selector, port: targetPort(p)}
			key := labels.Set(s.selector).String() + " " + s.port.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, s)
		}
	}
	return out, problems
}

// portName names a Service port in object names: its name, else its number.
func portName(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Port))
}

// targetPort is the pod port a Service port sends to: targetPort (a number or a container
// port name, which a Server takes alike), else the port itself.
func targetPort(p corev1.ServicePort) intstr.IntOrString {
	switch {
	case p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "":
		return p.TargetPort
	case p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal != 0:
		return p.TargetPort
	default:
		return intstr.FromInt32(p.Port)
	}
}

// object is the Server. proxyProtocol unknown keeps Linkerd's protocol detection: HTTP/1,
// HTTP/2 and gRPC are still recognized (routes, authorizations per request and rate limits
// apply to them) and other TCP traffic keeps working, judged by the Server-wide
// authorizations only.
func (s server) object(ns, access string) *unstructured.Unstructured {
	matchLabels := map[string]any{}
	for k, v := range s.selector {
		matchLabels[k] = v
	}
	var port any = s.port.StrVal
	if s.port.Type == intstr.Int {
		port = int64(s.port.IntVal)
	}
	return newObject(serverGVK, ns, s.name, map[string]any{
		"podSelector":   map[string]any{"matchLabels": matchLabels},
		"port":          port,
		"proxyProtocol": "unknown",
		"accessPolicy":  access,
	})
}

// ref is a reference to the Server from an AuthorizationPolicy, an HTTPRoute or a rate limit.
func (s server) ref() map[string]any {
	return map[string]any{"group": policyGroup, "kind": serverGVK.Kind, "name": s.name}
}
