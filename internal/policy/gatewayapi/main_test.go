package gatewayapi

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// env is a real API server with Gateway API's experimental-channel CRDs (HTTPRoute with retry).
var env *testenv.Env

func TestMain(m *testing.M) {
	crds, err := testenv.GatewayAPIExperimentalCRDs()
	if err != nil {
		testenv.Fatal(err)
	}
	testenv.Main(m, testenv.Options{ExtraCRDPaths: []string{crds}}, &env, nil)
}
