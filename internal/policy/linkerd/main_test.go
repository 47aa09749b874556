package linkerd

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// env is a real API server with Linkerd's policy CRDs installed.
var env *testenv.Env

func TestMain(m *testing.M) {
	crds, err := testenv.LinkerdCRDs()
	if err != nil {
		testenv.Fatal(err)
	}
	testenv.Main(m, testenv.Options{ExtraCRDPaths: []string{crds}}, &env, nil)
}
