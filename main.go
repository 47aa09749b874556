// Command manager runs the Sluice operator: the Rollout, HealthGate and MeshPolicy controllers
// and their admission webhooks.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/flowcontrol"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/internal/admission/offline"
	"github.com/sluice-mesh/sluice/internal/egress"
	sluicescheme "github.com/sluice-mesh/sluice/internal/scheme"
	"github.com/sluice-mesh/sluice/webhooks"
)

// options are the manager's flags.
type options struct {
	metricsAddr    string
	metricsSecure  bool
	metricsCertDir string
	probeAddr      string
	leaderElect    bool
	leaderNS       string
	namespaces     string
	webhooks       bool
	webhookHost    string
	webhookPort    int
	webhookCertDir string
	enableHTTP2    bool
	consulEnt      bool
	kubeQPS        float64
	kubeBurst      int
	workers        int
	trackSecrets   bool
	policies       bool
	policyNS       string
	policyAudit    time.Duration
	pprofAddr      string
	egress         *egress.Policy
	zap            zap.Options
}

func parseFlags(fs *flag.FlagSet, args []string) (*options, error) {
	o := &options{}
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the metrics endpoint (\"0\" disables it).")
	fs.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, allowing only callers the API server authenticates and authorizes for GET /metrics.")
	fs.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "Folder with tls.crt/tls.key for the metrics endpoint; empty uses a self-signed certificate.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica acts at a time (every replica serves the webhooks).")
	fs.StringVar(&o.leaderNS, "leader-election-namespace", envOr("POD_NAMESPACE", ""), "Namespace of the leader election Lease; empty: the namespace of the pod's service account (in a cluster).")
	fs.StringVar(&o.namespaces, "namespaces", envOr("SLUICE_NAMESPACES", ""), "Comma-separated namespaces to watch; empty watches all (default $SLUICE_NAMESPACES: OLM's target namespaces).")
	fs.BoolVar(&o.webhooks, "webhooks", true, "Serve the admission webhooks.")
	fs.StringVar(&o.webhookHost, "webhook-host", "", "Address the webhook server listens on; empty means all.")
	fs.IntVar(&o.webhookPort, "webhook-port", 9443, "Port of the webhook server.")
	fs.StringVar(&o.webhookCertDir, "webhook-cert-dir", "", "Folder with tls.crt/tls.key for the webhook server; empty uses the controller-runtime default.")
	fs.BoolVar(&o.enableHTTP2, "enable-http2", false, "Allow HTTP/2 on the metrics and webhook servers (off by default: HTTP/2 stream-reset and rapid-reset weaknesses).")
	fs.Float64Var(&o.kubeQPS, "kube-api-qps", 100, "Requests per second the manager may send to the API server, all clients together (client-side rate limit). A release costs about 30 requests per Rollout: raise it for waves of hundreds of Rollouts (docs/benchmarks.md, Scale); the API server's priority and fairness still protects itself.")
	fs.IntVar(&o.kubeBurst, "kube-api-burst", 200, "Requests the manager may send to the API server in a burst above --kube-api-qps.")
	fs.BoolVar(&o.trackSecrets, "track-secrets", true, "Config tracking (a Rollout's spec.configTracking) copies the Secrets pod templates reference, as it does ConfigMaps. Off: Secrets are left as the template references them (pods read the live Secret), and the manager needs no list, watch, create or delete on Secrets (see README, Security).")
	fs.IntVar(&o.workers, "max-concurrent-reconciles", 4, "Workers of each controller (Rollout, HealthGate, MeshPolicy). Gate queries never run on a worker; more workers keep many Rollouts moving while some apply slowly.")
	fs.BoolVar(&o.consulEnt, "consul-enterprise", false, "The cluster's Consul is Enterprise: MeshPolicy rate limits and locality are written for it (Consul CE refuses a config entry that carries them, so without this flag they are reported unsupported).")
	fs.BoolVar(&o.policies, "admission-policies", true, "Check Rollouts, HealthGates, MeshPolicies (and HTTPRoutes, Services, Deployments in namespaces labelled "+admission.NamespaceLabel+"="+admission.NamespaceLabelValue+") with the built-in Rego library and the policy ConfigMaps: at admission (with --webhooks) and in a periodic audit.")
	fs.StringVar(&o.policyNS, "policy-namespace", envOr("POD_NAMESPACE", "sluice-system"), "Namespace whose ConfigMaps labelled "+controllers.PolicyLabel+"=rego|config hold the admission policies and their configuration (only the operator's namespace: tenants must not write cluster-wide rules).")
	fs.DurationVar(&o.policyAudit, "policy-audit-interval", controllers.DefaultPolicyAuditInterval, "How often existing objects are reviewed with the policies in force (also soon after a policy change).")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "", "Address of Go's pprof endpoints (/debug/pprof), for profiling at scale; empty disables them.")
	egressAllow := fs.String(strings.TrimPrefix(egress.Flag, "--"), "", "Comma-separated host names (prometheus.monitoring.svc), wildcards (*.monitoring.svc), IPs and CIDRs a HealthGate may name as its Prometheus. Empty: the private address ranges ("+strings.Join(egress.DefaultEntries, ", ")+"). Loopback, link-local and cloud metadata addresses are refused unless a listed IP or CIDR contains them.")
	o.zap = zap.Options{}
	o.zap.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var entries []string
	for _, e := range strings.Split(*egressAllow, ",") {
		if e = strings.TrimSpace(e); e != "" {
			entries = append(entries, e)
		}
	}
	var err error
	if o.egress, err = egress.Parse(entries); err != nil {
		return nil, err
	}
	if o.workers < 1 {
		return nil, fmt.Errorf("--max-concurrent-reconciles must be at least 1, got %d", o.workers)
	}
	return o, nil
}

