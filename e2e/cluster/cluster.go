// Package cluster is the whole local Sluice environment on top of e2e/stack: the CRDs, Traefik
// as the Gateway API data plane (GatewayClass traefik, Gateway gateways/edge), Prometheus
// scraping Traefik every second, and the Sluice manager binary itself. The e2e scenarios and
// `make demo` use it. Nothing of the traffic path is simulated: requests go through Traefik to
// demo-app processes, and HealthGates read Traefik's metrics from Prometheus.
package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice-mesh/sluice/e2e/stack"
	sluicescheme "github.com/sluice-mesh/sluice/internal/scheme"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// Ports on stack.HostIP.
const (
	GatewayPort    = 8000 // Traefik's web entrypoint = the Gateway listener's port
	TraefikMetrics = 8082
	TraefikPing    = 8090
	PrometheusPort = 9090
	ManagerProbes  = 8081
	TraefikVersion = "3.7.12"
)

// Options configure the cluster.
type Options struct {
	Stack stack.Options
	// Logf receives progress lines.
	Logf func(format string, args ...any)
}

// Cluster is the running environment.
type Cluster struct {
	*stack.Stack
	// Client reads and writes Sluice's kinds, Gateway API's and Kubernetes'.
	Client client.Client
	// GatewayURL is Traefik's entrypoint; send requests with the route's Host header.
	GatewayURL    string
	PrometheusURL string
	// AccessLog is Traefik's access log: one JSON object per request (see ReadAccessLog).
	AccessLog string
}

// Start brings everything up; on error what was started is stopped.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	root := testenv.RepoRoot()
	traefik := filepath.Join(root, "bin", "traefik", TraefikVersion, "traefik")
	if _, err := os.Stat(traefik); err != nil {
		return nil, fmt.Errorf("traefik %s is missing: run hack/traefik.sh (or make traefik)", TraefikVersion)
	}
	if _, err := exec.LookPath("prometheus"); err != nil {
		return nil, fmt.Errorf("prometheus is missing: apt-get install -y --no-install-recommends prometheus")
	}
	gatewayCRDs, err := testenv.GatewayAPICRDs()
	if err != nil {
		return nil, err
	}

	if opts.Stack.Logf == nil {
		opts.Stack.Logf = logf
	}
	s, err := stack.Start(ctx, opts.Stack)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	c, err := client.New(s.Config, client.Options{Scheme: sluicescheme.New()})
	if err != nil {
		return nil, err
	}
	cl := &Cluster{Stack: s, Client: c,
		GatewayURL:    fmt.Sprintf("http://%s:%d", stack.HostIP, GatewayPort),
		PrometheusURL: fmt.Sprintf("http://%s:%d", stack.HostIP, PrometheusPort),
		// Not *.log: LogTails would print JSON lines of requests.
		AccessLog: filepath.Join(s.LogDir, "traefik-access.jsonl")}

	start := time.Now()
	if _, err := envtest.InstallCRDs(s.Config, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(root, "config", "crd", "bases"), gatewayCRDs, filepath.Join(filepath.Dir(traefik), "crds.yaml")},
		ErrorIfPathMissing: true,
	}); err != nil {
		return nil, fmt.Errorf("installing CRDs: %w", err)
	}
	logf("CRDs installed in %s", time.Since(start).Round(time.Millisecond))

	if err := cl.gateway(ctx); err != nil {
		return nil, err
	}
	if err := cl.startTraefik(traefik); err != nil {
		return nil, err
	}
	if err := cl.startPrometheus(); err != nil {
		return nil, err
	}
	if err := cl.startManager(ctx, root); err != nil {
		return nil, err
	}
	if err := cl.waitReady(ctx); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, cl.LogTails(30))
	}
	logf("cluster ready in %s", time.Since(start).Round(time.Millisecond))
	return cl, nil
}

