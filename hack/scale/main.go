// Command scale measures the manager at scale (issue 12): it starts the real kube-apiserver and
// etcd with Sluice's CRDs, creates N Rollouts (with their target Deployments and HealthGates)
// and M unrelated Deployment/Service pairs, runs the real manager binary against them while
// playing the kubelet, the EndpointSlice controller and the gateway, and prints a markdown
// table: memory, CPU and API requests while idle and during a release wave, start-up time and
// step decision delays.
//
//	KUBEBUILDER_ASSETS="$(hack/envtest-binaries.sh)" go run ./hack/scale -rollouts 1000 -unrelated 2000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// config is one run of the harness.
type config struct {
	Rollouts   int
	Unrelated  int
	Wave       int
	Namespaces int
	// UnrelatedFirst creates the unrelated pairs before the manager starts; by default they
	// are added after the steady measurement, so the table shows what they add.
	UnrelatedFirst bool
	Replicas       int32
	Pause          time.Duration // the pause step of every Rollout
	Settle         time.Duration // quiet time after a phase before the idle window
	Idle           time.Duration // idle measurement window
	Timeout        time.Duration // for the cold start and for the wave, each
	ManagerBin     string        // prebuilt manager; empty builds bin/scale-manager
	ManagerArgs    []string      // extra manager flags
	Pprof          string        // folder for heap and CPU profiles, if the manager serves pprof
	Workers        int           // concurrent requests of the harness
	KeepDir        bool          // keep the work folder (kubeconfig, manager log)
	Command        string        // shown in the report
}

func main() {
	cfg := config{}
	fs := flag.CommandLine
	fs.IntVar(&cfg.Rollouts, "rollouts", 1000, "Rollouts to create.")
	fs.IntVar(&cfg.Unrelated, "unrelated", 0, "Unrelated Deployment/Service pairs to create.")
	fs.IntVar(&cfg.Wave, "wave", -1, "Rollouts released at once (default min(rollouts, 1000); 0 skips the wave).")
	fs.IntVar(&cfg.Namespaces, "namespaces", 10, "Namespaces the objects are spread across.")
	fs.BoolVar(&cfg.UnrelatedFirst, "unrelated-first", false, "Create the unrelated pairs before the manager starts, instead of after the steady measurement.")
	replicas := fs.Int("replicas", 1, "Replicas of every target Deployment (pods the harness publishes per slot).")
	fs.DurationVar(&cfg.Pause, "pause", 5*time.Second, "Pause step of every Rollout (setWeight 50, pause, setWeight 100).")
	fs.DurationVar(&cfg.Settle, "settle", 10*time.Second, "Wait after a phase before measuring idle.")
	fs.DurationVar(&cfg.Idle, "idle", 30*time.Second, "Idle measurement window.")
	fs.DurationVar(&cfg.Timeout, "timeout", 15*time.Minute, "Deadline of the cold start and of the wave, each.")
	fs.StringVar(&cfg.ManagerBin, "manager", "", "Manager binary to run; empty builds bin/scale-manager from the repository.")
	managerArgs := fs.String("manager-args", "", "Extra manager flags, space-separated (e.g. \"--max-concurrent-reconciles=8\").")
	fs.StringVar(&cfg.Pprof, "pprof", "", "Folder for heap and CPU profiles of the manager (needs its --pprof-bind-address).")
	fs.IntVar(&cfg.Workers, "workers", 16, "Concurrent requests of the harness (object creation, kubelet, gateway).")
	fs.BoolVar(&cfg.KeepDir, "keep", false, "Keep the work folder (kubeconfig, manager log) and print its path.")
	flag.Parse()
	if cfg.Wave < 0 {
		cfg.Wave = min(cfg.Rollouts, 1000)
	}
	cfg.Replicas = int32(*replicas)
	cfg.ManagerArgs = strings.Fields(*managerArgs)
	cfg.Command = "go run ./hack/scale"
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t\"'") {
			a = "'" + a + "'" // for the report: a command to paste again
		}
		cfg.Command += " " + a
	}

	// The harness's own informers log through controller-runtime: warnings and errors only.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.WarnLevel)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	rep, err := run(ctx, cfg, logTo(os.Stderr))
	stop()
	if rep != nil {
		fmt.Print(rep.markdown())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// logf prints progress lines.
type logf func(format string, args ...any)

func logTo(f *os.File) logf {
	start := time.Now()
	return func(format string, args ...any) {
		_, _ = fmt.Fprintf(f, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}
