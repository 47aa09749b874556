package webhooks_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/webhooks"
)

var (
	env      *testenv.Env
	warnings = &warningRecorder{}
	// warnClient is a client whose admission warnings are recorded.
	warnClient client.Client
)

// TestMain starts the real API server with the generated webhook configurations pointing at
// a webhook server in this process.
func TestMain(m *testing.M) {
	opts := testenv.Options{WebhookPaths: []string{filepath.Join(testenv.RepoRoot(), "config", "webhook", "manifests.yaml")}}
	testenv.Main(m, opts, &env, func(e *testenv.Env) (func(), error) {
		wo := e.WebhookInstallOptions
		mgr, err := ctrl.NewManager(e.Config, ctrl.Options{
			Scheme:                 e.Scheme,
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
			WebhookServer:          webhook.NewServer(webhook.Options{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir}),
		})
		if err != nil {
			return nil, err
		}
		if err := webhooks.Setup(mgr); err != nil {
			return nil, err
		}
		stop := testenv.RunManager(mgr)
		if err := waitForTLS(net.JoinHostPort(wo.LocalServingHost, fmt.Sprint(wo.LocalServingPort))); err != nil {
			_ = stop()
			return nil, err
		}
		cfg := rest.CopyConfig(e.Config)
		cfg.WarningHandlerWithContext = warnings
		if warnClient, err = client.New(cfg, client.Options{Scheme: e.Scheme}); err != nil {
			_ = stop()
			return nil, err
		}
		return func() { _ = stop() }, nil
	})
}

func waitForTLS(addr string) error {
	return wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // readiness probe of a local test server
		if err != nil {
			return false, nil
		}
		return true, conn.Close()
	})
}

// warningRecorder keeps the admission warnings the API server returns.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

// take returns the warnings recorded since the last call.
func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}
