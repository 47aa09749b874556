package controllers_test

import (
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

var env *testenv.Env

// TestMain starts the real API server once, with the Gateway API (standard), Traefik and
// Linkerd CRDs, and the MeshPolicy controller in a manager; the Rollout and HealthGate tests
// start managers of their own. No Istio or Consul CRDs: provider auto picks linkerd here, and
// an explicit istio is a provider not installed.
func TestMain(m *testing.M) {
	var extra []string
	for _, crds := range []func() (string, error){testenv.TraefikCRDs, testenv.LinkerdCRDs} {
		path, err := crds()
		if err != nil {
			testenv.Fatal(err)
		}
		extra = append(extra, path)
	}
	testenv.Main(m, testenv.Options{GatewayAPI: true, ExtraCRDPaths: extra}, &env, func(e *testenv.Env) (func(), error) {
		mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0", Cache: controllers.CacheOptions()})
		if err != nil {
			return nil, err
		}
		if err := controllers.SetupMeshPolicyController(mgr, controllers.MeshPolicyOptions{}); err != nil {
			return nil, err
		}
		stop := testenv.RunManager(mgr)
		return func() { _ = stop() }, nil
	})
}
