package traefik

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// env is a real API server with Traefik's CRDs and Gateway API's standard-channel CRDs (what
// Traefik's Gateway provider reads by default).
var env *testenv.Env

func TestMain(m *testing.M) {
	crds, err := testenv.TraefikCRDs()
	if err != nil {
		testenv.Fatal(err)
	}
	testenv.Main(m, testenv.Options{GatewayAPI: true, ExtraCRDPaths: []string{crds}}, &env, nil)
}
