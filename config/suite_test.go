package config_test

import (
	"testing"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// env is the API server the default overlay is applied to; the build tests do not use it.
var env *testenv.Env

// TestMain starts the real API server (with Sluice's CRDs) once for the package.
func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{}, &env, nil) }
