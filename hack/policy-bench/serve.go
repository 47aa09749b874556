package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/internal/admission/admissiontest"
	sluicescheme "github.com/sluice-mesh/sluice/internal/scheme"
	"github.com/sluice-mesh/sluice/webhooks"
)

// serveCommand is the child's first argument.
const serveCommand = "serve"

// operatorUser is the exempt identity, as main.go passes the operator's own.
const operatorUser = "system:serviceaccount:sluice-system:sluice-controller-manager"

// The child tells the parent on stdout (one line each) when it is loaded and each reload's
// time; everything else goes to stderr.
const (
	lineLoaded = "loaded"
	lineReload = "reload"
)

// serve runs the manager: the cache, the webhook server on 127.0.0.1 with the policy handler,
// and the engine loaded with the library and the user policies. SIGUSR1 starts a CPU profile,
// SIGUSR2 stops it.
func serve(args []string) error {
	fs := flag.NewFlagSet(serveCommand, flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	certDir := fs.String("cert-dir", "", "folder with tls.crt and tls.key")
	port := fs.Int("port", 0, "webhook port on 127.0.0.1")
	metricsPort := fs.Int("metrics-port", 0, "metrics port on 127.0.0.1")
	policies := fs.Int("policies", 13, "user policies")
	reloadEvery := fs.Duration("reload-every", 0, "hot-reload period (0: never)")
	qps := fs.Float64("kube-api-qps", 50, "client-side rate limit to the API server")
	burst := fs.Int("kube-api-burst", 100, "burst above -kube-api-qps")
	cpuProfile := fs.String("cpuprofile", "", "CPU profile file (started by SIGUSR1, stopped by SIGUSR2)")
	_ = fs.Parse(args)

	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.WarnLevel)))
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = float32(*qps), *burst
	// Like main.go without --enable-http2: the webhook server speaks HTTP/1.1.
	http1 := func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 sluicescheme.New(),
		Metrics:                metricsserver.Options{BindAddress: fmt.Sprintf("127.0.0.1:%d", *metricsPort)},
		HealthProbeBindAddress: "0",
		WebhookServer: webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: *port, CertDir: *certDir,
			TLSOpts: []func(*tls.Config){http1}}),
	})
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	engine := admission.NewOPA()
	user := userSources(*policies)
	l := engine.Load(ctx, append(admission.Library(), user...), admission.Config{})
	if len(l.Errors) > 0 {
		return fmt.Errorf("the policies do not load: %v", l.Errors)
	}
	out := bufio.NewWriter(os.Stdout)
	var outMu sync.Mutex
	say := func(format string, a ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		_, _ = fmt.Fprintf(out, format+"\n", a...)
		_ = out.Flush()
	}
	say("%s %d %d", lineLoaded, len(l.Policies), l.Took.Nanoseconds())
	if err := webhooks.SetupPolicies(mgr, engine, operatorUser); err != nil {
		return err
	}

	if *reloadEvery > 0 && len(user) > 0 {
		go reloadLoop(ctx, engine, user, *reloadEvery, func(took time.Duration) { say("%s %d", lineReload, took.Nanoseconds()) })
	}
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		profileOnSignal(ctx, *cpuProfile)
	}()
	err = mgr.Start(ctx)
	cancel()
	<-profiled // the profile is complete before the process exits
	return err
}

// reloadLoop puts a new text of the last user policy in force every period, as an edit of
// its ConfigMap would.
func reloadLoop(ctx context.Context, engine *admission.OPA, user []admission.Source, every time.Duration, report func(time.Duration)) {
	t := time.NewTicker(every)
	defer t.Stop()
	lib := admission.Library()
	base := admissiontest.ScaledPolicies(len(user))[len(user)-1]
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sources := append(slices.Clone(lib), user...)
		sources[len(sources)-1] = userSource(admissiontest.Edited(base, i))
		l := engine.Load(ctx, sources, admission.Config{})
		if len(l.Errors) > 0 {
			_, _ = fmt.Fprintln(os.Stderr, "reload:", l.Errors)
			continue
		}
		report(l.Took)
	}
}

func profileOnSignal(ctx context.Context, file string) {
	if file == "" {
		return
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(sig)
	var f *os.File
	for {
		select {
		case <-ctx.Done():
			if f != nil {
				pprof.StopCPUProfile()
				_ = f.Close()
			}
			return
		case s := <-sig:
			switch {
			case s == syscall.SIGUSR1 && f == nil:
				var err error
				if f, err = os.Create(file); err != nil {
					_, _ = fmt.Fprintln(os.Stderr, "cpuprofile:", err)
					continue
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					_, _ = fmt.Fprintln(os.Stderr, "cpuprofile:", err)
				}
			case s == syscall.SIGUSR2 && f != nil:
				pprof.StopCPUProfile()
				_ = f.Close()
				f = nil
			}
		}
	}
}

func userSources(n int) []admission.Source {
	var out []admission.Source
	for _, p := range admissiontest.ScaledPolicies(n) {
		out = append(out, userSource(p))
	}
	return out
}

func userSource(p admissiontest.Policy) admission.Source {
	return admission.Source{Name: p.Name, Origin: "ConfigMap sluice-system/" + admissiontest.ConfigMap + ", key " + p.Key, File: p.Key, Module: p.Module}
}

// serveArgs are the child's arguments.
func serveArgs(kubeconfig, certDir string, port, metricsPort int, o options) []string {
	return []string{serveCommand, "-kubeconfig", kubeconfig, "-cert-dir", certDir,
		"-port", strconv.Itoa(port), "-metrics-port", strconv.Itoa(metricsPort),
		"-policies", strconv.Itoa(o.policies), "-kube-api-qps", strconv.FormatFloat(o.kubeQPS, 'g', -1, 64), "-kube-api-burst", strconv.Itoa(o.kubeBurst), "-reload-every", o.reloadEvery.String(), "-cpuprofile", o.cpuProfile}
}
