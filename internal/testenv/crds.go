package testenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Versions of the upstream CRDs the policy tests install. Istio's and Traefik's come from
// their Go modules (downloaded through the module proxy, not required by go.mod: Sluice
// does not import them); Linkerd's and Consul's are in crds/ (see its README).
const (
	IstioAPIVersion = "v1.31.1"
	TraefikVersion  = "v3.7.12" // as hack/traefik.sh
	// KEDAVersion: the newest KEDA whose module the local Go (1.26) accepts.
	KEDAVersion = "v2.18.1"
)

// KEDACRDs is KEDA's published ScaledObject CRD, from its module (KEDA's operator does not
// run in tests: the schema checks what users write).
func KEDACRDs() (string, error) {
	dir, err := moduleDir("github.com/kedacore/keda/v2", KEDAVersion)
	if err != nil {
		return "", err
	}
	return existing(filepath.Join(dir, "config", "crd", "bases", "keda.sh_scaledobjects.yaml"))
}

// GatewayAPIExperimentalCRDs is the folder of the Gateway API experimental-channel CRDs (HTTPRoute
// with retry) for the version go.mod requires.
func GatewayAPIExperimentalCRDs() (string, error) {
	dir, err := GatewayAPICRDs()
	if err != nil {
		return "", err
	}
	exp := filepath.Join(filepath.Dir(dir), "experimental")
	if _, err := os.Stat(exp); err != nil {
		return "", fmt.Errorf("gateway-api experimental CRDs: %w", err)
	}
	return exp, nil
}

// IstioCRDs is Istio's CRD file from istio.io/api.
func IstioCRDs() (string, error) {
	dir, err := moduleDir("istio.io/api", IstioAPIVersion)
	if err != nil {
		return "", err
	}
	return existing(filepath.Join(dir, "kubernetes", "customresourcedefinitions.gen.yaml"))
}

// TraefikCRDs is Traefik's CRD file (traefik.io Middleware and the rest) from its module.
func TraefikCRDs() (string, error) {
	dir, err := moduleDir("github.com/traefik/traefik/v3", TraefikVersion)
	if err != nil {
		return "", err
	}
	return existing(filepath.Join(dir, "docs", "content", "reference", "dynamic-configuration", "kubernetes-crd-definition-v1.yml"))
}

// LinkerdCRDs is the folder of Linkerd's policy CRDs.
func LinkerdCRDs() (string, error) {
	return existing(filepath.Join(RepoRoot(), "internal", "testenv", "crds", "linkerd"))
}

// ConsulCRDs is the folder of Consul's config-entry CRDs.
func ConsulCRDs() (string, error) {
	return existing(filepath.Join(RepoRoot(), "internal", "testenv", "crds", "consul"))
}

func existing(path string) (string, error) {
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("upstream CRDs: %w", err)
	}
	return path, nil
}

// moduleDir downloads (or finds in the module cache) one module version and returns its folder.
func moduleDir(path, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", path+"@"+version)
	cmd.Dir = RepoRoot()
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	_ = json.Unmarshal(out, &mod)
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s %s", err, strings.TrimSpace(string(ee.Stderr)), mod.Error)
		}
		return "", fmt.Errorf("downloading module %s@%s through the module proxy: %w", path, version, err)
	}
	if mod.Dir == "" {
		return "", fmt.Errorf("module %s@%s has no folder in the module cache", path, version)
	}
	return mod.Dir, nil
}
