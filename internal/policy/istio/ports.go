package istio

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// podPorts are the container ports a Service sends its traffic to. Istio's PeerAuthentication
// and AuthorizationPolicy select whole pods, which may serve other Services on other ports, so
// what the policy loosens or allows is limited to these ports; Istio takes them by number only.
type podPorts struct {
	// numbers as Istio writes them (decimal strings), in the Service's order, each once.
	numbers []string
	// named are the Service ports that send to a container port by name, for messages.
	named []string
}

// targetPorts are the container ports of svc: each port's targetPort, else the port itself. A
// targetPort given by name counts with the numbers resolved lists for the port (what the
// Service's endpoints serve); unresolved, it is named (a gap: Istio would not match it).
func targetPorts(svc *corev1.Service, resolved map[string][]int32) podPorts {
	var out podPorts
	seen := map[string]bool{}
	add := func(n int32) {
		s := strconv.Itoa(int(n))
		if !seen[s] {
			seen[s] = true
			out.numbers = append(out.numbers, s)
		}
	}
	for _, p := range svc.Spec.Ports {
		tp := p.TargetPort
		if tp.Type == intstr.String && tp.StrVal != "" {
			nums := resolved[p.Name]
			if len(nums) == 0 {
				out.named = append(out.named, fmt.Sprintf("Service %s port %s (%q)", svc.Name, portName(p), tp.StrVal))
			}
			for _, n := range nums {
				add(n)
			}
			continue
		}
		n := tp.IntVal
		if tp.Type != intstr.Int || n == 0 {
			n = p.Port
		}
		add(n)
	}
	return out
}

// portName names a Service port in messages: its name, else its number.
func portName(p corev1.ServicePort) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(int(p.Port))
}
