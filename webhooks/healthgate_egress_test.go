package webhooks_test

import (
	"context"
	"strings"
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/egress"
	"github.com/sluice-mesh/sluice/webhooks"
)

// A HealthGate naming a Prometheus the manager's egress allow-list refuses is admitted with a
// warning that names the address and the flag, on create and update; what the list allows,
// or can only judge after DNS, gets none.
func TestHealthGateAddressOutsideEgressWarns(t *testing.T) {
	names, err := egress.Parse([]string{"prometheus.monitoring.svc"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		policy *egress.Policy
		addrs  []string
		warned []int // indexes of the addresses warned about
	}{
		{"loopback under the default list", egress.Default(), []string{"http://127.0.0.1:9090"}, []int{0}},
		{"metadata address", egress.Default(), []string{"http://169.254.169.254"}, []int{0}},
		{"public IP", egress.Default(), []string{"http://10.0.0.5:9090", "https://8.8.8.8"}, []int{1}},
		{"a name: judged when dialling", egress.Default(), []string{"http://prometheus.monitoring:9090"}, nil},
		{"a name not on a names-only list", names, []string{"http://prometheus.monitoring.svc:9090", "http://evil.example.com"}, []int{1}},
		{"no policy", nil, []string{"http://127.0.0.1:9090"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := &meshv1alpha1.HealthGate{Spec: meshv1alpha1.HealthGateSpec{
				Prometheus: meshv1alpha1.PrometheusSource{Addresses: tc.addrs},
				Metrics:    []meshv1alpha1.HealthMetric{{Name: "ok", Query: "vector(1)", ThresholdRange: &meshv1alpha1.ThresholdRange{}}},
			}}
			v := webhooks.HealthGateValidator{Egress: tc.policy}
			for _, op := range []string{"create", "update"} {
				var warnings []string
				if op == "create" {
					w, err := v.ValidateCreate(context.Background(), g)
					if err != nil {
						t.Fatal(err)
					}
					warnings = w
				} else {
					w, err := v.ValidateUpdate(context.Background(), g, g)
					if err != nil {
						t.Fatal(err)
					}
					warnings = w
				}
				if len(warnings) != len(tc.warned) {
					t.Fatalf("%s: warnings %q, want %d", op, warnings, len(tc.warned))
				}
				for i, idx := range tc.warned {
					w := warnings[i]
					if !strings.Contains(w, tc.addrs[idx]) || !strings.Contains(w, "spec.prometheus.addresses[") || !strings.Contains(w, egress.Flag) {
						t.Errorf("%s: warning %q should name the field, %s and %s", op, w, tc.addrs[idx], egress.Flag)
					}
				}
			}
		})
	}
}
