// Package testenv starts a real kube-apiserver and etcd (envtest) with Sluice's CRDs installed,
// for the integration tests of every package. The binaries are built from Go modules by
// hack/envtest-binaries.sh; KUBEBUILDER_ASSETS points at them.
package testenv

import (
	"context"
	"testing"

	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	kruntime "k8s.io/apimachinery/pkg/runtime"

	sluicescheme "github.com/sluice-mesh/sluice/internal/scheme"
)

// BuildHint is the command that provides the binaries, printed when they are missing.
const BuildHint = `KUBEBUILDER_ASSETS="$(hack/envtest-binaries.sh)" go test ./...   (or: make test)`

// Env is a running API server with Sluice's CRDs.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *kruntime.Scheme
}

// Options adjust the environment.
type Options struct {
	// GatewayAPI installs the Gateway API standard-channel CRDs too.
	GatewayAPI bool
	// WebhookPaths are folders of webhook configuration manifests to install and serve.
	WebhookPaths []string
	// ExtraCRDPaths are folders or files of further CRDs (upstream ones).
	ExtraCRDPaths []string
	// AfterTests runs once the package's tests passed, before the API server stops; its error
	// fails the run.
	AfterTests func() error
}

// RepoRoot is the repository's top folder, found from this source file.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Start starts the API server with the CRDs of config/crd/bases installed.
func Start(opts Options) (*Env, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return nil, fmt.Errorf("KUBEBUILDER_ASSETS is not set: the tests need kube-apiserver and etcd built from Go modules; run: %s", BuildHint)
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("%s missing in KUBEBUILDER_ASSETS=%s; run: %s", bin, assets, BuildHint)
		}
	}
	root := RepoRoot()
	if opts.GatewayAPI {
		dir, err := GatewayAPICRDs()
		if err != nil {
			return nil, err
		}
		opts.ExtraCRDPaths = append(opts.ExtraCRDPaths, dir)
	}
	scheme := sluicescheme.New()
	env := &envtest.Environment{
		CRDDirectoryPaths:     append([]string{filepath.Join(root, "config", "crd", "bases")}, opts.ExtraCRDPaths...),
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
		Scheme:                scheme,
	}
	if len(opts.WebhookPaths) > 0 {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: opts.WebhookPaths}
	}
	cfg, err := env.Start()
	if err != nil {
		// Start can fail after the processes are up (a CRD the server refuses): stop them.
		_ = env.Stop()
		return nil, fmt.Errorf("starting the API server: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Environment: env, Config: cfg, Client: c, Scheme: scheme}, nil
}

// Kubeconfig writes a kubeconfig for the environment's admin user into dir and returns its path.
func (e *Env) Kubeconfig(dir string) (string, error) {
	user, err := e.ControlPlane.AddUser(envtest.User{Name: "sluice-test-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, data, 0o600)
}

// GatewayAPICRDs is the folder of the Gateway API standard-channel CRDs in the module cache, for
// the version of sigs.k8s.io/gateway-api that go.mod requires (so tests and code agree).
func GatewayAPICRDs() (string, error) {
	cmd := exec.Command("go", "list", "-m", "-json", "sigs.k8s.io/gateway-api")
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", fmt.Errorf("locating module sigs.k8s.io/gateway-api (it must be required in go.mod: run `go get sigs.k8s.io/gateway-api` in %s): %w", cmd.Dir, err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", fmt.Errorf("reading `go list -m -json sigs.k8s.io/gateway-api`: %w", err)
	}
	if mod.Dir == "" {
		return "", fmt.Errorf("module sigs.k8s.io/gateway-api is not in the module cache; run `go mod download sigs.k8s.io/gateway-api` in %s", cmd.Dir)
	}
	dir := filepath.Join(mod.Dir, "config", "crd", "standard")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("gateway-api CRDs: %w", err)
	}
	return dir, nil
}

// Fatal prints the error and exits; for TestMain, where *testing.T is not available.
func Fatal(err error) {
	fmt.Fprintln(os.Stderr, strings.TrimSpace(err.Error()))
	os.Exit(1)
}

// Main is a package's TestMain: it starts the API server, calls setup (which may start
// managers and returns what stops them), runs the tests, stops everything and exits. *env is
// set before setup runs.
func Main(m *testing.M, opts Options, env **Env, setup func(*Env) (stop func(), err error)) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.WarnLevel)))
	e, err := Start(opts)
	if err != nil {
		Fatal(err)
	}
	*env = e
	stop := func() {}
	if setup != nil {
		if stop, err = setup(e); err != nil {
			_ = e.Stop()
			Fatal(err)
		}
	}
	code := m.Run()
	if code == 0 && opts.AfterTests != nil {
		if err := opts.AfterTests(); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			code = 1
		}
	}
	stop()
	_ = e.Stop()
	os.Exit(code)
}

// RunManager starts mgr in the background; stop cancels it and waits for it to return.
func RunManager(mgr manager.Manager) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}
