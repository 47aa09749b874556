package admission

import (
	"fmt"
	"maps"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ConfigKey is the key of the configuration ConfigMap that holds Config as YAML.
const ConfigKey = "config.yaml"

// DefaultBudget bounds one policy's evaluation of one object.
const DefaultBudget = 100 * time.Millisecond

// Config turns built-ins off or re-modes them and gives the library its parameters:
//
//	budget: 100ms
//	policies:
//	  rollout-step-cap: {mode: warn}
//	  deployment-replicas: {mode: off}
//	params:
//	  maxFirstWeight: 25
//	  prometheusAddresses: ["http://prometheus.monitoring:9090"]
type Config struct {
	// Budget bounds one policy's evaluation of one object (default 100ms; a policy past it
	// gets one more try with 4× the budget). A policy past both counts as violated in its
	// own mode: a deny policy that can't decide denies.
	Budget metav1.Duration `json:"budget,omitempty"`
	// Policies by name: mode override (off turns it off).
	Policies map[string]PolicyConfig `json:"policies,omitempty"`
	// Params are data.sluice.params for every policy, over the library's defaults.
	Params map[string]any `json:"params,omitempty"`
}

// PolicyConfig changes one policy.
type PolicyConfig struct {
	Mode string `json:"mode,omitempty"`
}

// ParseConfig reads the configuration; empty text is the default configuration.
func ParseConfig(text string) (Config, error) {
	var c Config
	if err := yaml.UnmarshalStrict([]byte(text), &c); err != nil {
		return Config{}, fmt.Errorf("%s: %w (allowed keys: budget, policies.<name>.mode, params)", ConfigKey, err)
	}
	if c.Budget.Duration < 0 || c.Budget.Duration > 2*time.Second {
		return Config{}, fmt.Errorf("%s: budget %s: allowed is 1ms to 2s (the webhook answers within its timeout)", ConfigKey, c.Budget.Duration)
	}
	for name, p := range c.Policies {
		// YAML 1.1 reads an unquoted `mode: off` as false, which reaches us as "false".
		if p.Mode == "false" {
			p.Mode = string(Off)
			c.Policies[name] = p
		}
		if _, err := ParseMode(p.Mode); err != nil {
			return Config{}, fmt.Errorf("%s: policies.%s.%w", ConfigKey, name, err)
		}
	}
	return c, nil
}

func (c Config) budget() time.Duration {
	if c.Budget.Duration <= 0 {
		return DefaultBudget
	}
	return c.Budget.Duration
}

// params are the library's defaults with the configured values over them.
func (c Config) params() map[string]any {
	out := maps.Clone(defaultParams)
	maps.Copy(out, c.Params)
	return out
}
