// Package stack starts Sluice's end-to-end cluster: etcd, kube-apiserver and
// kube-controller-manager built from Go modules (hack/envtest-binaries.sh), plus the in-process
// node agent (package nodeagent), all inside a network namespace of their own, so that pods get
// real 10.244.0.x addresses that EndpointSlices accept. The same stack serves tests and
// `make demo`; further processes (Traefik, Prometheus, the manager) are started in it with Run.
//
// Network layout (fixed, because the namespace is private):
//
//	root namespace                              namespace sluice-e2e-<pid>-<n>
//	  sle2e-<i> 10.250.<i>.1/30  <-- veth -->     eth0 10.250.<i>.2/30
//	  route 10.244.0.0/16 via 10.250.<i>.2        lo 127.0.0.1, 10.244.0.1 (HostIP: API server
//	                                              :6443, further processes), 10.244.0.10-250 (pods)
//
// So the test process, kubectl and curl reach https://10.244.0.1:6443 and every pod IP with
// plain TCP, and processes inside the namespace use the same addresses. The other way round, a
// listener of the test process bound to the root side's address (Stack.RootIP, 10.250.<i>.1)
// is reachable from inside, on the veth's link: that is how the API server reaches servers the
// test runs in process (package metricsadapter). Nothing inside the namespace has a default
// route: the stack cannot reach the outside world.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/sluice-mesh/sluice/e2e/netns"
	"github.com/sluice-mesh/sluice/e2e/nodeagent"
)

// DemoAppImage is the image repository that runs e2e/demoapp; the tag becomes its version.
const DemoAppImage = "sluice.dev/demo-app"

// Process is a program running in the stack's namespace (see Run).
type Process = netns.Process

// Options configure a stack. The zero value is a working stack.
type Options struct {
	// LogDir receives <name>.log per process and pods/<namespace>_<pod>.log per pod. Default: a
	// new temporary folder, which the caller (see StartForTest) decides to keep or remove.
	LogDir string
	// BinDir holds etcd, kube-apiserver and kube-controller-manager. Default:
	// $KUBEBUILDER_ASSETS, else bin/k8s/<version> as hack/envtest-binaries.sh builds it.
	BinDir string
	// Images maps further image repositories (without tag) to binaries for the node agent.
	Images map[string]string
	// Controllers overrides DefaultControllers of kube-controller-manager.
	Controllers []string
	// HPA, when set, adds HPAController to the controllers with flags for fast tests.
	HPA *HPA
	// Logf receives progress lines (t.Logf in tests). Default: discarded.
	Logf func(format string, args ...any)
	// StartTimeout bounds the start once the machine-wide lock is held (default 3 minutes).
	// Waiting for the lock is bounded only by Start's ctx: `go test ./...` runs the e2e
	// packages in parallel, and one waits for the other's whole run.
	StartTimeout time.Duration
}

// Stack is a running cluster.
type Stack struct {
	// Name is the network namespace: `ip netns exec <Name> ...` runs anything inside it.
	Name string
	NS   *netns.Namespace
	// Dir is scratch space (certificates, etcd data, binaries), removed by Stop.
	Dir    string
	LogDir string
	// APIServerURL is https://10.244.0.1:6443, the same from the root namespace and inside.
	APIServerURL string
	// RootIP is the root namespace's end of the veth pair (10.250.<i>.1). A listener the test
	// process binds here is reachable from inside the namespace (the API server, KCM, pods);
	// point a selector-less Service's EndpointSlice at it (the API server runs with
	// --enable-aggregator-routing, so APIServices and webhooks go to endpoint addresses).
	RootIP string
	// Kubeconfig is an admin (system:masters) kubeconfig for APIServerURL; Run sets KUBECONFIG
	// to it. Config and Client are the same identity for the test process.
	Kubeconfig string
	Config     *rest.Config
	Client     kubernetes.Interface
	// Agent is the node agent playing the kubelet of node "local".
	Agent *nodeagent.Agent
	// DemoApp is the demo app binary the image sluice.dev/demo-app runs.
	DemoApp string
	// Timings of the start: "network", "apiserver", "ready" (durations since Start was called).
	Timings map[string]time.Duration

	opts          Options
	binDir        string
	pki           *pki
	kcmKubeconfig string
	net           *network

	mu      sync.Mutex
	procs   []*netns.Process
	started map[string]startSpec // how each name was run, for Restart
	cleanup []func()             // in start order; Stop runs them in reverse
	stop    sync.Once
	stopErr error
}

