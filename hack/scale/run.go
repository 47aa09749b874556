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

// run is one measurement: it returns what it measured so far also when it fails.
func run(ctx context.Context, cfg config, log logf) (*report, error) {
	cfg.Wave = min(cfg.Wave, cfg.Rollouts)
	cfg.Namespaces = max(cfg.Namespaces, 1)
	rep := &report{cfg: cfg, date: time.Now().UTC(), machine: machine()}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	dir, err := os.MkdirTemp("", "sluice-scale-")
	if err != nil {
		return nil, err
	}
	if cfg.KeepDir {
		log("work folder (kubeconfig, manager.log): %s", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	log("starting kube-apiserver and etcd")
	env, rc, err := startAPIServer()
	if err != nil {
		return nil, err
	}
	defer func() { _ = env.Stop() }()
	bin := cfg.ManagerBin
	if bin == "" {
		bin = filepath.Join(testenv.RepoRoot(), "bin", "scale-manager")
		log("building the manager: go build -o %s .", bin)
		if err := buildManager(ctx, bin); err != nil {
			return nil, err
		}
	}
	kubeconfig, err := writeKubeconfig(env, dir)
	if err != nil {
		return nil, err
	}
	c, err := client.New(rc, client.Options{Scheme: sluicescheme.New()})
	if err != nil {
		return nil, err
	}

	start := time.Now()
	if err := createNamespaces(ctx, c, cfg.Namespaces); err != nil {
		return nil, err
	}
	if err := createRollouts(ctx, c, cfg); err != nil {
		return nil, err
	}
	log("created %d Rollouts with their Deployments and HealthGates in %s", cfg.Rollouts, secs(time.Since(start)))
	if cfg.UnrelatedFirst {
		if err := addUnrelated(ctx, c, cfg, log); err != nil {
			return nil, err
		}
	}

	fake, err := newFakeCluster(rc, c)
	if err != nil {
		return nil, err
	}
	if err := fake.start(ctx, cfg.Workers); err != nil {
		return nil, err
	}
	tr, err := newTracker(ctx, fake.cache)
	if err != nil {
		return nil, err
	}
	seen, err := tr.goal(ctx, "every Rollout observed", cfg.Rollouts, observed)
	if err != nil {
		return nil, err
	}
	allReady, err := tr.goal(ctx, "every Rollout Ready", cfg.Rollouts, ready)
	if err != nil {
		return nil, err
	}

	log("starting the manager %s", bin)
	m, err := startManager(bin, kubeconfig, dir, cfg.ManagerArgs, cfg.Pprof != "")
	if err != nil {
		return nil, err
	}
	defer m.stop()
	if cfg.Pprof != "" && m.pprof == "" {
		rep.notes = append(rep.notes, "No profiles: this manager has no --pprof-bind-address flag.")
	}
	// Profiles are fetched in the background (a CPU profile takes 30 s); run waits for them.
	var profiles sync.WaitGroup
	var notesMu sync.Mutex
	defer profiles.Wait()
	profile := func(what, file string) {
		if m.pprof == "" {
			return
		}
		profiles.Go(func() {
			err := os.MkdirAll(cfg.Pprof, 0o755)
			if err == nil {
				err = m.profile(what, cfg.Pprof, file)
			}
			if err != nil {
				notesMu.Lock()
				rep.notes = append(rep.notes, fmt.Sprintf("profile %s: %v", file, err))
				notesMu.Unlock()
			}
		})
	}
	profile("profile?seconds=30", "cpu-start.pb.gz")

	if rep.toReady, err = m.waitReady(ctx, time.Minute); err != nil {
		return rep, err
	}
	if err := tr.wait(ctx, seen, cfg.Timeout, m.exited, m.exitError); err != nil {
		return rep, err
	}
	rep.toObserved = seen.last.Sub(m.started)
	log("all %d Rollouts observed %s after manager start", cfg.Rollouts, secs(rep.toObserved))
	if err := tr.wait(ctx, allReady, cfg.Timeout, m.exited, m.exitError); err != nil {
		return rep, err
	}
	rep.toAllReady = allReady.last.Sub(m.started)
	log("all %d Rollouts Ready %s after manager start", cfg.Rollouts, secs(rep.toAllReady))

	if rep.steady, err = idle(ctx, m, cfg); err != nil {
		return rep, err
	}
	log("steady: RSS %s, heap %s, %.3f cores, %s requests/s", mb(rep.steady.rss), mb(rep.steady.heap), rep.steady.cores, rep.steady.requests())
	profile("heap", "heap-steady.pb.gz")

	if !cfg.UnrelatedFirst && cfg.Unrelated > 0 {
		if err := addUnrelated(ctx, c, cfg, log); err != nil {
			return rep, err
		}
		if rep.unrelated, err = idle(ctx, m, cfg); err != nil {
			return rep, err
		}
		log("with unrelated pairs: RSS %s, heap %s", mb(rep.unrelated.rss), mb(rep.unrelated.heap))
	}

	if cfg.Wave > 0 {
		if err := releaseWave(ctx, c, cfg, tr, m, rep, profile, log); err != nil {
			return rep, err
		}
	}
	if s, err := m.sample(); err == nil {
		rep.peakRSS = s.hwm
	}
	if err := fake.err(); err != nil {
		return rep, err
	}
	select {
	case <-m.exited:
		return rep, fmt.Errorf("the manager exited: %w", m.exitError())
	default:
	}
	return rep, nil
}

func addUnrelated(ctx context.Context, c client.Client, cfg config, log logf) error {
	start := time.Now()
	if err := createUnrelated(ctx, c, cfg); err != nil {
		return err
	}
	log("created %d unrelated Deployment/Service pairs in %s", cfg.Unrelated, secs(time.Since(start)))
	return nil
}

// idle waits cfg.Settle, then measures the manager over cfg.Idle.
func idle(ctx context.Context, m *managerProc, cfg config) (*window, error) {
	if err := sleep(ctx, m, cfg.Settle); err != nil {
		return nil, err
	}
	a, err := m.sample()
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, m, cfg.Idle); err != nil {
		return nil, err
	}
	b, err := m.sample()
	if err != nil {
		return nil, err
	}
	return measure(a, b), nil
}

// releaseWave changes the image of cfg.Wave targets at once and measures until every one of
// them is Healthy on its new revision.
func releaseWave(ctx context.Context, c client.Client, cfg config, tr *tracker, m *managerProc, rep *report, profile func(string, string), log logf) error {
	before := map[string]string{}
	for i := range cfg.Wave {
		r := &meshv1alpha1.Rollout{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: nsOf(i, cfg.Namespaces), Name: rolloutName(i)}, r); err != nil {
			return err
		}
		before[r.Namespace+"/"+r.Name] = r.Status.StableRevision
	}
	promoted, err := tr.goal(ctx, "every Rollout of the wave promoted", cfg.Wave, promotedFrom(before))
	if err != nil {
		return err
	}
	a, err := m.sample()
	if err != nil {
		return err
	}
	profile("profile?seconds=30", "cpu-wave.pb.gz")
	start := time.Now()
	if err := setImages(ctx, c, cfg, cfg.Wave, "demo:v2"); err != nil {
		return err
	}
	rep.waveSent = time.Since(start)
	log("wave: %d image updates sent in %s", cfg.Wave, secs(rep.waveSent))
	if err := tr.wait(ctx, promoted, cfg.Timeout, m.exited, m.exitError); err != nil {
		return err
	}
	rep.waveDone = promoted.last.Sub(start)
	b, err := m.sample()
	if err != nil {
		return err
	}
	rep.wave = measure(a, b)
	// The window ends at the sample, not at the last promotion: rates are over what was measured.
	log("wave: all %d promoted %s after the first update", cfg.Wave, secs(rep.waveDone))
	profile("heap", "heap-wave.pb.gz")
	return nil
}

// sleep waits d unless the context ends or the manager exits.
func sleep(ctx context.Context, m *managerProc, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-m.exited:
		return fmt.Errorf("the manager exited: %w", m.exitError())
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
