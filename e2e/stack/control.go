package stack

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// APIServer is the name kube-apiserver runs under (Process, Kill, Restart).
const APIServer = "kube-apiserver"

// BuildHint is the command that builds etcd, kube-apiserver and kube-controller-manager.
const BuildHint = "hack/envtest-binaries.sh"

// DefaultControllers are the kube-controller-manager controllers a progressive-delivery test
// exercises, plus what keeps the cluster honest: node-lifecycle marks pods unready when the
// node agent stops heartbeating, pod-garbage-collector removes pods of a vanished node.
var DefaultControllers = []string{
	"deployment-controller", "replicaset-controller",
	"endpointslice-controller", "endpoints-controller",
	"garbage-collector-controller", "namespace-controller",
	"serviceaccount-controller", "serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller", "clusterrole-aggregation-controller",
	"node-lifecycle-controller", "pod-garbage-collector-controller", "disruption-controller",
}

// repoRoot is the module's top folder, found from this source file.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// kubeBinaries finds etcd, kube-apiserver and kube-controller-manager: Options.BinDir, else
// $KUBEBUILDER_ASSETS, else bin/k8s/<version>/, the folder hack/envtest-binaries.sh fills and
// prints (version from $K8S_VERSION or the script's pinned default). The stack never runs the
// build itself: compiling Kubernetes takes minutes and would silently eat go test's 10-minute
// timeout; a missing binary fails with the command to run instead.
func kubeBinaries(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if dir == "" {
		version, err := scriptK8sVersion()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(repoRoot(), "bin", "k8s", version)
	}
	for _, bin := range []string{"etcd", "kube-apiserver", "kube-controller-manager"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("%s missing in %s; build the binaries with: %s (a few minutes the first time, cached after; it prints the folder to use as KUBEBUILDER_ASSETS)", bin, dir, BuildHint)
		}
	}
	return dir, nil
}

// scriptK8sVersion is the Kubernetes version hack/envtest-binaries.sh builds.
func scriptK8sVersion() (string, error) {
	if v := os.Getenv("K8S_VERSION"); v != "" {
		return v, nil
	}
	script, err := os.ReadFile(filepath.Join(repoRoot(), BuildHint))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`K8S_VERSION:-([0-9][0-9.]*)`).FindSubmatch(script)
	if m == nil {
		return "", fmt.Errorf("no K8S_VERSION default found in %s; set KUBEBUILDER_ASSETS to the folder it prints", BuildHint)
	}
	return string(m[1]), nil
}

// buildDemoApp compiles e2e/demoapp once per stack; the Go build cache makes it quick.
func buildDemoApp(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./e2e/demoapp")
	cmd.Dir = repoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the demo app: %w: %s", err, b)
	}
	return nil
}

// startControlPlane issues the certificates and starts etcd, kube-apiserver (waiting for
// /readyz) and kube-controller-manager.
func (s *Stack) startControlPlane(ctx context.Context) (err error) {
	names := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	if s.pki, err = newPKI(filepath.Join(s.Dir, "pki"), servingIPs(), names); err != nil {
		return err
	}
	if s.Config, s.Kubeconfig, err = s.pki.clientConfig("admin", "sluice-e2e-admin", []string{"system:masters"}, s.APIServerURL); err != nil {
		return err
	}
	// KCM's own identity, so audit and logs tell its requests apart; system:masters because
	// it runs every controller under one identity (no --use-service-account-credentials).
	if _, s.kcmKubeconfig, err = s.pki.clientConfig("kcm", "system:kube-controller-manager", []string{"system:masters"}, s.APIServerURL); err != nil {
		return err
	}
	if s.Client, err = kubernetes.NewForConfig(s.Config); err != nil {
		return err
	}
	if err := s.startEtcd(); err != nil {
		return err
	}
	if err := s.startAPIServer(); err != nil {
		return err
	}
	if err := s.waitAPIServer(ctx, s.Client); err != nil {
		return s.withLog(err, APIServer, "etcd")
	}
	if err := s.startControllerManager(); err != nil {
		return err
	}
	return nil
}

