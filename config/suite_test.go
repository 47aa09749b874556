package config_test

import (
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// env is the API server the default overlay is applied to; the build tests do not use it.
var env *testenv.Env

// TestMain starts the real API server (with Sluice's CRDs) once for the package.
func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.WriteTo(os.Stderr), zap.Level(zapcore.WarnLevel)))
	var err error
	env, err = testenv.Start(testenv.Options{})
	if err != nil {
		testenv.Fatal(err)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}
