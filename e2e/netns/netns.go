// Package netns wraps iproute2 (`ip`) for the e2e stack: named network namespaces, addresses on
// their loopback, a veth pair to the root namespace, and processes started inside a namespace.
//
// It shells out to `ip` instead of calling netlink itself because `ip netns` also takes care of
// the bind mount under /run/netns and of /etc/netns, and because every command it runs can be
// repeated by hand when debugging a stack (`ip netns exec <name> ...`).
package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// InstallHint is printed when iproute2 is missing.
const InstallHint = "apt-get install -y iproute2"

// Check reports why namespaces can't be used here: not root, or no `ip`.
func Check() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the e2e stack creates network namespaces and needs root; run the tests as root (e.g. sudo -E env \"PATH=$PATH\" go test ./e2e/... -count=1)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("the e2e stack needs iproute2's `ip`: %s", InstallHint)
	}
	return nil
}

// IP runs `ip args...` and returns its error with its output, so failures say what the kernel said.
func IP(args ...string) error {
	_, err := output(args...)
	return err
}

func output(args ...string) (string, error) {
	cmd := exec.Command("ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Namespace is a named network namespace (`ip netns add`).
type Namespace struct {
	Name string
}

// Create adds the namespace and brings its loopback up (a fresh namespace has lo down, and
// every address the stack uses lives on lo).
func Create(name string) (*Namespace, error) {
	if err := IP("netns", "add", name); err != nil {
		return nil, err
	}
	ns := &Namespace{Name: name}
	if err := ns.IP("link", "set", "lo", "up"); err != nil {
		_ = ns.Delete()
		return nil, err
	}
	return ns, nil
}

// List returns the names of all namespaces `ip netns` knows.
func List() ([]string, error) {
	out, err := output("netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		// Lines look like "name" or "name (id: 3)".
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// Exists reports whether a namespace of that name is listed.
func Exists(name string) bool {
	names, err := List()
	if err != nil {
		return false
	}
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// IP runs `ip -n <name> args...`.
func (n *Namespace) IP(args ...string) error {
	return IP(append([]string{"-n", n.Name}, args...)...)
}

// AddAddr adds an address (CIDR notation) to a link inside the namespace.
func (n *Namespace) AddAddr(cidr, dev string) error {
	return n.IP("addr", "add", cidr, "dev", dev)
}

// DelAddr removes an address from a link inside the namespace.
func (n *Namespace) DelAddr(cidr, dev string) error {
	return n.IP("addr", "del", cidr, "dev", dev)
}

// Addrs lists the IPv4 addresses (without prefix length) on a link inside the namespace.
func (n *Namespace) Addrs(dev string) ([]string, error) {
	out, err := output("-n", n.Name, "-o", "-4", "addr", "show", "dev", dev)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				addrs = append(addrs, strings.SplitN(f[i+1], "/", 2)[0])
			}
		}
	}
	return addrs, nil
}

// PIDs lists the processes running inside the namespace.
func (n *Namespace) PIDs() ([]int, error) {
	out, err := output("netns", "pids", n.Name)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Delete kills what still runs inside the namespace and removes it. Processes keep a namespace
// alive after `ip netns del`, so they go first; the namespace is ours, and so are they.
func (n *Namespace) Delete() error {
	var errs []error
	if pids, err := n.PIDs(); err == nil {
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		waitGone(pids, 5*time.Second)
	}
	if err := IP("netns", "del", n.Name); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// waitGone polls until none of pids exists (children of ours are reaped by their Wait).
func waitGone(pids []int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		alive := false
		for _, pid := range pids {
			if Alive(pid) {
				alive = true
				break
			}
		}
		if !alive {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Alive reports whether a process exists and is not a zombie.
func Alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// Field 3 is the state; the command name before it is in parentheses and may hold spaces.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// Veth connects the namespace to the root namespace: a veth pair with hostIf (root side, address
// hostCIDR) and eth0 inside the namespace (address nsCIDR), both up.
func (n *Namespace) Veth(hostIf, hostCIDR, nsCIDR string) error {
	steps := [][]string{
		{"link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", n.Name},
		{"addr", "add", hostCIDR, "dev", hostIf},
		{"link", "set", hostIf, "up"},
		{"-n", n.Name, "addr", "add", nsCIDR, "dev", "eth0"},
		{"-n", n.Name, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := IP(s...); err != nil {
			return err
		}
	}
	return nil
}
