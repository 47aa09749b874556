package consul

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// env is a real API server with the consul-k8s config-entry CRDs installed.
var env *testenv.Env

func TestMain(m *testing.M) {
	crds, err := testenv.ConsulCRDs()
	if err != nil {
		testenv.Fatal(err)
	}
	testenv.Main(m, testenv.Options{ExtraCRDPaths: []string{crds}}, &env, nil)
}
