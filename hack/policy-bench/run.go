package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sluice-mesh/sluice/internal/admission"
	"github.com/sluice-mesh/sluice/internal/admission/admissiontest"
	"github.com/sluice-mesh/sluice/internal/testenv"
	"github.com/sluice-mesh/sluice/webhooks"
)

// namespace is where the reviewed objects live: labelled for policy checks and production.
const namespace = "shop"

func run(ctx context.Context, o options) error {
	_, _ = fmt.Fprintln(os.Stderr, "starting kube-apiserver and etcd ...")
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	dir, err := os.MkdirTemp("", "policy-bench-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	cert, err := selfSignedCert(dir)
	if err != nil {
		return err
	}
	kubeconfig, err := env.Kubeconfig(dir)
	if err != nil {
		return err
	}
	objs := []admissiontest.Object{admissiontest.Rollout(namespace)}
	if o.mix == "all" {
		objs = admissiontest.Objects(namespace)
	}
	if err := prepareNamespace(ctx, env, o.mix == "all"); err != nil {
		return err
	}
	rs, err := reviews(objs)
	if err != nil {
		return err
	}
	c, port, metricsPort, err := startManager(ctx, kubeconfig, dir, o)
	if c != nil {
		defer c.stop()
	}
	if err != nil {
		return err
	}
	l := newLoader(cert, fmt.Sprintf("https://127.0.0.1:%d%s", port, webhooks.PolicyPath), o.conns, rs)
	return measure(ctx, o, c, l, objs, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
}

// startManager starts the child on free ports and waits until its policies are loaded.
func startManager(ctx context.Context, kubeconfig, certDir string, o options) (c *child, port, metricsPort int, err error) {
	if port, err = testenv.FreePort(); err != nil {
		return nil, 0, 0, err
	}
	if metricsPort, err = testenv.FreePort(); err != nil {
		return nil, 0, 0, err
	}
	if c, err = startChild(serveArgs(kubeconfig, certDir, port, metricsPort, o)); err != nil {
		return nil, 0, 0, err
	}
	select {
	case <-c.loaded:
		return c, port, metricsPort, nil
	case <-c.exited:
		return c, 0, 0, errors.New("the manager exited before loading its policies")
	case <-ctx.Done():
		return c, 0, 0, ctx.Err()
	}
}

// measure waits for the webhook, warms up, runs the measured load and prints the report.
func measure(ctx context.Context, o options, c *child, l *loader, objs []admissiontest.Object, metricsURL string) error {
	if err := l.waitReady(ctx, c.exited, time.Minute); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(os.Stderr, "warming up for %s ...\n", o.warmup)
	if _, _, err := l.run(ctx, o.rps, o.warmup); err != nil {
		return err
	}
	l.resetErrors()
	_, _ = fmt.Fprintf(os.Stderr, "measuring for %s ...\n", o.duration)
	before, err := snapshot(ctx, c, metricsURL)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		_ = c.cmd.Process.Signal(syscall.SIGUSR1)
	}
	samples, sending, err := l.run(ctx, o.rps, o.duration)
	if err != nil {
		return err
	}
	after, err := snapshot(ctx, c, metricsURL)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		_ = c.cmd.Process.Signal(syscall.SIGUSR2)
	}
	report(os.Stdout, o, c, objs, samples, sending, before, after, l)
	if o.cpuProfile != "" {
		c.stop() // the child finishes the profile before it exits
		_, _ = fmt.Fprintf(os.Stdout, "manager CPU profile: %s (go tool pprof -top %s)\n", o.cpuProfile, o.cpuProfile)
	}
	return nil
}

