package gatewayapi

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestApplyToAPIServer proves every case's rule settings are accepted, unpruned, by the real
// experimental-channel HTTPRoute schema (patterns, the codes range, the CEL rule tying
// backendRequest to request): the settings sit on a rule as the controller writes them.
func TestApplyToAPIServer(t *testing.T) {
	p := New()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := "gwapi-" + c.name
			policytest.Namespace(t, env.Client, ns)
			in := c.input(ns)
			out, err := p.Translate(in)
			if err != nil {
				t.Fatal(err)
			}
			policytest.ApplyWithRoutes(t, env.Config, in, out)
		})
	}
}
