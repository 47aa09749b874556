// Package bases holds the generated CRDs (make manifests), embedded for the tools that check
// manifests offline with the API server's own schema code (kubectl sluice lint).
package bases

import "embed"

// CRDs are the CustomResourceDefinitions of Sluice's kinds, one file each.
//
//go:embed *.yaml
var CRDs embed.FS
