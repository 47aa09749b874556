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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/internal/egress"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/webhooks"
)

// policyNamespace is the manager's namespace in these tests: policy ConfigMaps live there.
const policyNamespace = "sluice-system"

// exemptUser is the operator's own identity in these tests (requests impersonate it).
const exemptUser = "system:serviceaccount:sluice-system:sluice-controller-manager"

var (
	// engine, reloader and auditor are the admission policy engine as main.go wires it.
	engine   *admission.OPA
	reloader *controllers.PolicyReconciler
	auditor  *controllers.PolicyAuditor

	env      *testenv.Env
	warnings = &warningRecorder{}
	// warnClient is a client whose admission warnings are recorded.
	warnClient client.Client
)

// TestMain starts the real API server with the generated webhook configurations pointing at
// a webhook server in this process.
func TestMain(m *testing.M) {
	webhookDir := filepath.Join(testenv.RepoRoot(), "config", "webhook")
	opts := testenv.Options{GatewayAPI: true, WebhookPaths: []string{filepath.Join(webhookDir, "manifests.yaml"), filepath.Join(webhookDir, "policy_webhook.yaml")},
		AfterTests: func() error {
			if refused := testenv.Calls.Forbidden(); len(refused) > 0 {
				return fmt.Errorf("the API server refused the manager (generated RBAC, config/rbac/role.yaml): %v", refused)
			}
			return nil
		}}
	testenv.Main(m, opts, &env, func(e *testenv.Env) (func(), error) {
		wo := e.WebhookInstallOptions
		if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: policyNamespace}}); err != nil {
			return nil, err
		}
		// The manager runs with the generated RBAC only (ClusterRole, and the Role in its
		// namespace): a read the webhooks or the policy audit need and the role lacks fails.
		if err := e.BindManagerRoles(policyNamespace); err != nil {
			return nil, err
		}
		mgrCfg, err := e.ManagerConfig()
		if err != nil {
			return nil, err
		}
		mgr, err := ctrl.NewManager(mgrCfg, ctrl.Options{
			Scheme:                 e.Scheme,
			Cache:                  cache.Options{ByObject: controllers.PolicyCacheOptions(policyNamespace)},
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
			WebhookServer:          webhook.NewServer(webhook.Options{Host: wo.LocalServingHost, Port: wo.LocalServingPort, CertDir: wo.LocalServingCertDir}),
		})
		if err != nil {
			return nil, err
		}
		if err := webhooks.Setup(mgr, egress.Default()); err != nil {
			return nil, err
		}
		engine = admission.NewOPA()
		// As main.go wires it: an audit after every policy change (the timer is out of reach).
		auditor = &controllers.PolicyAuditor{Reader: mgr.GetAPIReader(), Engine: engine, Recorder: mgr.GetEventRecorder("sluice-policy-audit"), MaxEvents: 5, Interval: time.Hour}
		if err := mgr.Add(auditor); err != nil {
			return nil, err
		}
		reloader = &controllers.PolicyReconciler{Engine: engine, Namespace: policyNamespace, Library: admission.Library(), Loaded: auditor.Trigger}
		if err := controllers.SetupPolicyController(mgr, reloader); err != nil {
			return nil, err
		}
		if err := webhooks.SetupPolicies(mgr, engine, exemptUser); err != nil {
			return nil, err
		}
		stop := testenv.RunManager(mgr)
		if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
			return reloader.Ready(nil) == nil, nil
		}); err != nil {
			_ = stop()
			return nil, fmt.Errorf("the admission policies did not load: %w", err)
		}
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
