package controllers_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

var env *testenv.Env

// TestMain starts the real API server once and the three controllers in a manager.
func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapcore.WarnLevel)))
	gw, err := testenv.GatewayAPICRDs()
	if err != nil {
		testenv.Fatal(err)
	}
	env, err = testenv.Start(testenv.Options{ExtraCRDPaths: []string{gw}})
	if err != nil {
		testenv.Fatal(err)
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{Scheme: env.Scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		testenv.Fatal(err)
	}
	for _, setup := range []func(ctrl.Manager) error{controllers.SetupHealthGateController, controllers.SetupMeshPolicyController} {
		if err := setup(mgr); err != nil {
			testenv.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	_ = env.Stop()
	os.Exit(code)
}