func main() {
	// `manager policy test ...` (documented as `sluice policy test`): offline policy checks
	// for CI and GitOps, without the manager's flags or a cluster.
	if len(os.Args) > 1 && os.Args[1] == "policy" {
		if len(os.Args) < 3 || os.Args[2] != "test" {
			fmt.Fprintln(os.Stderr, "usage: manager policy test [flags] <files|dirs>... (manager policy test -h)")
			os.Exit(2)
		}
		os.Exit(offline.Main(os.Args[3:], os.Stdout, os.Stderr))
	}
	o, err := parseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		os.Exit(2)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&o.zap)))
	if limit := softMemoryLimit(os.Getenv("GOMEMLIMIT"), os.Getenv("SLUICE_MEMORY_LIMIT")); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	if err := run(o); err != nil {
		ctrl.Log.WithName("setup").Error(err, "manager stopped")
		os.Exit(1)
	}
}

// softMemoryLimit is 90% of the container's memory limit in bytes (SLUICE_MEMORY_LIMIT, which
// the Deployment sets from limits.memory), or 0 when GOMEMLIMIT is set or no limit is known.
// With it the GC works harder as the heap nears the limit instead of letting it grow to twice
// the live objects (GOGC) and the container be killed.
func softMemoryLimit(gomemlimit, containerLimit string) int64 {
	n, err := strconv.ParseInt(containerLimit, 10, 64)
	if gomemlimit != "" || err != nil || n <= 0 {
		return 0
	}
	return n / 10 * 9
}