// prepareNamespace creates the labelled namespace and, for the mix, the Rollout that releases
// the reviewed Deployment (the webhook lists a namespace's Rollouts for each Deployment).
func prepareNamespace(ctx context.Context, env *testenv.Env, rollout bool) error {
	labels := admissiontest.NamespaceLabels(namespace)
	delete(labels, corev1.LabelMetadataName)
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace, Labels: labels}}); err != nil {
		return err
	}
	if !rollout {
		return nil
	}
	u := &unstructured.Unstructured{Object: admissiontest.Rollout(namespace).Map()}
	for _, f := range []string{"uid", "generation", "creationTimestamp", "managedFields"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	if err := env.Client.Create(ctx, u); err != nil {
		return fmt.Errorf("creating the Rollout the Deployment is released by: %w", err)
	}
	return nil
}

// child is the manager process.
type child struct {
	cmd    *exec.Cmd
	loaded chan struct{}
	exited chan struct{}

	mu         sync.Mutex
	policies   int
	loadTook   time.Duration
	reloads    []time.Duration
	stopOnce   sync.Once
	exitStatus error
}

// startChild runs this program's serve command. The child is killed when this process dies
// (Pdeathsig) and stopped by stop.
func startChild(args []string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, loaded: make(chan struct{}), exited: make(chan struct{})}
	go c.read(stdout)
	go func() {
		c.exitStatus = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// read follows the child's stdout: its load and reload times.
func (c *child) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == lineLoaded:
			n, _ := strconv.Atoi(f[1])
			ns, _ := strconv.ParseInt(f[2], 10, 64)
			c.mu.Lock()
			c.policies, c.loadTook = n, time.Duration(ns)
			c.mu.Unlock()
			close(c.loaded)
		case len(f) == 2 && f[0] == lineReload:
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			c.mu.Lock()
			c.reloads = append(c.reloads, time.Duration(ns))
			c.mu.Unlock()
		default:
			_, _ = fmt.Fprintln(os.Stderr, sc.Text())
		}
	}
}

// stop asks the child to stop and kills it if it does not within 5 s.
func (c *child) stop() {
	c.stopOnce.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	})
}

// usage is what the processes had used at one moment.
type usage struct {
	at       time.Time
	manager  time.Duration
	self     time.Duration
	children map[string]time.Duration
	machine  time.Duration
	metrics  map[string]float64
	reloads  int
}

func snapshot(ctx context.Context, c *child, metricsURL string) (usage, error) {
	u := usage{at: time.Now(), children: childrenCPU()}
	var err error
	if u.manager, err = cpuTime(c.cmd.Process.Pid); err != nil {
		return u, err
	}
	if u.self, err = cpuTime(os.Getpid()); err != nil {
		return u, err
	}
	if u.machine, err = machineBusy(); err != nil {
		return u, err
	}
	c.mu.Lock()
	u.reloads = len(c.reloads)
	c.mu.Unlock()
	u.metrics, err = metricsSnapshot(ctx, metricsURL)
	return u, err
}

