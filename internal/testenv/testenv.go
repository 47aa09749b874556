// Package testenv starts a real kube-apiserver and etcd (envtest) with Sluice's CRDs installed,
// for the integration tests of every package. The binaries are built from Go modules by
// hack/envtest-binaries.sh; KUBEBUILDER_ASSETS points at them.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

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
	// WebhookPaths are folders of webhook configuration manifests to install and serve.
	WebhookPaths []string
	// ExtraCRDPaths are folders or files of further CRDs (upstream ones).
	ExtraCRDPaths []string
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

// Fatal prints the error and exits; for TestMain, where *testing.T is not available.
func Fatal(err error) {
	fmt.Fprintln(os.Stderr, strings.TrimSpace(err.Error()))
	os.Exit(1)
}