func run(o *options) error {
	log := ctrl.Log.WithName("setup")
	scheme := runtime.NewScheme()
	if err := sluicescheme.AddToScheme(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("no kubeconfig: %w", err)
	}
	// controller-runtime's default (20/s, burst 30) makes a namespace of MeshPolicies and
	// Rollouts wait on the client's limiter after a resync; the API server has its own
	// priority and fairness to protect itself.
	cfg.QPS, cfg.Burst = float32(o.kubeQPS), o.kubeBurst
	// One limiter for every client made from cfg: client-go gives each REST client (one per
	// resource type here) its own bucket otherwise, so the manager's total rate was a
	// multiple of --kube-api-qps.
	cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)

	var tlsOpts []func(*tls.Config)
	if !o.enableHTTP2 {
		tlsOpts = append(tlsOpts, func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} })
	}
	metricsOpts := metricsserver.Options{BindAddress: o.metricsAddr, SecureServing: o.metricsSecure, TLSOpts: tlsOpts, CertDir: o.metricsCertDir}
	if o.metricsSecure {
		metricsOpts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}

	mgrOpts := ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(),
		PprofBindAddress:              o.pprofAddr,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "sluice.mesh.sluice.dev",
		LeaderElectionNamespace:       o.leaderNS,
		LeaderElectionReleaseOnCancel: true,
	}
	if ns := splitNamespaces(o.namespaces); len(ns) > 0 {
		mgrOpts.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, n := range ns {
			mgrOpts.Cache.DefaultNamespaces[n] = cache.Config{}
		}
	}
	if o.policies {
		controllers.WithPolicyCache(&mgrOpts.Cache, o.policyNS)
	}
	if o.webhooks {
		mgrOpts.WebhookServer = webhook.NewServer(webhook.Options{Host: o.webhookHost, Port: o.webhookPort, CertDir: o.webhookCertDir, TLSOpts: tlsOpts})
	}
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}

	// One evaluator: Rollouts and standalone HealthGates judge with the same code and share
	// the Prometheus connections.
	evaluator := &controllers.PrometheusEvaluator{Reader: mgr.GetAPIReader(), Egress: o.egress}
	for name, setup := range map[string]func(ctrl.Manager) error{
		"rollout": func(m ctrl.Manager) error {
			r := controllers.NewRolloutReconciler(m, &controllers.RolloutGates{Client: m.GetClient(), Evaluator: evaluator}, o.workers)
			r.TrackSecrets = o.trackSecrets
			return r.SetupWithManager(m)
		},
		"healthgate": func(m ctrl.Manager) error { return controllers.SetupHealthGateController(m, evaluator, o.workers) },
		"meshpolicy": func(m ctrl.Manager) error {
			return controllers.SetupMeshPolicyController(m, controllers.MeshPolicyOptions{ConsulEnterprise: o.consulEnt, Workers: o.workers})
		},
	} {
		if err := setup(mgr); err != nil {
			return fmt.Errorf("setting up the %s controller: %w", name, err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	ready := healthz.Ping
	if o.webhooks {
		if err := webhooks.Setup(mgr, o.egress); err != nil {
			return fmt.Errorf("setting up the webhooks: %w", err)
		}
		// Not ready until the webhook server serves: the API server would fail admissions.
		ready = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("readyz", ready); err != nil {
		return err
	}
	if o.policies {
		if err := setupPolicies(mgr, o); err != nil {
			return fmt.Errorf("setting up the admission policies: %w", err)
		}
	}

	log.Info("starting manager", "namespaces", o.namespaces, "webhooks", o.webhooks, "leaderElection", o.leaderElect)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// setupPolicies wires the policy engine: the reloader (every replica), the admission
// handler (with --webhooks) and the audit (leader only).
func setupPolicies(mgr ctrl.Manager, o *options) error {
	engine := admission.NewOPA()
	auditor := &controllers.PolicyAuditor{Reader: mgr.GetAPIReader(), Engine: engine, Recorder: mgr.GetEventRecorder("sluice-policy-audit"),
		Namespaces: splitNamespaces(o.namespaces), Interval: o.policyAudit}
	if err := mgr.Add(auditor); err != nil {
		return err
	}
	reloader := &controllers.PolicyReconciler{Engine: engine, Namespace: o.policyNS, Library: admission.Library(), Loaded: auditor.Trigger}
	if err := controllers.SetupPolicyController(mgr, reloader); err != nil {
		return err
	}
	if o.webhooks {
		self, err := webhooks.OwnUser(context.Background(), mgr.GetConfig())
		if err != nil {
			return err
		}
		if err := webhooks.SetupPolicies(mgr, engine, self); err != nil {
			return err
		}
	}
	return mgr.AddReadyzCheck("policies", reloader.Ready)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func splitNamespaces(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}
