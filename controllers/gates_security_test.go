package controllers_test

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/egress"
	"github.com/sluice-mesh/sluice/internal/gates"
)

// A HealthGate can't make the manager read and send just any Secret of its namespace, send
// credentials in the clear, or call an address outside the egress allow-list; each refusal
// names the field and what is allowed, and no credential appears in any message.
func TestGateCredentialsAndEgress(t *testing.T) {
	ns := policyNamespace(t, "gatesec")
	const token = "tok-3f9a1c"
	var hits atomic.Int32
	answer := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	srv := httptest.NewTLSServer(answer)
	defer srv.Close()
	plain := httptest.NewServer(answer)
	defer plain.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	secret := func(name string, typ corev1.SecretType, labelled bool, annotations map[string]string) {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Annotations: annotations}, Type: typ,
			Data: map[string][]byte{"token": []byte(token), "ca.crt": ca}}
		if labelled {
			s.Labels = map[string]string{meshv1alpha1.CredentialsLabel: "true"}
		}
		if err := env.Client.Create(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	secret("sa-token", corev1.SecretTypeServiceAccountToken, true, map[string]string{corev1.ServiceAccountNameKey: "default"})
	secret("unlabelled", corev1.SecretTypeOpaque, false, nil)
	secret("prom-auth", corev1.SecretTypeOpaque, true, nil)

	gate := func(secretName string, addrs ...string) *meshv1alpha1.HealthGate {
		g := successRateGate(ns, "", nil)
		g.Spec.Prometheus.Addresses = addrs
		if secretName != "" {
			g.Spec.Prometheus.SecretRef = &meshv1alpha1.LocalObjectReference{Name: secretName}
		}
		return g
	}
	loopback, err := egress.Parse([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	target := gates.Target{Namespace: ns, Service: "shop", Window: 5 * time.Second}
	// As the manager reads it: uncached, with the manager's role.
	reader, err := client.New(managerConfig(t), client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		egress *egress.Policy
		gate   *meshv1alpha1.HealthGate
		want   []string // in the message
		called bool     // the address was asked
	}{
		{"a ServiceAccount token Secret", loopback, gate("sa-token", srv.URL), []string{"spec.prometheus.secretRef", "ServiceAccount token", meshv1alpha1.CredentialsLabel}, false},
		{"a Secret without the opt-in label", loopback, gate("unlabelled", srv.URL), []string{"spec.prometheus.secretRef", "lacks the label " + meshv1alpha1.CredentialsLabel + "=true"}, false},
		{"credentials to an http address", loopback, gate("prom-auth", srv.URL, plain.URL), []string{"spec.prometheus.secretRef", "only over https", "spec.prometheus.addresses[1]"}, false},
		{"an address outside the allow-list", egress.Default(), gate("", plain.URL), []string{"spec.prometheus.addresses[0]", "egress allow-list", egress.Flag}, false},
		{"a usable Secret over https is used", loopback, gate("prom-auth", srv.URL), []string{"answered HTTP 503"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits.Store(0)
			ev := &controllers.PrometheusEvaluator{Reader: reader, Egress: tc.egress}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res := ev.Evaluate(ctx, tc.gate, target)
			msg := res.Message
			for _, m := range res.Metrics {
				msg += " | " + m.Message
			}
			if res.Verdict == meshv1alpha1.VerdictPass || res.Verdict == meshv1alpha1.VerdictFail {
				t.Errorf("verdict %s, want one that neither promotes nor rolls back", res.Verdict)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
			if strings.Contains(msg, token) {
				t.Errorf("the message carries the token: %s", msg)
			}
			if (hits.Load() > 0) != tc.called {
				t.Errorf("the address was asked %d times, want called=%v", hits.Load(), tc.called)
			}
		})
	}
}
