package probe

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func TestToken(t *testing.T) {
	a := Token("6f1c0d6e-uid", "7b9e21", "b")
	if len(a) != 32 || a != Token("6f1c0d6e-uid", "7b9e21", "b") {
		t.Fatalf("token %q is not 32 hex characters, or not stable", a)
	}
	for _, other := range []string{Token("another-uid", "7b9e21", "b"), Token("6f1c0d6e-uid", "5d8f7c", "b"), Token("6f1c0d6e-uid", "7b9e21", "a"), Token("6f1c0d6e-uid7", "b9e21", "b")} {
		if other == a {
			t.Errorf("two releases share the token %q", a)
		}
	}
}

func TestRule(t *testing.T) {
	r := Rule("shop-b", 80, "/readyz", token, "")
	got, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	// The shape the API server stores (defaults spelled out), so a read-back compares equal.
	want := `{"name":"sluice-probe",` +
		`"matches":[{"path":{"type":"Exact","value":"/readyz"},"headers":[{"type":"Exact","name":"X-Sluice-Probe","value":"` + token + `"}]}],` +
		`"filters":[{"type":"ResponseHeaderModifier","responseHeaderModifier":{"set":[{"name":"X-Sluice-Probe-Rule","value":"` + token + `"}]}}],` +
		`"backendRefs":[{"group":"","kind":"Service","name":"shop-b","port":80,"weight":1}]}`
	if string(got) != want {
		t.Errorf("rule\n%s\nwant\n%s", got, want)
	}
	withSplit, _ := json.Marshal(Rule("shop-b", 80, "/", token, Version("a=80,b=20")).Filters)
	if want := `[{"type":"ResponseHeaderModifier","responseHeaderModifier":{"set":[{"name":"X-Sluice-Probe-Rule","value":"` + token + `"},{"name":"X-Sluice-Split","value":"` + Version("a=80,b=20") + `"}]}}]`; string(withSplit) != want {
		t.Errorf("filters with a split\n%s\nwant\n%s", withSplit, want)
	}
	if len(Version("a=80,b=20")) != 12 || Version("a=80,b=20") == Version("a=60,b=40") {
		t.Errorf("Version %q", Version("a=80,b=20"))
	}
	if !IsRule(r) || IsRule(gwv1.HTTPRouteRule{Name: ptr.To(gwv1.SectionName("sluice-split"))}) || IsRule(gwv1.HTTPRouteRule{}) {
		t.Error("IsRule")
	}
}

func TestPath(t *testing.T) {
	readiness := func(path string, port intstr.IntOrString) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: port}}}
	}
	app := func(p *corev1.Probe) corev1.Container {
		return corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "admin", ContainerPort: 9000}}, ReadinessProbe: p}
	}
	named, numbered := intstr.FromString("http"), intstr.FromInt32(8080)
	cases := []struct {
		name   string
		spec   corev1.PodSpec
		target intstr.IntOrString
		want   string
	}{
		{"the readiness path on the served port by name", corev1.PodSpec{Containers: []corev1.Container{app(readiness("/readyz", named))}}, named, "/readyz"},
		{"port by number on one side, by name on the other", corev1.PodSpec{Containers: []corev1.Container{app(readiness("/readyz", named))}}, numbered, "/readyz"},
		{"readiness on another port", corev1.PodSpec{Containers: []corev1.Container{app(readiness("/ready", intstr.FromString("admin")))}}, named, "/"},
		{"no readiness probe", corev1.PodSpec{Containers: []corev1.Container{app(nil)}}, named, "/"},
		{"a TCP readiness probe", corev1.PodSpec{Containers: []corev1.Container{app(&corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: named}}})}}, named, "/"},
		{"a sidecar's readiness does not count", corev1.PodSpec{Containers: []corev1.Container{
			{Name: "proxy", Ports: []corev1.ContainerPort{{Name: "proxy", ContainerPort: 15000}}, ReadinessProbe: readiness("/healthz/ready", intstr.FromInt32(15000))},
			app(readiness("/readyz", named)),
		}}, named, "/readyz"},
		{"a path the Gateway API refuses", corev1.PodSpec{Containers: []corev1.Container{app(readiness("/ready?full=1", named))}}, named, "/"},
		{"an empty path", corev1.PodSpec{Containers: []corev1.Container{app(readiness("", named))}}, named, "/"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Path(&tc.spec, tc.target); got != tc.want {
				t.Errorf("Path = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"/": true, "/readyz": true, "/health/ready": true, "/a%20b": true,
		"": false, "readyz": false, "//x": false, "/a/./b": false, "/a/../b": false, "/a%2fb": false, "/a#b": false, "/a/..": false, "/a/.": false, "/a b": false,
	} {
		if validPath(p) != ok {
			t.Errorf("validPath(%q) = %v", p, !ok)
		}
	}
}
