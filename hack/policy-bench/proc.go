package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	certutil "k8s.io/client-go/util/cert"
)

// clockTicks is USER_HZ, the unit of /proc CPU times (100 on Linux everywhere that matters;
// Go has no sysconf without cgo).
const clockTicks = 100

// cpuTime is a process's user+system CPU time from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	_, _, cpu, err := procStat(pid)
	return cpu, err
}

// procStat reads a process's name, parent and CPU time.
func procStat(pid int) (comm string, ppid int, cpu time.Duration, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, err
	}
	s := string(data)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return "", 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	comm = s[open+1 : end]
	// After "(comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
	// cmajflt utime stime ...
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return "", 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, _ = strconv.Atoi(f[1])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return "", 0, 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return comm, ppid, time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// childrenCPU is the CPU time of this process's children by name (envtest's etcd and
// kube-apiserver, the manager).
func childrenCPU() map[string]time.Duration {
	out := map[string]time.Duration{}
	dirs, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, ppid, cpu, err := procStat(pid)
		if err != nil || ppid != self {
			continue
		}
		out[comm] += cpu
	}
	return out
}

// machineBusy is the time all CPUs spent not idle, from /proc/stat.
func machineBusy() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected format")
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		// user nice system idle iowait irq softirq steal guest guest_nice: guest time is
		// counted in user already.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	return time.Duration(busy) * time.Second / clockTicks, nil
}

// rssKiB is VmRSS from /proc/<pid>/status.
func rssKiB(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// selfSignedCert writes tls.crt and tls.key for 127.0.0.1 into dir (client-go's generator:
// a CA and a serving certificate it signed) and returns the certificates for the client's pool.
func selfSignedCert(dir string) ([]byte, error) {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("127.0.0.1", []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	return certPEM, nil
}
