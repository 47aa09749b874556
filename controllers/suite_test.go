package controllers_test

import (
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

var env *testenv.Env

// TestMain starts the real API server (with the Gateway API CRDs) once, and the MeshPolicy
// controller in a manager; the Rollout and HealthGate tests start managers of their own.
func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{GatewayAPI: true}, &env, func(e *testenv.Env) (func(), error) {
		mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
		if err != nil {
			return nil, err
		}
		if err := controllers.SetupMeshPolicyController(mgr); err != nil {
			return nil, err
		}
		stop := testenv.RunManager(mgr)
		return func() { _ = stop() }, nil
	})
}
