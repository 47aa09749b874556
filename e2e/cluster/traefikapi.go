package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluice-mesh/sluice/e2e/stack"
	"github.com/sluice-mesh/sluice/internal/probe"
)

// ServedWeights is what Traefik serves now for route ns/name, from its API (its runtime
// configuration, switched in at the same time as its routers): one map per weighted service
// (a rule on a listener), from backend Service name to weight. Route status says what Traefik
// accepted; this says what it serves. The data-plane probe rule (matched by the probe header,
// so never reached by users) is left out.
func (c *Cluster) ServedWeights(ctx context.Context, ns, name string) ([]map[string]int32, error) {
	// Routers and services are two reads: a configuration switched in between them shows
	// as a weighted service no router names, and is read again.
	for range 5 {
		out, consistent, err := servedWeights(ctx, ns, name)
		if err != nil || consistent {
			return out, err
		}
	}
	return nil, fmt.Errorf("traefik's routers and services for %s/%s kept changing between reads", ns, name)
}

func servedWeights(ctx context.Context, ns, name string) ([]map[string]int32, bool, error) {
	var routers []struct {
		Rule    string `json:"rule"`
		Service string `json:"service"`
	}
	if err := traefikAPI(ctx, "/api/http/routers?per_page=1000", &routers); err != nil {
		return nil, false, err
	}
	var services []struct {
		Name     string `json:"name"`
		Weighted *struct {
			Services []struct {
				Name   string `json:"name"`
				Weight *int32 `json:"weight"`
			} `json:"services"`
		} `json:"weighted"`
	}
	if err := traefikAPI(ctx, "/api/http/services?per_page=1000", &services); err != nil {
		return nil, false, err
	}
	probeService := map[string]bool{}
	for _, r := range routers {
		probeService[plain(r.Service)] = strings.Contains(r.Rule, probe.Header)
	}
	// Traefik names a route's services httproute-<ns>-<route>-gw-..., a rule's weighted
	// service ...-wrr and its backends ...-svc-<ns>-<service>-<index>.
	prefix := "httproute-" + ns + "-" + name + "-gw-"
	var out []map[string]int32
	for _, s := range services {
		if s.Weighted == nil || !strings.HasPrefix(s.Name, prefix) {
			continue
		}
		isProbe, routed := probeService[plain(s.Name)]
		if !routed {
			return nil, false, nil
		}
		if isProbe {
			continue
		}
		weights := map[string]int32{}
		for _, b := range s.Weighted.Services {
			svc := backendService(b.Name, ns)
			w := int32(1)
			if b.Weight != nil {
				w = *b.Weight
			}
			weights[svc] += w
		}
		out = append(out, weights)
	}
	return out, true, nil
}

func traefikAPI(ctx context.Context, path string, into any) error {
	url := fmt.Sprintf("http://%s:%d%s", stack.HostIP, TraefikPing, path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("traefik API %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("decoding traefik API %s: %w", url, err)
	}
	return nil
}

// plain is a Traefik name without its @provider.
func plain(name string) string {
	n, _, _ := strings.Cut(name, "@")
	return n
}

// backendService is the Kubernetes Service of a Traefik backend name ...-svc-<ns>-<service>-<i>.
func backendService(traefikName, ns string) string {
	n, _, _ := strings.Cut(traefikName, "@")
	_, svc, ok := strings.Cut(n, "-svc-"+ns+"-")
	if !ok {
		return n
	}
	if i := strings.LastIndex(svc, "-"); i > 0 {
		if _, err := strconv.Atoi(svc[i+1:]); err == nil {
			svc = svc[:i]
		}
	}
	return svc
}
