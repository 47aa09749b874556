// Command kubectl-sluice is the kubectl plugin for Sluice (`kubectl sluice ...`): it shows
// Rollouts as a tree, waits for a release to end, sends manual actions and lints manifests
// offline. The logic lives in internal/cli.
package main

import (
	"os"

	"github.com/sluice-mesh/sluice/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