// report prints the results as a small table.
func report(w io.Writer, o options, c *child, objs []admissiontest.Object, samples []sample, sending time.Duration, before, after usage, l *loader) {
	wall := after.at.Sub(before.at)
	cores := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()/wall.Seconds()) }
	count := map[outcome]int{}
	for _, s := range samples {
		count[s.outcome]++
	}
	answered := func(s sample) bool { return s.outcome != failed }

	c.mu.Lock()
	policies, loadTook, reloads := c.policies, c.loadTook, slices.Clone(c.reloads[before.reloads:after.reloads])
	c.mu.Unlock()

	t := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	_, _ = fmt.Fprintf(t, "policies in force\t%d (%d built-in + %d user), loaded in %s\n", policies, len(admission.Library()), o.policies, ms(loadTook))
	kinds := make([]string, len(objs))
	for i, obj := range objs {
		kinds[i] = obj.Kind
	}
	_, _ = fmt.Fprintf(t, "load\t%d/s for %s, open loop, HTTPS keep-alive (%d connections opened); reviewing %s\n", o.rps, o.duration, l.dials.Load(), strings.Join(kinds, ", "))
	_, _ = fmt.Fprintf(t, "requests\t%d sent at %.1f/s; %d allowed, %d not allowed, %d errors\n", len(samples), float64(len(samples))/sending.Seconds(), count[allowed], count[notAllowed], count[failed])
	_, _ = fmt.Fprintf(t, "latency (send → whole answer)\t%s\n", percentiles(samples, answered))
	if len(objs) > 1 {
		for i, obj := range objs {
			_, _ = fmt.Fprintf(t, "  %s\t%s\n", obj.Kind, percentiles(samples, func(s sample) bool { return answered(s) && s.review == i }))
		}
	}
	if n := after.metrics["sluice_admission_policy_review_seconds_count"] - before.metrics["sluice_admission_policy_review_seconds_count"]; n > 0 {
		mean := time.Duration((after.metrics["sluice_admission_policy_review_seconds_sum"] - before.metrics["sluice_admission_policy_review_seconds_sum"]) / n * float64(time.Second))
		delta := func(name string) float64 { return after.metrics[name] - before.metrics[name] }
		var over []string
		for _, b := range []struct{ le, ms string }{{"0.001", "1"}, {"0.002", "2"}, {"0.005", "5"}, {"0.01", "10"}} {
			over = append(over, fmt.Sprintf("%.2f%% over %s ms", 100*(n-delta("sluice_admission_policy_review_seconds_bucket le="+b.le))/n, b.ms))
		}
		_, _ = fmt.Fprintf(t, "in the handler\tmean %s; %s (sluice_admission_policy_review_seconds: decode, namespace labels, review)\n", ms(mean), strings.Join(over, ", "))
	}
	lags := make([]time.Duration, len(samples))
	for i, s := range samples {
		lags[i] = s.lag
	}
	slices.Sort(lags)
	_, _ = fmt.Fprintf(t, "send lag behind schedule\tp99 %s, max %s\n", ms(pct(lags, 0.99)), ms(pct(lags, 1)))
	manager, self := after.manager-before.manager, after.self-before.self
	apiserver, etcd := after.children["kube-apiserver"]-before.children["kube-apiserver"], after.children["etcd"]-before.children["etcd"]
	machine := after.machine - before.machine
	_, _ = fmt.Fprintf(t, "CPU, cores on average\tmanager %s; load generator %s; kube-apiserver %s, etcd %s; everything else on the machine %s (of %d)\n",
		cores(manager), cores(self), cores(apiserver), cores(etcd), cores(max(0, machine-manager-self-apiserver-etcd)), runtime.NumCPU())
	if n := len(samples); n > 0 {
		_, _ = fmt.Fprintf(t, "manager CPU per review\t%s\n", ms((after.manager-before.manager)/time.Duration(n)))
	}
	if rss, err := rssKiB(c.cmd.Process.Pid); err == nil {
		_, _ = fmt.Fprintf(t, "manager memory\tRSS %.0f MiB; %.0f GC cycles during the load\n", float64(rss)/1024, after.metrics["go_gc_duration_seconds_count"]-before.metrics["go_gc_duration_seconds_count"])
	}
	if len(reloads) > 0 {
		slices.Sort(reloads)
		_, _ = fmt.Fprintf(t, "hot reloads during the load\t%d, median %s, max %s (one user policy changed)\n", len(reloads), ms(pct(reloads, 0.5)), ms(pct(reloads, 1)))
	}
	_ = t.Flush()
	for _, o := range []outcome{notAllowed, failed} {
		if msg, ok := l.firstErr[o]; ok {
			_, _ = fmt.Fprintf(w, "first %s: %s\n", map[outcome]string{notAllowed: "refusal", failed: "error"}[o], msg)
		}
	}
}

func percentiles(samples []sample, keep func(sample) bool) string {
	var lat []time.Duration
	for _, s := range samples {
		if keep(s) {
			lat = append(lat, s.latency)
		}
	}
	if len(lat) == 0 {
		return "no answers"
	}
	slices.Sort(lat)
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (%d answers)", ms(pct(lat, 0.5)), ms(pct(lat, 0.9)), ms(pct(lat, 0.99)), ms(pct(lat, 1)), len(lat))
}

// pct is the q-quantile of sorted durations (nearest rank).
func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }
