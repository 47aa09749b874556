// Command bundle writes Sluice's OLM bundle (registry+v1) from config/: the CRDs, a
// ClusterServiceVersion whose install strategy, permissions and webhooks come from the same
// manifests `kubectl apply -k config/default` installs, and the user-facing roles.
// `make bundle` runs it; `make verify` fails when the committed bundle is stale.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	var o options
	flag.StringVar(&o.root, "root", ".", "Repository root.")
	flag.StringVar(&o.out, "out", "bundles/sluice", "Bundle folder to write (replaced).")
	flag.StringVar(&o.version, "version", "0.1.0", "Operator version (semver, no v).")
	flag.StringVar(&o.image, "image", "ghcr.io/sluice-mesh/sluice:v0.1.0", "Manager image.")
	flag.StringVar(&o.channel, "channel", "candidate", "OLM channel.")
	flag.Parse()
	files, err := build(o)
	if err == nil {
		err = write(o.out, files)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}
