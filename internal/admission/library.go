package admission

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

// library holds the built-in policies, one per file, each with its examples under
// library/examples/<name>/{allowed,denied}/.
//
//go:embed library/*.rego
var library embed.FS

// defaultParams are data.sluice.params unless the configuration says otherwise.
var defaultParams = map[string]any{
	// rollout-weight-cap: the first canary weight and every increase, in percent.
	"maxWeightStep": 25,
	// rollout-production-healthgate: the largest failure limit production Rollouts may set.
	"maxFailureLimit": 5,
	// healthgate-prometheus-allowlist: allowed addresses (exact, or prefixes ending in / or :);
	// empty allows in-cluster Service names only.
	"prometheusAddresses": []any{},
	// httproute-shared-gateway-hostnames: Gateways shared by teams, as <namespace>/<name>,
	// besides every Gateway in another namespace than the route's.
	"sharedGateways": []any{},
}

// Library returns the built-in policies; a built-in's name is its file name with dashes
// (rollout_weight_cap.rego is rollout-weight-cap).
func Library() []Source {
	entries, err := fs.ReadDir(library, "library")
	if err != nil {
		panic(err) // embedded at build time
	}
	out := make([]Source, 0, len(entries))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "_test.rego") {
			continue
		}
		text, err := fs.ReadFile(library, path.Join("library", e.Name()))
		if err != nil {
			panic(err)
		}
		name := strings.ReplaceAll(strings.TrimSuffix(e.Name(), ".rego"), "_", "-")
		out = append(out, Source{Name: name, Origin: "built-in", File: "library/" + e.Name(), Module: string(text)})
	}
	return out
}
