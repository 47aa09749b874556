package istio

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// gaps collects the value-dependent gaps of one translation.
type gaps struct {
	fields []meshv1alpha1.UnsupportedField
	// noSelector: per field, the target Services without a pod selector, and the kind
	// that needed one.
	noSelector map[string]*selectorGap
	order      []string
	// namedPorts: per field, the Service ports that reach their pods by a port name (see
	// namedPortReasons), in the order met.
	namedPorts map[string][]string
	namedOrder []string
}

type selectorGap struct {
	kind     string
	services []string
}

// namedPortReasons say, per field, why a port named rather than numbered can't be expressed.
var namedPortReasons = map[string]string{
	"mtls.mode":           "targetPort is a name for %s, which no endpoint of the Service resolves to a number yet: Istio sets a PERMISSIVE or DISABLE mode for a port by its number only (PeerAuthentication portLevelMtls), and set for the whole pods it would loosen their other ports too, so it is not set for these ports until endpoints resolve them; or use numeric targetPorts",
	"authorization.rules": "targetPort is a name for %s, which no endpoint of the Service resolves to a number yet: Istio's AuthorizationPolicy matches ports by number only, and without ports the rules would also allow their callers on the pods' other ports, so they are not applied to these ports, whose requests are denied until endpoints resolve them; or use numeric targetPorts",
}

func (g *gaps) add(field, reason string) {
	g.fields = append(g.fields, meshv1alpha1.UnsupportedField{Field: field, Reason: reason})
}

// named records Service ports that field can't cover because they name their container port.
func (g *gaps) named(field string, ports []string) {
	if len(ports) == 0 {
		return
	}
	if g.namedPorts == nil {
		g.namedPorts = map[string][]string{}
	}
	if _, ok := g.namedPorts[field]; !ok {
		g.namedOrder = append(g.namedOrder, field)
	}
	g.namedPorts[field] = append(g.namedPorts[field], ports...)
}

// list is every gap, one entry per field (several reasons joined, so none is lost), sorted by
// field.
func (g *gaps) list() []meshv1alpha1.UnsupportedField {
	out := append([]meshv1alpha1.UnsupportedField{}, g.fields...)
	for _, field := range g.order {
		s := g.noSelector[field]
		reason := fmt.Sprintf("Service %s has no pod selector, and an Istio %s applies to pods by label", strings.Join(s.services, ", "), s.kind)
		if len(s.services) > 1 {
			reason = fmt.Sprintf("Services %s have no pod selector, and an Istio %s applies to pods by label", strings.Join(s.services, ", "), s.kind)
		}
		out = append(out, meshv1alpha1.UnsupportedField{Field: field, Reason: reason})
	}
	for _, field := range g.namedOrder {
		reason := fmt.Sprintf(namedPortReasons[field], strings.Join(g.namedPorts[field], ", "))
		out = append(out, meshv1alpha1.UnsupportedField{Field: field, Reason: reason})
	}
	if len(out) == 0 {
		return nil
	}
	return joinReasons(out)
}

// joinReasons merges the entries of a field into one, reasons joined by "; ", sorted by field.
func joinReasons(fields []meshv1alpha1.UnsupportedField) []meshv1alpha1.UnsupportedField {
	reasons := map[string][]string{}
	var order []string
	for _, f := range fields {
		if _, ok := reasons[f.Field]; !ok {
			order = append(order, f.Field)
		}
		reasons[f.Field] = append(reasons[f.Field], f.Reason)
	}
	out := make([]meshv1alpha1.UnsupportedField, 0, len(order))
	for _, field := range order {
		reason := strings.Join(reasons[field], "; ")
		if len(reason) > maxReason {
			reason = reason[:maxReason-3] + "..."
		}
		out = append(out, meshv1alpha1.UnsupportedField{Field: field, Reason: reason})
	}
	return policy.Merge(nil, out...)
}

// maxReason is status.unsupported[].reason's length limit.
const maxReason = 1024

// podSelector is the Service's pod selector as matchLabels, or records the gap on field when
// the Service has none (its endpoints are managed by hand).
func podSelector(svc *corev1.Service, field, kind string, g *gaps) (map[string]any, bool) {
	if len(svc.Spec.Selector) == 0 {
		if g.noSelector == nil {
			g.noSelector = map[string]*selectorGap{}
		}
		s, ok := g.noSelector[field]
		if !ok {
			s = &selectorGap{kind: kind}
			g.noSelector[field] = s
			g.order = append(g.order, field)
		}
		s.services = append(s.services, svc.Name)
		return nil, false
	}
	labels := make(map[string]any, len(svc.Spec.Selector))
	for k, v := range svc.Spec.Selector {
		labels[k] = v
	}
	return map[string]any{"matchLabels": labels}, true
}

// duration renders d for a field Istio validates as a duration of at least 1ms in whole
// milliseconds (istiod's webhook), or records the gap and returns false.
func (g *gaps) duration(field string, d time.Duration) (string, bool) {
	if d < time.Millisecond || d%time.Millisecond != 0 {
		g.add(field, fmt.Sprintf("Istio takes a duration of at least 1ms in whole milliseconds here, not %s", formatDuration(d)))
		return "", false
	}
	return formatDuration(d), true
}

// formatDuration writes d in the largest unit that divides it ("90m", "1500ms"), which both
// the CRDs' CEL duration() and istiod's parser (Go time.ParseDuration) read; below
// milliseconds, as fractional seconds.
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	default:
		frac := strings.TrimRight(fmt.Sprintf("%09d", d%time.Second), "0")
		return fmt.Sprintf("%d.%ss", d/time.Second, frac)
	}
}

// list turns strings into a JSON list (unstructured content must be []any).
func list[T ~string](values []T) []any {
	out := make([]any, 0, len(values))
	for _, v := range values {
		out = append(out, string(v))
	}
	return out
}
