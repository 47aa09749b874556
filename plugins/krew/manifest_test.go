// Package krew_test checks the krew plugin manifest against krew's rules for plugin manifests
// (the index's structural validation and its CI's checks), written out here: krew itself is
// not a dependency.
package krew_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/blang/semver/v4"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// plugin is krew's Plugin (krew.googlecontainertools.github.com/v1alpha2); strict decoding
// refuses a field krew does not know.
type plugin struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		Version          string     `json:"version"`
		ShortDescription string     `json:"shortDescription"`
		Description      string     `json:"description"`
		Caveats          string     `json:"caveats"`
		Homepage         string     `json:"homepage"`
		Platforms        []platform `json:"platforms"`
	} `json:"spec"`
}

type platform struct {
	Selector *metav1.LabelSelector `json:"selector"`
	URI      string                `json:"uri"`
	Sha256   string                `json:"sha256"`
	Files    []struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"files,omitempty"`
	Bin string `json:"bin"`
}

var (
	safeName = regexp.MustCompile(`^[\w-]+$`)
	sha256Re = regexp.MustCompile(`^[a-f0-9]{64}$`)
	// Windows refuses these as file names, so krew refuses them as plugin names.
	windowsReserved = []string{"CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9"}
	// The os/arch pairs krew installs on.
	supported = [][2]string{{"linux", "amd64"}, {"linux", "arm64"}, {"linux", "arm"}, {"linux", "386"}, {"linux", "ppc64le"}, {"linux", "s390x"},
		{"darwin", "amd64"}, {"darwin", "arm64"}, {"windows", "amd64"}, {"windows", "arm64"}, {"windows", "386"}}
)

// check returns the rule the manifest file breaks first, or nil.
func check(file string, data []byte) error {
	var p plugin
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return fmt.Errorf("%s does not decode as a krew Plugin: %w", file, err)
	}
	name := strings.TrimSuffix(filepath.Base(file), ".yaml")
	switch {
	case filepath.Ext(file) != ".yaml":
		return fmt.Errorf("%s: a manifest's file name ends in .yaml", file)
	case p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2":
		return fmt.Errorf("%s: apiVersion %q: krew reads krew.googlecontainertools.github.com/v1alpha2", file, p.APIVersion)
	case p.Kind != "Plugin":
		return fmt.Errorf("%s: kind %q: must be Plugin", file, p.Kind)
	case !safeName.MatchString(name) || isReserved(name):
		return fmt.Errorf("%s: plugin name %q must match %s and not be a Windows device name", file, name, safeName)
	case p.Metadata.Name != name:
		return fmt.Errorf("%s: metadata.name %q must be the file name %q", file, p.Metadata.Name, name)
	case p.Spec.ShortDescription == "":
		return fmt.Errorf("%s: spec.shortDescription is required", file)
	case strings.ContainsAny(p.Spec.ShortDescription, "\r\n"):
		return fmt.Errorf("%s: spec.shortDescription must be one line", file)
	case len(p.Spec.ShortDescription) > 70:
		return fmt.Errorf("%s: spec.shortDescription is %d characters: krew's index allows 70", file, len(p.Spec.ShortDescription))
	case !strings.HasPrefix(p.Spec.Homepage, "https://"):
		return fmt.Errorf("%s: spec.homepage %q must be an https URL", file, p.Spec.Homepage)
	case len(p.Spec.Platforms) == 0:
		return fmt.Errorf("%s: spec.platforms: at least one is required", file)
	}
	if !strings.HasPrefix(p.Spec.Version, "v") {
		return fmt.Errorf("%s: spec.version %q must be a semantic version with a leading v", file, p.Spec.Version)
	}
	if _, err := semver.Parse(strings.TrimPrefix(p.Spec.Version, "v")); err != nil {
		return fmt.Errorf("%s: spec.version %q: %w", file, p.Spec.Version, err)
	}
	for field, text := range map[string]string{"description": p.Spec.Description, "caveats": p.Spec.Caveats} {
		for _, line := range strings.Split(text, "\n") {
			// One word may run longer (a URL); krew's index keeps text to 80 columns.
			if len(line) > 80 && strings.Contains(strings.TrimSpace(line), " ") {
				return fmt.Errorf("%s: spec.%s has a line of %d characters: at most 80", file, field, len(line))
			}
		}
	}
	matched := map[[2]string]int{}
	for i, pl := range p.Spec.Platforms {
		if err := checkPlatform(pl, p.Spec.Version); err != nil {
			return fmt.Errorf("%s: spec.platforms[%d]: %w", file, i, err)
		}
		sel, _ := metav1.LabelSelectorAsSelector(pl.Selector)
		any := false
		for _, osArch := range supported {
			if !sel.Matches(labels.Set{"os": osArch[0], "arch": osArch[1]}) {
				continue
			}
			any = true
			if j, seen := matched[osArch]; seen {
				return fmt.Errorf("%s: spec.platforms[%d] and [%d] both select os=%s arch=%s", file, j, i, osArch[0], osArch[1])
			}
			matched[osArch] = i
			if osArch[0] == "windows" && !strings.HasSuffix(pl.Bin, ".exe") {
				return fmt.Errorf("%s: spec.platforms[%d].bin %q: a Windows binary ends in .exe", file, i, pl.Bin)
			}
		}
		if !any {
			return fmt.Errorf("%s: spec.platforms[%d].selector matches no os/arch krew installs on", file, i)
		}
	}
	return nil
}

func checkPlatform(pl platform, version string) error {
	switch {
	case pl.URI == "":
		return fmt.Errorf("uri is required")
	case !strings.HasPrefix(pl.URI, "https://"):
		return fmt.Errorf("uri %q must be https", pl.URI)
	case !strings.Contains(pl.URI, version):
		return fmt.Errorf("uri %q is not the archive of version %s", pl.URI, version)
	case pl.Sha256 == "":
		return fmt.Errorf("sha256 is required")
	case !sha256Re.MatchString(pl.Sha256):
		return fmt.Errorf("sha256 %q must match %s", pl.Sha256, sha256Re)
	case pl.Bin == "":
		return fmt.Errorf("bin is required")
	case pl.Files != nil && len(pl.Files) == 0:
		return fmt.Errorf("files: leave it out or list at least one")
	case pl.Selector == nil:
		return fmt.Errorf("selector is required")
	case pl.Selector.MatchLabels == nil && len(pl.Selector.MatchExpressions) == 0:
		return fmt.Errorf("selector is empty")
	case pl.Selector.MatchLabels != nil && len(pl.Selector.MatchLabels) == 0:
		return fmt.Errorf("selector.matchLabels is set but empty")
	case pl.Selector.MatchExpressions != nil && len(pl.Selector.MatchExpressions) == 0:
		return fmt.Errorf("selector.matchExpressions is set but empty")
	}
	for _, f := range pl.Files {
		if f.From == "" || f.To == "" {
			return fmt.Errorf("files: every entry needs from and to")
		}
	}
	for k := range pl.Selector.MatchLabels {
		if k != "os" && k != "arch" {
			return fmt.Errorf("selector key %q: krew selects on os and arch only", k)
		}
	}
	for _, e := range pl.Selector.MatchExpressions {
		if e.Key != "os" && e.Key != "arch" {
			return fmt.Errorf("selector key %q: krew selects on os and arch only", e.Key)
		}
	}
	if _, err := metav1.LabelSelectorAsSelector(pl.Selector); err != nil {
		return fmt.Errorf("selector: %w", err)
	}
	return nil
}

func isReserved(name string) bool {
	for _, r := range windowsReserved {
		if strings.EqualFold(r, name) {
			return true
		}
	}
	return false
}

// TestManifest: plugins/krew/sluice.yaml keeps krew's rules, and names the binary the plugin
// is built as.
func TestManifest(t *testing.T) {
	data, err := os.ReadFile("sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := check("sluice.yaml", data); err != nil {
		t.Error(err)
	}
	var p plugin
	_ = yaml.Unmarshal(data, &p)
	for i, pl := range p.Spec.Platforms {
		if strings.TrimSuffix(pl.Bin, ".exe") != "kubectl-sluice" {
			t.Errorf("spec.platforms[%d].bin %q: the plugin is built as kubectl-sluice (cmd/kubectl-sluice)", i, pl.Bin)
		}
	}
}

// TestRulesCatchBrokenManifests: each rule refuses a manifest that breaks it (a check that
// passes everything would pass the real manifest too).
func TestRulesCatchBrokenManifests(t *testing.T) {
	good, err := os.ReadFile("sluice.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"api version", "v1alpha2", "v1alpha1", "apiVersion"},
		{"name", "name: sluice", "name: sluicer", "must be the file name"},
		{"version without v", "version: v0.1.0", "version: 0.1.0", "leading v"},
		{"version not semver", "version: v0.1.0", "version: v0.1", "spec.version"},
		{"long short description", "shortDescription: Watch", "shortDescription: Watch and watch and watch and watch and watch and watch and watch", "70"},
		{"bad checksum", `sha256: "0000000000000000000000000000000000000000000000000000000000000000"`, `sha256: "XYZ"`, "sha256"},
		{"unknown selector key", "{os: linux, arch: amd64}", "{os: linux, cpu: amd64}", `selector key "cpu"`},
		{"overlap", "{os: linux, arch: arm64}", "{os: linux, arch: amd64}", "both select os=linux arch=amd64"},
		{"windows bin", "bin: kubectl-sluice.exe", "bin: kubectl-sluice", "ends in .exe"},
		{"unknown field", "homepage:", "homepagee:", "does not decode"},
		{"no platform", "os: darwin, arch: arm64", "os: plan9, arch: arm64", "matches no os/arch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broken := strings.Replace(string(good), tc.from, tc.to, 1)
			if broken == string(good) {
				t.Fatalf("%q is not in sluice.yaml", tc.from)
			}
			err := check("sluice.yaml", []byte(broken))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}
