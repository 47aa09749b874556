package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	sluicescheme "github.com/sluice-mesh/sluice/internal/scheme"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// harness is one run in progress.
type harness struct {
	cfg    config
	log    logf
	rep    *report
	client client.Client
	fake   *fakeCluster
	tr     *tracker
	m      *managerProc

	profiles sync.WaitGroup // profiles being fetched in the background
	notesMu  sync.Mutex
}

// run is one measurement: it returns what it measured so far also when it fails.
func run(ctx context.Context, cfg config, log logf) (*report, error) {
	cfg.Wave = min(cfg.Wave, cfg.Rollouts)
	cfg.Namespaces = max(cfg.Namespaces, 1)
	h := &harness{cfg: cfg, log: log, rep: &report{cfg: cfg, date: time.Now().UTC(), machine: machine()}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	dir, err := os.MkdirTemp("", "sluice-scale-")
	if err != nil {
		return nil, err
	}
	if cfg.KeepDir {
		log("work folder (kubeconfig, manager.log): %s", dir)
	} else {
		defer func() { _ = os.RemoveAll(dir) }()
	}
	log("starting kube-apiserver and etcd")
	env, rc, err := startAPIServer()
	if err != nil {
		return nil, err
	}
	defer func() { _ = env.Stop() }()
	bin, err := h.managerBinary(ctx)
	if err != nil {
		return nil, err
	}
	kubeconfig, err := writeKubeconfig(env, dir)
	if err != nil {
		return nil, err
	}
	if h.client, err = client.New(rc, client.Options{Scheme: sluicescheme.New()}); err != nil {
		return nil, err
	}
	if err := h.populate(ctx); err != nil {
		return nil, err
	}
	// The kubelet, EndpointSlice controller and gateway must run before the manager writes.
	if h.fake, err = newFakeCluster(rc, h.client); err != nil {
		return nil, err
	}
	if err := h.fake.start(ctx, cfg.Workers); err != nil {
		return nil, err
	}
	if h.tr, err = newTracker(ctx, h.fake.cache); err != nil {
		return nil, err
	}

	log("starting the manager %s", bin)
	if h.m, err = startManager(bin, kubeconfig, dir, cfg.ManagerArgs, cfg.Pprof != ""); err != nil {
		return nil, err
	}
	defer h.m.stop()
	defer h.profiles.Wait()
	if cfg.Pprof != "" && h.m.pprof == "" {
		h.note("No profiles: this manager has no --pprof-bind-address flag.")
	}
	return h.rep, h.measure(ctx)
}

// measure runs the phases: cold start, steady, unrelated objects added, release wave.
func (h *harness) measure(ctx context.Context) error {
	cfg, rep := h.cfg, h.rep
	if err := h.coldStart(ctx); err != nil {
		return err
	}
	var err error
	if rep.steady, err = h.idle(ctx); err != nil {
		return err
	}
	h.log("steady: RSS %s, heap %s, %.3f cores, %s requests/s", mb(rep.steady.rss), mb(rep.steady.heap), rep.steady.cores, rep.steady.requests())
	h.profile("heap", "heap-steady.pb.gz")
	if !cfg.UnrelatedFirst && cfg.Unrelated > 0 {
		if err := h.addUnrelated(ctx); err != nil {
			return err
		}
		if rep.unrelated, err = h.idle(ctx); err != nil {
			return err
		}
		h.log("with unrelated pairs: RSS %s, heap %s", mb(rep.unrelated.rss), mb(rep.unrelated.heap))
	}
	if cfg.Wave > 0 {
		if err := h.releaseWave(ctx); err != nil {
			return err
		}
	}
	if s, err := h.m.sample(); err == nil {
		rep.peakRSS = s.hwm
	}
	if err := h.fake.err(); err != nil {
		return err
	}
	select {
	case <-h.m.exited:
		return fmt.Errorf("the manager exited: %w", h.m.exitError())
	default:
		return nil
	}
}

// managerBinary is cfg.ManagerBin, or the repository's manager built into bin/scale-manager.
func (h *harness) managerBinary(ctx context.Context) (string, error) {
	if h.cfg.ManagerBin != "" {
		h.rep.manager = "the binary " + h.cfg.ManagerBin
		return h.cfg.ManagerBin, nil
	}
	h.rep.manager = source()
	bin := filepath.Join(testenv.RepoRoot(), "bin", "scale-manager")
	h.log("building the manager: go build -o %s .", bin)
	return bin, buildManager(ctx, bin)
}

// populate creates the namespaces, the Rollouts with their objects, and (with
// -unrelated-first) the unrelated pairs.
func (h *harness) populate(ctx context.Context) error {
	start := time.Now()
	if err := createNamespaces(ctx, h.client, h.cfg.Namespaces); err != nil {
		return err
	}
	if err := createRollouts(ctx, h.client, h.cfg); err != nil {
		return err
	}
	h.log("created %d Rollouts with their Deployments and HealthGates in %s", h.cfg.Rollouts, secs(time.Since(start)))
	if h.cfg.UnrelatedFirst {
		return h.addUnrelated(ctx)
	}
	return nil
}

// coldStart measures from the manager's start to every Rollout observed, then Ready.
func (h *harness) coldStart(ctx context.Context) error {
	cfg, rep, m := h.cfg, h.rep, h.m
	seen, err := h.tr.goal(ctx, "every Rollout observed", cfg.Rollouts, observed)
	if err != nil {
		return err
	}
	allReady, err := h.tr.goal(ctx, "every Rollout Ready", cfg.Rollouts, ready)
	if err != nil {
		return err
	}
	if rep.toReady, err = m.waitReady(ctx, time.Minute); err != nil {
		return err
	}
	h.profile("profile?seconds=30", "cpu-start.pb.gz")
	first, err := m.sample()
	if err != nil {
		return err
	}
	if err := h.tr.wait(ctx, seen, cfg.Timeout, m.exited, m.exitError); err != nil {
		return err
	}
	rep.toObserved = seen.last.Sub(m.started)
	h.log("all %d Rollouts observed %s after manager start", cfg.Rollouts, secs(rep.toObserved))
	if err := h.tr.wait(ctx, allReady, cfg.Timeout, m.exited, m.exitError); err != nil {
		return err
	}
	rep.toAllReady = allReady.last.Sub(m.started)
	h.log("all %d Rollouts Ready %s after manager start", cfg.Rollouts, secs(rep.toAllReady))
	last, err := m.sample()
	if err != nil {
		return err
	}
	rep.start = measure(first, last)
	return nil
}

func (h *harness) addUnrelated(ctx context.Context) error {
	start := time.Now()
	if err := createUnrelated(ctx, h.client, h.cfg); err != nil {
		return err
	}
	h.log("created %d unrelated Deployment/Service pairs in %s", h.cfg.Unrelated, secs(time.Since(start)))
	return nil
}

// idle waits cfg.Settle, then measures the manager over cfg.Idle.
func (h *harness) idle(ctx context.Context) (*window, error) {
	if err := h.sleep(ctx, h.cfg.Settle); err != nil {
		return nil, err
	}
	a, err := h.m.sample()
	if err != nil {
		return nil, err
	}
	if err := h.sleep(ctx, h.cfg.Idle); err != nil {
		return nil, err
	}
	b, err := h.m.sample()
	if err != nil {
		return nil, err
	}
	return measure(a, b), nil
}

// releaseWave changes the image of cfg.Wave targets at once and measures until every one of
// them is Healthy on its new revision.
func (h *harness) releaseWave(ctx context.Context) error {
	cfg, rep, m := h.cfg, h.rep, h.m
	before := map[string]string{}
	for i := range cfg.Wave {
		r := &meshv1alpha1.Rollout{}
		if err := h.client.Get(ctx, client.ObjectKey{Namespace: nsOf(i, cfg.Namespaces), Name: rolloutName(i)}, r); err != nil {
			return err
		}
		before[r.Namespace+"/"+r.Name] = r.Status.StableRevision
	}
	promoted, err := h.tr.goal(ctx, "every Rollout of the wave promoted", cfg.Wave, promotedFrom(before))
	if err != nil {
		return err
	}
	a, err := m.sample()
	if err != nil {
		return err
	}
	h.profile("profile?seconds=30", "cpu-wave.pb.gz")
	start := time.Now()
	if err := setImages(ctx, h.client, cfg, cfg.Wave, "demo:v2"); err != nil {
		return err
	}
	rep.waveSent = time.Since(start)
	h.log("wave: %d image updates sent in %s", cfg.Wave, secs(rep.waveSent))
	if err := h.tr.wait(ctx, promoted, cfg.Timeout, m.exited, m.exitError); err != nil {
		return err
	}
	rep.waveDone = promoted.last.Sub(start)
	h.log("wave: all %d promoted %s after the first update", cfg.Wave, secs(rep.waveDone))
	b, err := m.sample()
	if err != nil {
		return err
	}
	rep.wave = measure(a, b) // rates over the whole window, from before the first update
	h.profile("heap", "heap-wave.pb.gz")
	return nil
}

// profile fetches /debug/pprof/<what> into the -pprof folder in the background (a CPU
// profile takes 30 s); run waits for it before stopping the manager.
func (h *harness) profile(what, file string) {
	if h.m.pprof == "" {
		return
	}
	h.profiles.Go(func() {
		err := os.MkdirAll(h.cfg.Pprof, 0o755)
		if err == nil {
			err = h.m.profile(what, h.cfg.Pprof, file)
		}
		if err != nil {
			h.note(fmt.Sprintf("profile %s: %v", file, err))
		}
	})
}

func (h *harness) note(s string) {
	h.notesMu.Lock()
	defer h.notesMu.Unlock()
	h.rep.notes = append(h.rep.notes, s)
}

// sleep waits d unless the context ends or the manager exits.
func (h *harness) sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-h.m.exited:
		return fmt.Errorf("the manager exited: %w", h.m.exitError())
	}
}

// writeKubeconfig writes an admin kubeconfig for the manager (as testenv.Env.Kubeconfig).
func writeKubeconfig(env *envtest.Environment, dir string) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "sluice-scale", Groups: []string{"system:masters"}}, nil)
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