// Start brings the stack up and returns once the API server is ready, kube-controller-manager
// works (the default ServiceAccount exists) and node `local` is Ready. On error everything
// started so far is stopped again; the logs stay in LogDir.
func Start(ctx context.Context, opts Options) (_ *Stack, err error) {
	begin := time.Now()
	if err := netns.Check(); err != nil {
		return nil, err
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if len(opts.Controllers) == 0 {
		opts.Controllers = DefaultControllers
	}
	s := &Stack{opts: opts, Timings: map[string]time.Duration{}, started: map[string]startSpec{}, APIServerURL: fmt.Sprintf("https://%s:%d", HostIP, APIServerPort)}
	if s.binDir, err = kubeBinaries(opts.BinDir); err != nil {
		return nil, err
	}
	if s.LogDir = opts.LogDir; s.LogDir == "" {
		if s.LogDir, err = os.MkdirTemp("", "sluice-e2e-logs-"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(s.LogDir, "pods"), 0o755); err != nil {
		return nil, err
	}
	if s.Dir, err = workDir(); err != nil {
		return nil, err
	}
	// The demo app builds while the control plane starts; any return waits for the build, so
	// Stop never removes Dir under a running `go build`.
	s.DemoApp = filepath.Join(s.Dir, "bin", "demo-app")
	buildCtx, cancelBuild := context.WithCancel(ctx)
	built := make(chan error, 1)
	go func() { built <- buildDemoApp(buildCtx, s.DemoApp) }()
	buildErr := sync.OnceValue(func() error { return <-built })
	defer func() {
		if err != nil {
			cancelBuild()
			_ = buildErr()
			if stopErr := s.Stop(); stopErr != nil {
				err = fmt.Errorf("%w (and stopping: %w)", err, stopErr)
			}
			err = fmt.Errorf("%w\nlogs: %s", err, s.LogDir)
		}
	}()

	if s.net, err = setupNetwork(ctx, opts.Logf); err != nil {
		return nil, err
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 3 * time.Minute
	}
	ctx, cancelStart := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancelStart()
	s.NS, s.Name, s.RootIP = s.net.ns, s.net.ns.Name, s.net.rootIP
	s.Timings["network"] = time.Since(begin)
	opts.Logf("stack: network namespace %s, logs in %s", s.Name, s.LogDir)

	if err := s.startControlPlane(ctx); err != nil {
		return nil, err
	}
	s.Timings["apiserver"] = time.Since(begin)
	if err := buildErr(); err != nil {
		return nil, err
	}
	cancelBuild()
	if err := s.startAgent(ctx); err != nil {
		return nil, err
	}
	if err := s.waitDefaultServiceAccount(ctx, s.Client); err != nil {
		return nil, s.withLog(err, "kube-controller-manager")
	}
	s.Timings["ready"] = time.Since(begin)
	opts.Logf("stack: ready in %v (API server ready after %v)", s.Timings["ready"].Round(time.Millisecond), s.Timings["apiserver"].Round(time.Millisecond))
	return s, nil
}

func (s *Stack) startAgent(ctx context.Context) error {
	images := map[string]string{DemoAppImage: s.DemoApp}
	for k, v := range s.opts.Images {
		images[k] = v
	}
	agent, err := nodeagent.Start(ctx, nodeagent.Options{
		Client: s.Client, NS: s.NS, NodeIP: HostIP, PodCIDR: PodCIDR,
		Images: images, LogDir: filepath.Join(s.LogDir, "pods"),
		Env:  []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(s.Dir, "home")},
		Logf: s.opts.Logf,
	})
	if err != nil {
		return err
	}
	s.Agent = agent
	s.mu.Lock()
	s.cleanup = append(s.cleanup, agent.Stop)
	s.mu.Unlock()
	return nil
}

// Run starts argv (argv[0] is the program) inside the namespace, with output appended to
// <LogDir>/<name>.log; Stop stops it (SIGTERM, SIGKILL after 10 s) before the parts of the
// stack started earlier. Its environment is PATH, HOME (a scratch folder),
// KUBECONFIG=s.Kubeconfig, then env (later entries win). Inside the namespace the API server
// is s.APIServerURL and pods are at their pod IPs; bind listeners to HostIP, not 0.0.0.0.
//
// A name whose process has exited may be run again: it keeps its log and its place in Stop's
// order (a restarted API server still stops after its clients).
func (s *Stack) Run(name string, argv []string, env []string) (*Process, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runLocked(name, startSpec{argv: argv, env: env})
}

// startSpec is how a process was started.
type startSpec struct{ argv, env []string }

func (s *Stack) runLocked(name string, spec startSpec) (*Process, error) {
	_, again := s.started[name]
	for i, p := range s.procs {
		if p.Name != name {
			continue
		}
		if p.Running() {
			return nil, fmt.Errorf("a process named %s already runs in the stack", name)
		}
		// It exited (or was stopped): start it again under the same name and log.
		s.procs = append(s.procs[:i:i], s.procs[i+1:]...)
		break
	}
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Join(s.Dir, "home"), "KUBECONFIG=" + s.Kubeconfig}
	p, err := s.NS.Start(name, filepath.Join(s.LogDir, name+".log"), spec.argv, append(base, spec.env...))
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	s.started[name] = spec
	if !again {
		// Stops whichever process runs under the name by then.
		s.cleanup = append(s.cleanup, func() {
			if p := s.Process(name); p != nil {
				p.Stop(10 * time.Second)
			}
		})
	}
	return p, nil
}

