package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-mesh/sluice/e2e/netns"
)

// Addresses of every stack. Fixed on purpose: inside its own namespace a stack has nothing to
// collide with, and fixed addresses make logs and `make demo` instructions readable.
const (
	// HostIP is the "node" address on the namespace's lo: the API server listens here, and
	// further processes (Traefik, Prometheus, the manager) should bind here too, never to
	// 0.0.0.0, because pods share the namespace's port space on their own addresses.
	HostIP = "10.244.0.1"
	// PodCIDR is the node's pod range; pod addresses are /32s on the namespace's lo.
	PodCIDR = "10.244.0.0/24"
	// APIServerPort is kube-apiserver's secure port on HostIP.
	APIServerPort = 6443
	// routedCIDR is routed from the root namespace into the stack's namespace.
	routedCIDR = "10.244.0.0/16"
	// nsPrefix names the stack's namespaces: sluice-e2e-<pid>-<n>.
	nsPrefix = "sluice-e2e-"
	// vethPrefix names the root side of the veth pair: sle2e-<i> (interface names are <= 15 bytes).
	vethPrefix = "sle2e-"
	lockPath   = "/run/sluice-e2e.lock"
	workPrefix = "sluice-e2e-work-"
)

var nsCounter atomic.Int64

// network is the namespace and the root-side plumbing that makes it reachable.
type network struct {
	ns     *netns.Namespace
	veth   string // root side; deleting it deletes both ends and the route through it
	rootIP string // the root side's address, 10.250.<i>.1
	lock   *os.File
	logf   func(string, ...any)
	routed bool
}

// setupNetwork takes the machine-wide stack lock, removes namespaces left by dead test
// processes, creates this stack's namespace, the veth pair and the root route to the pod range.
//
// Reachability is a veth pair rather than a dialer that enters the namespace: with a route in
// the root namespace every client in the test process (client-go, net/http, a controller-runtime
// manager), and kubectl, curl or a browser during `make demo`, reaches the API server and pod
// IPs with plain TCP and no special configuration. The price is one machine-wide route to
// 10.244.0.0/16, so only one stack runs at a time per machine: the flock below makes a second
// one wait (test packages run in parallel) instead of failing.
func setupNetwork(ctx context.Context, logf func(string, ...any)) (_ *network, err error) {
	n := &network{logf: logf}
	if n.lock, err = acquireLock(ctx, logf); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = n.teardown()
		}
	}()
	cleanStale(logf)
	if out, _ := combined("ip", "-4", "route", "show", routedCIDR); strings.TrimSpace(out) != "" {
		return nil, fmt.Errorf("the root namespace already routes %s (%s): something else uses the pod range; remove that route or stop whatever owns it", routedCIDR, strings.TrimSpace(out))
	}
	name := fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), nsCounter.Add(1))
	if n.ns, err = netns.Create(name); err != nil {
		return nil, err
	}
	idx, err := freeVethIndex()
	if err != nil {
		return nil, err
	}
	n.veth = fmt.Sprintf("%s%d", vethPrefix, idx)
	hostSide, nsSide := fmt.Sprintf("10.250.%d.1", idx), fmt.Sprintf("10.250.%d.2", idx)
	if err := n.ns.Veth(n.veth, hostSide+"/30", nsSide+"/30"); err != nil {
		return nil, err
	}
	n.rootIP = hostSide
	if err := netns.IP("route", "add", routedCIDR, "via", nsSide, "dev", n.veth); err != nil {
		return nil, err
	}
	n.routed = true
	if err := n.ns.AddAddr(HostIP+"/32", "lo"); err != nil {
		return nil, err
	}
	return n, nil
}

// teardown deletes the veth pair (and with it the route), then the namespace, then releases
// the lock. Callers stop the namespace's processes first; Delete kills stragglers anyway.
func (n *network) teardown() error {
	var errs []error
	if n.veth != "" {
		if err := netns.IP("link", "del", n.veth); err != nil && n.ns != nil {
			errs = append(errs, err)
		}
	}
	if n.ns != nil {
		if err := n.ns.Delete(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.lock != nil {
		_ = syscall.Flock(int(n.lock.Fd()), syscall.LOCK_UN)
		_ = n.lock.Close()
	}
	return errors.Join(errs...)
}

// acquireLock polls a non-blocking flock until ctx ends; the kernel drops it if we die.
func acquireLock(ctx context.Context, logf func(string, ...any)) (*os.File, error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the e2e stack lock: %w", err)
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			_ = f.Truncate(0)
			_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", lockPath, err)
		}
		if !logged {
			holder, _ := os.ReadFile(lockPath)
			logf("another e2e stack runs on this machine (pid %s); waiting for it", strings.TrimSpace(string(holder)))
			logged = true
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for another e2e stack to stop (lock %s): %w", lockPath, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cleanStale deletes namespaces named sluice-e2e-<pid>-<n> (and scratch folders) whose pid is
// gone: a test binary killed by a signal or `go test -timeout` never ran Stop. Pdeathsig already killed their processes; the namespace
// (and its veth, and the route) stays until deleted. Runs under the lock, so no live stack is
// touched.
func cleanStale(logf func(string, ...any)) {
	names, err := netns.List()
	if err != nil {
		return
	}
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err != nil || pid == os.Getpid() || netns.Alive(pid) {
			continue
		}
		logf("removing network namespace %s left by dead process %d", name, pid)
		_ = (&netns.Namespace{Name: name}).Delete()
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), workPrefix+"*"))
	for _, dir := range dirs {
		rest := strings.TrimPrefix(filepath.Base(dir), workPrefix)
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err == nil && pid != os.Getpid() && !netns.Alive(pid) {
			_ = os.RemoveAll(dir)
		}
	}
	// A root-side veth whose peer namespace is gone disappears with it; one left over from a
	// crash between `link add` and `netns del` is removed here.
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, vethPrefix) && i.Flags&net.FlagUp == 0 {
			_ = netns.IP("link", "del", i.Name)
		}
	}
}

// freeVethIndex is the first i with no root link sle2e-<i>; it also picks 10.250.<i>.0/30.
func freeVethIndex() (int, error) {
	for i := 0; i < 256; i++ {
		if _, err := net.InterfaceByName(fmt.Sprintf("%s%d", vethPrefix, i)); err != nil {
			return i, nil
		}
	}
	return 0, fmt.Errorf("no free veth index: 256 links named %s* exist", vethPrefix)
}

// combined runs a command and returns its combined output.
func combined(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// workDir makes the stack's scratch folder (certificates, etcd data, built binaries).
func workDir() (string, error) {
	// The pid in the name lets cleanStale remove the folder of a test binary that was killed.
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", workPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	for _, sub := range []string{"pki", "etcd", "kcm", "bin", "home"} {
		// 0700: etcd warns about anything wider, and the folder holds private keys.
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return "", err
		}
	}
	return dir, nil
}
