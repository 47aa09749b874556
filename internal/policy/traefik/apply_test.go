package traefik

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/policy/policytest"
)

// TestApplyToAPIServer applies every case's Middlewares to a real API server with Traefik's
// CRD (duration patterns, field names: nothing may be refused or pruned), and an HTTPRoute per
// target whose rule carries the ExtensionRef filters, against the standard HTTPRoute schema.
func TestApplyToAPIServer(t *testing.T) {
	p := New()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := "traefik-" + c.name
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
