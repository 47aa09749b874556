// Command policy-bench measures the admission policy webhook under load: a real API server
// (envtest), a manager in a child process serving webhooks.PolicyPath over HTTPS with the
// built-in library and the user policies of internal/admission/admissiontest, and an
// open-loop load of AdmissionReview POSTs from this process. It prints latency percentiles
// and the manager's CPU and memory.
//
//	KUBEBUILDER_ASSETS="$(hack/envtest-binaries.sh)" go run ./hack/policy-bench -rps 500 -duration 30s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sluice-mesh/sluice/internal/testenv"
)

// options are the parent's flags.
type options struct {
	rps         int
	duration    time.Duration
	warmup      time.Duration
	policies    int
	mix         string
	conns       int
	kubeQPS     float64
	kubeBurst   int
	reloadEvery time.Duration
	cpuProfile  string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == serveCommand {
		if err := serve(os.Args[2:]); err != nil {
			_, _ = fmt.Fprintln(os.Stderr, "policy-bench serve:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	fs := flag.NewFlagSet("policy-bench", flag.ExitOnError)
	fs.IntVar(&o.rps, "rps", 500, "AdmissionReviews sent per second (open loop: sent on schedule whatever the answers).")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "How long the measured load lasts.")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "Load before the measurement, not counted (connections, caches, the manager's heap).")
	fs.IntVar(&o.policies, "policies", 13, "User policies besides the 7 built-ins (13 are admissiontest.UserPolicies; more are renamed copies).")
	fs.StringVar(&o.mix, "mix", "rollout", "What is reviewed: rollout (a production canary Rollout) or all (Rollout, HealthGate, MeshPolicy, Deployment in turn).")
	fs.IntVar(&o.conns, "idle-conns", 25, "Idle HTTPS connections the client keeps to the webhook (keep-alive; the API server's webhook client keeps 25 and opens more when all are busy).")
	fs.Float64Var(&o.kubeQPS, "kube-api-qps", 100, "The manager's client-side rate limit to the API server (main.go's --kube-api-qps default); the webhook lists Rollouts through it for each Deployment.")
	fs.IntVar(&o.kubeBurst, "kube-api-burst", 200, "The manager's burst above -kube-api-qps (main.go's --kube-api-burst default).")
	fs.DurationVar(&o.reloadEvery, "reload-every", 0, "Hot-reload the manager's engine this often during the load (one user policy's text changed); 0: never.")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "Write a CPU profile of the manager over the measured load to this file.")
	short := fs.Bool("short", false, "A quick run: -duration 5s -warmup 2s.")
	_ = fs.Parse(os.Args[1:])
	if *short {
		o.duration, o.warmup = 5*time.Second, 2*time.Second
	}
	if o.mix != "rollout" && o.mix != "all" {
		_, _ = fmt.Fprintln(os.Stderr, "policy-bench: -mix is rollout or all")
		os.Exit(2)
	}
	if o.rps <= 0 || o.duration <= 0 || o.conns <= 0 || o.kubeQPS <= 0 || o.policies < 0 {
		_, _ = fmt.Fprintln(os.Stderr, "policy-bench: -rps, -duration, -idle-conns and -kube-api-qps must be positive, -policies not negative")
		os.Exit(2)
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		_, _ = fmt.Fprintf(os.Stderr, "policy-bench: KUBEBUILDER_ASSETS is not set: it needs kube-apiserver and etcd built from Go modules.\nRun from the repository's top folder:\n  KUBEBUILDER_ASSETS=\"$(hack/envtest-binaries.sh)\" go run ./hack/policy-bench\n(%s)\n", testenv.BuildHint)
		os.Exit(2)
	}
	if o.cpuProfile != "" {
		abs, err := filepath.Abs(o.cpuProfile) // the child is given an absolute path
		if err != nil {
			_, _ = fmt.Fprintln(os.Stderr, "policy-bench:", err)
			os.Exit(2)
		}
		o.cpuProfile = abs
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		_, _ = fmt.Fprintln(os.Stderr, "policy-bench:", err)
		os.Exit(1)
	}
}
