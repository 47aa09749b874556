package nodeagent

import (
	"fmt"
	"net/netip"
	"sync"
)

// ipam hands out pod addresses from [first, last] round-robin: the next search starts after the
// last address handed out, so a just-freed address is reused only after the whole range has
// gone round. Reusing the lowest free one at once lets a new pod answer on an IP that an
// EndpointSlice, Traefik or a test still holds for a deleted pod.
type ipam struct {
	mu          sync.Mutex
	first, last netip.Addr
	next        netip.Addr
	used        map[netip.Addr]bool
}

func newIPAM(first, last string) (*ipam, error) {
	f, err := netip.ParseAddr(first)
	if err != nil {
		return nil, err
	}
	l, err := netip.ParseAddr(last)
	if err != nil {
		return nil, err
	}
	if !f.Is4() || !l.Is4() || l.Less(f) {
		return nil, fmt.Errorf("bad pod address range %s-%s", first, last)
	}
	return &ipam{first: f, last: l, next: f, used: map[netip.Addr]bool{}}, nil
}

// allocate returns the next free address at or after the cursor, wrapping around once.
func (p *ipam) allocate() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.next
	for {
		if !p.used[a] {
			p.used[a] = true
			p.next = p.step(a)
			return a.String(), nil
		}
		a = p.step(a)
		if a == p.next {
			return "", fmt.Errorf("pod address range %s-%s exhausted", p.first, p.last)
		}
	}
}

func (p *ipam) step(a netip.Addr) netip.Addr {
	if a == p.last {
		return p.first
	}
	return a.Next()
}

func (p *ipam) release(ip string) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return
	}
	p.mu.Lock()
	delete(p.used, a)
	p.mu.Unlock()
}
