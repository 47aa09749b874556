package probe

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// RuleName is the name of the probe rule in a route. There is at most one: for the slot whose
// first weight waits (the canary, or a blue-green preview).
const RuleName = "sluice-probe"

// maxPath is the Gateway API limit on a path match value.
const maxPath = 1024

// Token is the probe header's value for one release: derived from the Rollout's UID, the
// revision and the slot, so it is stable across reconciles and restarts without being stored,
// differs for every release (an answer through an older release's rule does not count), and
// cannot be guessed by clients outside the cluster (the UID is random), so the probe rule does
// not open the canary to the Internet before its first weight.
func Token(rolloutUID, revision, slot string) string {
	sum := sha256.Sum256([]byte(rolloutUID + "\x00" + revision + "\x00" + slot))
	return hex.EncodeToString(sum[:16])
}

// Version is a short digest of what a route's split is (weights, matches, mirror: whatever the
// router passes, in a stable encoding), for SplitHeader.
func Version(split string) string {
	sum := sha256.Sum256([]byte(split))
	return hex.EncodeToString(sum[:6])
}

// Rule is the probe rule for one slot: matched only by a request for path that carries Header
// with token, routed only to the slot's Service, and answered with AnswerHeader set to token
// (and SplitHeader set to split, the Version of the split written with it, when not empty).
// The exact path match gives it precedence over every rule of the route (the Gateway API ranks
// an exact path first, then the number of header matches), so no user rule for that path can
// take the probe. It carries no other filter (a user's auth filter answering 401 would prove
// nothing about the slot) and no policy settings (a retry would hide a failed connection).
// Defaults are spelled out so the rule reads back equal from the API server.
func Rule(service string, port int32, path, token, split string) gwv1.HTTPRouteRule {
	set := []gwv1.HTTPHeader{{Name: AnswerHeader, Value: token}}
	if split != "" {
		set = append(set, gwv1.HTTPHeader{Name: SplitHeader, Value: split})
	}
	return gwv1.HTTPRouteRule{
		Name: ptr.To(gwv1.SectionName(RuleName)),
		Matches: []gwv1.HTTPRouteMatch{{
			Path:    &gwv1.HTTPPathMatch{Type: ptr.To(gwv1.PathMatchExact), Value: ptr.To(path)},
			Headers: []gwv1.HTTPHeaderMatch{{Type: ptr.To(gwv1.HeaderMatchExact), Name: Header, Value: token}},
		}},
		Filters: []gwv1.HTTPRouteFilter{{
			Type:                   gwv1.HTTPRouteFilterResponseHeaderModifier,
			ResponseHeaderModifier: &gwv1.HTTPHeaderFilter{Set: set},
		}},
		BackendRefs: []gwv1.HTTPBackendRef{{BackendRef: gwv1.BackendRef{
			BackendObjectReference: gwv1.BackendObjectReference{
				Group: ptr.To(gwv1.Group("")),
				Kind:  ptr.To(gwv1.Kind("Service")),
				Name:  gwv1.ObjectName(service),
				Port:  ptr.To(port),
			},
			Weight: ptr.To(int32(1)),
		}}},
	}
}

// IsRule reports whether a route rule is the probe rule.
func IsRule(rule gwv1.HTTPRouteRule) bool {
	return rule.Name != nil && *rule.Name == RuleName
}

// Path is the path to probe a slot on: the HTTP readiness probe's path of the container that
// serves targetPort (the Service's targetPort, by number or name), which answers 2xx once a pod
// is ready; else "/". Any answer but a 5xx proves the slot is reached, so a path that is
// missing (404) or protected (401) still works: the readiness path only makes the answer clean.
func Path(spec *corev1.PodSpec, targetPort intstr.IntOrString) string {
	for _, c := range spec.Containers {
		if !servesPort(c, targetPort) || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil {
			continue
		}
		g := c.ReadinessProbe.HTTPGet
		if !sameContainerPort(c, g.Port, targetPort) {
			continue
		}
		if validPath(g.Path) {
			return g.Path
		}
	}
	return "/"
}

// pathChars is what the Gateway API allows in an Exact path match.
var pathChars = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$`)

// validPath: the Gateway API accepts p as an Exact path match (its CRD's rules).
func validPath(p string) bool {
	if !strings.HasPrefix(p, "/") || len(p) > maxPath || !pathChars.MatchString(p) {
		return false
	}
	for _, bad := range []string{"//", "/./", "/../", "%2f", "%2F"} {
		if strings.Contains(p, bad) {
			return false
		}
	}
	return !strings.HasSuffix(p, "/..") && !strings.HasSuffix(p, "/.")
}

func servesPort(c corev1.Container, port intstr.IntOrString) bool {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
			return true
		}
	}
	return false
}

// sameContainerPort: two port references (by number or by name) name the same port of c.
func sameContainerPort(c corev1.Container, a, b intstr.IntOrString) bool {
	return portNumber(c, a) != 0 && portNumber(c, a) == portNumber(c, b)
}

func portNumber(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}
