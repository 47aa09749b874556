package rollout

import (
	"encoding/json"
	"fmt"
	"hash/fnv"

	corev1 "k8s.io/api/core/v1"

	"github.com/sluice-mesh/sluice/internal/traffic"
)

// Labels and annotations Sluice puts on what it creates.
const (
	LabelRollout       = traffic.LabelRollout
	LabelSlot          = "mesh.sluice.dev/slot"
	LabelRevision      = "mesh.sluice.dev/revision"
	AnnotationRevision = "mesh.sluice.dev/revision"
)

// Revision is a short, stable hash of a pod template: the identity of what a release runs.
// The template comes from the API server, already defaulted, so equal specs hash equally.
func Revision(t *corev1.PodTemplateSpec) string {
	data, err := json.Marshal(t)
	if err != nil {
		// A PodTemplateSpec always marshals; keep the signature simple.
		panic(err)
	}
	h := fnv.New64a()
	_, _ = h.Write(data)
	return fmt.Sprintf("%016x", h.Sum64())[:10]
}
