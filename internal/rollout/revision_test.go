package rollout

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestRevision(t *testing.T) {
	tmpl := func(image string) *corev1.PodTemplateSpec {
		return &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}}}
	}
	r1, r1again, r2 := Revision(tmpl("demo:v1")), Revision(tmpl("demo:v1")), Revision(tmpl("demo:v2"))
	if r1 != r1again {
		t.Errorf("same template, different revisions %s %s", r1, r1again)
	}
	if r1 == r2 {
		t.Errorf("different templates, same revision %s", r1)
	}
	if len(r1) != 10 {
		t.Errorf("revision %q is not 10 characters", r1)
	}
}
