package istio

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// env is a real API server with Sluice's CRDs and Istio's (istio.io/api's CRD file).
var env *testenv.Env

func TestMain(m *testing.M) {
	crds, err := testenv.IstioCRDs()
	if err != nil {
		testenv.Fatal(err)
	}
	testenv.Main(m, testenv.Options{ExtraCRDPaths: []string{crds}}, &env, nil)
}