// Kill ends the process running under name with SIGKILL, like a crash (no chance to clean
// up), and returns once it has exited.
func (s *Stack) Kill(name string) error {
	p := s.Process(name)
	if p == nil || !p.Running() {
		return fmt.Errorf("no running process %s in the stack", name)
	}
	// Its own process group (netns.Start): the whole group goes.
	if err := syscall.Kill(-p.PID(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing %s: %w", name, err)
	}
	<-p.Done()
	return nil
}

// Restart starts an exited process again exactly as it was first run (same arguments, data
// and certificates; its log gets a new start header). For kube-apiserver it returns once
// /readyz answers ok: clients (client-go, informers, the node agent) reconnect by
// themselves. Other processes are only started; their readiness is the caller's to judge.
func (s *Stack) Restart(ctx context.Context, name string) (*Process, error) {
	s.mu.Lock()
	spec, ok := s.started[name]
	if !ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("no process %s was started in the stack", name)
	}
	p, err := s.runLocked(name, spec)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if name == APIServer {
		if err := s.waitAPIServer(ctx, s.Client); err != nil {
			return p, s.withLog(err, APIServer)
		}
	}
	return p, nil
}

// Process returns the process started under name, or nil.
func (s *Stack) Process(name string) *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Processes returns every process started with Run (the control plane included).
func (s *Stack) Processes() []*Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*netns.Process(nil), s.procs...)
}

// Stop stops everything in reverse start order (so clients go before the API server, and the
// API server before etcd), deletes the veth pair, the route and the namespace, and removes Dir.
// LogDir stays. Safe to call more than once.
func (s *Stack) Stop() error {
	s.stop.Do(func() {
		s.mu.Lock()
		cleanup := s.cleanup
		s.cleanup = nil
		s.mu.Unlock()
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
		var errs []error
		if s.net != nil {
			errs = append(errs, s.net.teardown())
		}
		if s.Dir != "" {
			errs = append(errs, os.RemoveAll(s.Dir))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// PodURL is http://<podIP>:<port><path>, reachable from the test process.
func PodURL(podIP string, port int, path string) string {
	return "http://" + net.JoinHostPort(podIP, fmt.Sprint(port)) + path
}
