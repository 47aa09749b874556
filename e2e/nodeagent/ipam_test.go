package nodeagent

import "testing"

func TestIPAMIsRoundRobin(t *testing.T) {
	p, err := newIPAM("10.244.0.10", "10.244.0.12")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		op   string // "alloc" or "free <ip>"
		want string // allocated address, "" for an error
	}{
		{"alloc", "10.244.0.10"},
		{"alloc", "10.244.0.11"},
		{"free 10.244.0.10", ""},
		{"alloc", "10.244.0.12"}, // not .10: a freed address waits for the wrap-around
		{"alloc", "10.244.0.10"}, // wrapped, .11 and .12 still taken
		{"alloc", ""},            // exhausted
		{"free 10.244.0.11", ""},
		{"alloc", "10.244.0.11"},
	}
	for i, s := range steps {
		if ip, ok := cutFree(s.op); ok {
			p.release(ip)
			continue
		}
		got, err := p.allocate()
		if (err != nil) != (s.want == "") || got != s.want {
			t.Fatalf("step %d: allocate() = %q, %v; want %q", i, got, err, s.want)
		}
	}
}

func cutFree(op string) (string, bool) {
	if len(op) > 5 && op[:5] == "free " {
		return op[5:], true
	}
	return "", false
}

func TestSplitImage(t *testing.T) {
	for _, tc := range []struct{ image, repo, tag string }{
		{"sluice.dev/demo-app:v1", "sluice.dev/demo-app", "v1"},
		{"sluice.dev/demo-app", "sluice.dev/demo-app", ""},
		{"localhost:5000/demo-app:v2", "localhost:5000/demo-app", "v2"},
		{"localhost:5000/demo-app", "localhost:5000/demo-app", ""},
		{"sluice.dev/demo-app:v1@sha256:abcd", "sluice.dev/demo-app", "v1"},
	} {
		repo, tag := splitImage(tc.image)
		if repo != tc.repo || tag != tc.tag {
			t.Errorf("splitImage(%q) = %q, %q; want %q, %q", tc.image, repo, tag, tc.repo, tc.tag)
		}
	}
}