// gateway creates GatewayClass traefik and Gateway gateways/edge with an HTTP listener on
// GatewayPort that accepts routes from every namespace.
func (c *Cluster) gateway(ctx context.Context) error {
	all := gatewayv1.NamespacesFromAll
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "gateways"}},
		&gatewayv1.GatewayClass{ObjectMeta: metav1.ObjectMeta{Name: "traefik"}, Spec: gatewayv1.GatewayClassSpec{ControllerName: "traefik.io/gateway-controller"}},
		&gatewayv1.Gateway{ObjectMeta: metav1.ObjectMeta{Name: "edge", Namespace: "gateways"}, Spec: gatewayv1.GatewaySpec{
			GatewayClassName: "traefik",
			Listeners: []gatewayv1.Listener{{
				Name: "web", Port: GatewayPort, Protocol: gatewayv1.HTTPProtocolType,
				AllowedRoutes: &gatewayv1.AllowedRoutes{Namespaces: &gatewayv1.RouteNamespaces{From: &all}},
			}},
		}},
	}
	for _, o := range objs {
		if err := c.Client.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

func (c *Cluster) startTraefik(bin string) error {
	h := stack.HostIP
	err := c.run("traefik", []string{bin,
		"--global.checknewversion=false", "--global.sendanonymoususage=false", "--api.dashboard=false",
		fmt.Sprintf("--entrypoints.web.address=%s:%d", h, GatewayPort),
		fmt.Sprintf("--entrypoints.metrics.address=%s:%d", h, TraefikMetrics),
		// Traefik's own entrypoint defaults to :8080 on every address, which the pods use.
		fmt.Sprintf("--entrypoints.traefik.address=%s:%d", h, TraefikPing),
		"--ping=true", "--ping.entrypoint=traefik",
		// The API (on the same entrypoint, inside the namespace only) shows what Traefik serves
		// now, which tests compare with what the route's status claims (see ServedWeights).
		"--api=true", "--api.insecure=true",
		"--providers.kubernetesgateway=true", "--providers.kubernetesgateway.statusaddress.ip=" + h,
		"--providers.kubernetescrd=true", "--providers.providersthrottleduration=100ms",
		"--metrics.prometheus=true", "--metrics.prometheus.entrypoint=metrics", "--metrics.prometheus.addserviceslabels=true",
		"--metrics.prometheus.buckets=0.005,0.01,0.025,0.05,0.1,0.25,0.5,1,2.5,5",
		"--log.level=INFO",
		// Which backend address served (or failed) each request, found by its RequestIDHeader.
		"--accesslog=true", "--accesslog.format=json", "--accesslog.filepath=" + c.AccessLog,
		"--accesslog.fields.headers.defaultmode=drop", "--accesslog.fields.headers.names." + RequestIDHeader + "=keep",
	})
	return err
}

func (c *Cluster) startPrometheus() error {
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
- job_name: traefik
  static_configs:
  - targets: ["%s:%d"]
`, stack.HostIP, TraefikMetrics)
	path := filepath.Join(c.Dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	return c.run("prometheus", []string{"prometheus", "--config.file=" + path,
		"--storage.tsdb.path=" + filepath.Join(c.Dir, "prometheus-data"),
		fmt.Sprintf("--web.listen-address=%s:%d", stack.HostIP, PrometheusPort), "--log.level=warn"})
}

// startManager builds and runs the Sluice manager without webhooks (no certificates here).
func (c *Cluster) startManager(ctx context.Context, root string) error {
	bin := filepath.Join(c.Dir, "sluice-manager")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the manager: %w\n%s", err, out)
	}
	return c.run(Manager, []string{bin, "--webhooks=false", "--metrics-bind-address=0",
		fmt.Sprintf("--health-probe-bind-address=%s:%d", stack.HostIP, ManagerProbes), "--zap-log-level=info"})
}

// Names of the processes Start runs, for Kill and Restart.
const (
	Manager    = "sluice-manager"
	Prometheus = "prometheus"
	Traefik    = "traefik"
	// APIServer is the stack's kube-apiserver: etcd keeps the data and the certificates stay,
	// so a restart is a crash and a recovery, and every client reconnects by itself.
	APIServer = stack.APIServer
)

func (c *Cluster) run(name string, argv []string) error {
	_, err := c.Run(name, argv, nil)
	return err
}

// Kill stops one of the cluster's processes at once (SIGKILL), like a crash.
func (c *Cluster) Kill(name string) error {
	return c.Stack.Kill(name)
}

// Restart starts a killed process again as it was started, and waits until the cluster is
// ready again.
func (c *Cluster) Restart(ctx context.Context, name string) error {
	if _, err := c.Stack.Restart(ctx, name); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// waitReady waits for Traefik, the Gateway, Prometheus and the manager.
func (c *Cluster) waitReady(ctx context.Context) error {
	h := stack.HostIP
	checks := []struct {
		what string
		ok   func(context.Context) bool
	}{
		{"traefik ping", httpOK(fmt.Sprintf("http://%s:%d/ping", h, TraefikPing))},
		{"prometheus ready", httpOK(c.PrometheusURL + "/-/ready")},
		{"sluice manager ready", httpOK(fmt.Sprintf("http://%s:%d/readyz", h, ManagerProbes))},
		{"Gateway gateways/edge programmed", func(ctx context.Context) bool {
			gw := &gatewayv1.Gateway{}
			if c.Client.Get(ctx, client.ObjectKey{Namespace: "gateways", Name: "edge"}, gw) != nil {
				return false
			}
			cond := meta.FindStatusCondition(gw.Status.Conditions, string(gatewayv1.GatewayConditionProgrammed))
			return cond != nil && cond.Status == metav1.ConditionTrue
		}},
	}
	for _, chk := range checks {
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) { return chk.ok(ctx), nil }); err != nil {
			return fmt.Errorf("waiting for %s: %w", chk.what, err)
		}
	}
	return nil
}

func httpOK(url string) func(context.Context) bool {
	hc := &http.Client{Timeout: time.Second}
	return func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// Namespace creates a namespace for one scenario.
func (c *Cluster) Namespace(ctx context.Context, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := c.Client.Create(ctx, ns); err != nil {
		return "", err
	}
	return ns.Name, nil
}

// LogTails is the last n lines of every process log, for a failure message.
func (c *Cluster) LogTails(n int) string {
	files, _ := filepath.Glob(filepath.Join(c.LogDir, "*.log"))
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s (last %d lines)\n%s\n", filepath.Base(f), len(lines), strings.Join(lines, "\n"))
	}
	return b.String()
}