func (s *Stack) startEtcd() error {
	_, err := s.Run("etcd", []string{
		filepath.Join(s.binDir, "etcd"),
		"--name=sluice-e2e",
		"--data-dir=" + filepath.Join(s.Dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:2379",
		"--advertise-client-urls=http://127.0.0.1:2379",
		"--listen-peer-urls=http://127.0.0.1:2380",
		"--initial-advertise-peer-urls=http://127.0.0.1:2380",
		"--initial-cluster=sluice-e2e=http://127.0.0.1:2380",
		// Test data is thrown away; fsync is most of etcd's latency on slow disks.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	}, nil)
	return err
}

func (s *Stack) startAPIServer() error {
	_, err := s.Run(APIServer, []string{
		filepath.Join(s.binDir, "kube-apiserver"),
		"--etcd-servers=http://127.0.0.1:2379",
		"--bind-address=" + HostIP,
		"--advertise-address=" + HostIP,
		fmt.Sprintf("--secure-port=%d", APIServerPort),
		"--cert-dir=" + filepath.Join(s.Dir, "pki"),
		"--tls-cert-file=" + s.pki.ServingCert,
		"--tls-private-key-file=" + s.pki.ServingKey,
		"--client-ca-file=" + s.pki.CACert,
		"--service-account-key-file=" + s.pki.SAPub,
		"--service-account-signing-key-file=" + s.pki.SAKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=" + serviceCIDR,
		// RBAC, so the manager's ClusterRole is checked as in a real cluster.
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		// The aggregation layer, for APIServices served by the test process (package
		// metricsadapter). Without kube-proxy a Service's cluster IP leads nowhere, so the
		// aggregator (and webhooks) dial the Service's EndpointSlice addresses instead.
		"--enable-aggregator-routing=true",
		"--proxy-client-cert-file=" + s.pki.ProxyClientCert,
		"--proxy-client-key-file=" + s.pki.ProxyClientKey,
		"--requestheader-client-ca-file=" + s.pki.FrontProxyCACert,
		"--requestheader-allowed-names=" + frontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
	}, nil)
	return err
}

// HPAController is kube-controller-manager's HorizontalPodAutoscaler controller (see HPA).
const HPAController = "horizontal-pod-autoscaler-controller"

// HPA runs kube-controller-manager's HorizontalPodAutoscaler controller (Options.HPA), tuned
// for tests: KCM's defaults (sync every 15 s, scale down only to the highest recommendation of
// the last 5 minutes) make a scale take minutes. Metrics come from aggregated APIs; package
// metricsadapter serves external.metrics.k8s.io. KCM runs as system:masters, so the controller
// needs no RBAC of its own.
type HPA struct {
	// SyncPeriod is how often every HPA is evaluated
	// (--horizontal-pod-autoscaler-sync-period). Default 2s.
	SyncPeriod time.Duration
	// DownscaleStabilization (--horizontal-pod-autoscaler-downscale-stabilization) applies to
	// HPAs without spec.behavior.scaleDown.stabilizationWindowSeconds: they scale down only to
	// the highest recommendation made within it. Zero (the default here) scales down at the
	// next sync; an HPA's own behavior still wins.
	DownscaleStabilization time.Duration
	// Tolerance (--horizontal-pod-autoscaler-tolerance) is the relative distance from the
	// target below which the HPA does not scale. Zero keeps KCM's default, 0.1.
	Tolerance float64
}

// flags are the KCM flags for h.
func (h *HPA) flags() []string {
	sync := h.SyncPeriod
	if sync <= 0 {
		sync = 2 * time.Second
	}
	flags := []string{
		"--horizontal-pod-autoscaler-sync-period=" + sync.String(),
		"--horizontal-pod-autoscaler-downscale-stabilization=" + max(h.DownscaleStabilization, 0).String(),
		// Only resource (CPU) metrics look at pod start and readiness: shortened from KCM's
		// 5 m and 30 s so that such a test is not held back either. External metrics ignore them.
		"--horizontal-pod-autoscaler-cpu-initialization-period=" + sync.String(),
		"--horizontal-pod-autoscaler-initial-readiness-delay=" + sync.String(),
	}
	if h.Tolerance > 0 {
		flags = append(flags, fmt.Sprintf("--horizontal-pod-autoscaler-tolerance=%g", h.Tolerance))
	}
	return flags
}

func (s *Stack) startControllerManager() error {
	controllers := s.opts.Controllers
	var hpaFlags []string
	if s.opts.HPA != nil {
		if !slices.Contains(controllers, HPAController) {
			controllers = append(slices.Clip(controllers), HPAController)
		}
		hpaFlags = s.opts.HPA.flags()
	}
	_, err := s.Run("kube-controller-manager", append([]string{
		filepath.Join(s.binDir, "kube-controller-manager"),
		"--kubeconfig=" + s.kcmKubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=10257",
		"--cert-dir=" + filepath.Join(s.Dir, "kcm"),
		// Without it KCM writes under /usr/libexec/kubernetes.
		"--flex-volume-plugin-dir=" + filepath.Join(s.Dir, "kcm", "flex"),
		"--service-account-private-key-file=" + s.pki.SAKey,
		"--root-ca-file=" + s.pki.CACert,
		"--controllers=" + strings.Join(controllers, ","),
	}, hpaFlags...), nil)
	return err
}

// servingIPs are the API server certificate's IP SANs: the host address and the first address
// of the service range (the `kubernetes` Service).
func servingIPs() []net.IP {
	return []net.IP{net.ParseIP(HostIP), net.ParseIP("10.96.0.1"), net.ParseIP("127.0.0.1")}
}

const serviceCIDR = "10.96.0.0/16"

// waitAPIServer polls /readyz until it answers ok, or the process exits, or ctx ends.
func (s *Stack) waitAPIServer(ctx context.Context, c kubernetes.Interface) error {
	apiserver := s.Process(APIServer)
	var last error
	for {
		body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		last = err
		if err := s.wait(ctx, apiserver, 100*time.Millisecond); err != nil {
			return fmt.Errorf("kube-apiserver not ready (last answer: %w): %w", last, err)
		}
	}
}

// waitDefaultServiceAccount waits for KCM's serviceaccount controller to create default/default:
// until then the ServiceAccount admission plugin rejects every pod, so a stack is not usable
// before it, and it proves KCM is up and talking to the API server.
func (s *Stack) waitDefaultServiceAccount(ctx context.Context, c kubernetes.Interface) error {
	kcm := s.Process("kube-controller-manager")
	for {
		_, err := c.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		if err := s.wait(ctx, kcm, 100*time.Millisecond); err != nil {
			return fmt.Errorf("kube-controller-manager did not create the default ServiceAccount: %w", err)
		}
	}
}

// wait sleeps for d, failing early with the log's tail if p exits or ctx ends.
func (s *Stack) wait(ctx context.Context, p interface {
	Done() <-chan struct{}
	Err() error
}, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-p.Done():
		return fmt.Errorf("process exited: %w", p.Err())
	case <-time.After(d):
		return nil
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
