// Package metricsadapter serves the aggregated API external.metrics.k8s.io/v1beta1 from the test
// process, so the real HorizontalPodAutoscaler controller of kube-controller-manager can scale
// on a metric the test sets (a stand-in for KEDA or prometheus-adapter).
//
// The wiring, for a stack started with stack.Options{HPA: &stack.HPA{}}:
//
//	HPA controller (KCM, in the stack's namespace)
//	  -> GET https://10.244.0.1:6443/apis/external.metrics.k8s.io/v1beta1/namespaces/<ns>/<metric>?labelSelector=...
//	kube-apiserver's aggregator: APIService v1beta1.external.metrics.k8s.io
//	  -> Service kube-system/sluice-e2e-metrics-adapter (no selector, port 443 "https")
//	  -> its EndpointSlice: <Stack.RootIP>:<port> (--enable-aggregator-routing: the endpoint
//	     address, not the cluster IP, which nothing routes without kube-proxy)
//	  -> this server, TLS with a self-signed certificate for
//	     sluice-e2e-metrics-adapter.kube-system.svc (the APIService's caBundle)
//	  -> Options.Values(namespace, metric, selector)
//
// The listener is bound to Stack.RootIP, the root namespace's end of the stack's veth pair, which
// the API server reaches on the link. Start returns once the APIService is Available, so the
// HPA controller's first query already finds it.
//
// Test-only shortcuts: the server neither verifies the front proxy's client certificate nor
// authorizes requests (a real adapter checks the certificate against the requestheader CA of
// kube-system/extension-apiserver-authentication and asks SubjectAccessReviews); it serves
// discovery as plain JSON (the aggregator falls back from aggregated discovery) and an empty
// OpenAPI v2 spec (no v3: a 404 there is silently skipped).
package metricsadapter

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	externalmetrics "k8s.io/metrics/pkg/apis/external_metrics/v1beta1"
	"k8s.io/utils/ptr"

	"github.com/sluice-mesh/sluice/e2e/stack"
)

const (
	// Group and Version are the API this adapter serves.
	Group   = "external.metrics.k8s.io"
	Version = "v1beta1"
	// APIServiceName is the APIService Start creates (one per cluster: one adapter at a time).
	APIServiceName = Version + "." + Group
	// ServiceNamespace and ServiceName are the selector-less Service behind the APIService.
	ServiceNamespace = "kube-system"
	ServiceName      = "sluice-e2e-metrics-adapter"
)

var apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// Values answers one query of the HPA controller: the value of the external metric in
// namespace (the HPA's) for the metric selector of the HPA's spec (labels.Everything() when it
// has none). ok false means no such series: the adapter answers an empty list and the HPA
// reports FailedGetExternalMetric. It is called on the server's goroutines: make it safe for
// concurrent use.
type Values func(namespace, metric string, selector labels.Selector) (value resource.Quantity, ok bool)

// Options configure an adapter.
type Options struct {
	// Values is required.
	Values Values
	// Metrics are listed by discovery (`kubectl get --raw /apis/external.metrics.k8s.io/v1beta1`).
	// Optional: the HPA controller queries metrics by name without discovery.
	Metrics []string
	// Logf receives one line per metric query (t.Logf in tests). Default: discarded.
	Logf func(format string, args ...any)
}

// Adapter is a running adapter registered with a stack's API server.
type Adapter struct {
	// URL is where it listens, https://<Stack.RootIP>:<port>.
	URL string

	h       *handler
	client  kubernetes.Interface
	dynamic dynamic.Interface
	srv     *http.Server
	served  chan struct{}

	stop    sync.Once
	stopErr error
}

// StartForTest starts an adapter for the test on s and stops it (unregistering it) when the
// test ends, before the stack stops. Failures fail the test.
func StartForTest(t testing.TB, s *stack.Stack, opts Options) *Adapter {
	t.Helper()
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := Start(ctx, s, opts)
	if err != nil {
		t.Fatalf("starting the metrics adapter: %v", err)
	}
	t.Cleanup(func() {
		if err := a.Stop(); err != nil {
			t.Errorf("stopping the metrics adapter: %v", err)
		}
	})
	return a
}

// Start listens on s.RootIP, creates the Service, its EndpointSlice and the APIService, and
// returns once the API server reports the APIService Available (bounded by ctx). On error what
// was created is removed again.
func Start(ctx context.Context, s *stack.Stack, opts Options) (_ *Adapter, err error) {
	if opts.Values == nil {
		return nil, errors.New("metricsadapter: Options.Values is required")
	}
	if s.RootIP == "" {
		return nil, errors.New("metricsadapter: the stack has no RootIP")
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	dyn, err := dynamic.NewForConfig(s.Config)
	if err != nil {
		return nil, err
	}
	a := &Adapter{h: &handler{opts: opts}, client: s.Client, dynamic: dyn, served: make(chan struct{})}

	cert, caPEM, err := selfSigned(s.RootIP)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.RootIP, "0"))
	if err != nil {
		return nil, fmt.Errorf("metricsadapter: listening on %s: %w", s.RootIP, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	a.URL = "https://" + ln.Addr().String()
	a.srv = &http.Server{
		Handler: a.h,
		// Test-only: no client certificate is requested, so the aggregator's front-proxy
		// certificate (--proxy-client-cert-file) goes unverified, and nothing is authorized.
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(a.served)
		_ = a.srv.ServeTLS(ln, "", "")
	}()
	defer func() {
		if err != nil {
			_ = a.Stop()
		}
	}()
	if err := a.register(ctx, s.RootIP, int32(port), caPEM); err != nil {
		return nil, err
	}
	if err := a.waitAvailable(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// Queries is how many metric values the adapter has served (discovery not counted).
func (a *Adapter) Queries() int64 { return a.h.queries.Load() }

// Stop deletes the APIService, the Service and its EndpointSlice, then closes the server. Safe
// to call more than once.
func (a *Adapter) Stop() error {
	a.stop.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var errs []error
		ignore := func(err error) error {
			if err == nil || apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		// The APIService first: with the server gone the aggregator would mark it unavailable
		// and discovery of the whole API would report a failed group.
		errs = append(errs, ignore(a.dynamic.Resource(apiServiceGVR).Delete(ctx, APIServiceName, metav1.DeleteOptions{})))
		errs = append(errs, ignore(a.client.DiscoveryV1().EndpointSlices(ServiceNamespace).Delete(ctx, ServiceName, metav1.DeleteOptions{})))
		errs = append(errs, ignore(a.client.CoreV1().Services(ServiceNamespace).Delete(ctx, ServiceName, metav1.DeleteOptions{})))
		if a.srv != nil {
			errs = append(errs, a.srv.Shutdown(ctx))
			<-a.served
		}
		a.stopErr = errors.Join(errs...)
	})
	return a.stopErr
}

// register creates the Service, the EndpointSlice and the APIService pointing at ip:port.
func (a *Adapter) register(ctx context.Context, ip string, port int32, caPEM []byte) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace},
		Spec: corev1.ServiceSpec{
			// No selector: the EndpointSlice below is ours, no controller touches it.
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(port)}},
		},
	}
	if _, err := a.client.CoreV1().Services(ServiceNamespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("metricsadapter: creating Service: %w", err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: ServiceNamespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: ServiceName,
			discoveryv1.LabelManagedBy:   "sluice-e2e-metrics-adapter",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := a.client.DiscoveryV1().EndpointSlices(ServiceNamespace).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("metricsadapter: creating EndpointSlice: %w", err)
	}
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": APIServiceName},
		"spec": map[string]any{
			"group":   Group,
			"version": Version,
			"service": map[string]any{"namespace": ServiceNamespace, "name": ServiceName, "port": int64(443)},
			// The aggregator verifies the serving certificate for <service>.<namespace>.svc.
			"caBundle":             base64.StdEncoding.EncodeToString(caPEM),
			"groupPriorityMinimum": int64(100),
			"versionPriority":      int64(100),
		},
	}}
	if _, err := a.dynamic.Resource(apiServiceGVR).Create(ctx, apiService, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("metricsadapter: creating APIService: %w", err)
	}
	return nil
}

// waitAvailable polls the APIService until its Available condition is True.
func (a *Adapter) waitAvailable(ctx context.Context) error {
	last := "no status yet"
	for {
		u, err := a.dynamic.Resource(apiServiceGVR).Get(ctx, APIServiceName, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
			for _, c := range conds {
				c, _ := c.(map[string]any)
				if c["type"] != "Available" {
					continue
				}
				if c["status"] == "True" {
					return nil
				}
				last = fmt.Sprintf("Available=%v %v: %v", c["status"], c["reason"], c["message"])
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("metricsadapter: APIService %s not available (%s): %w", APIServiceName, last, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Handler is the adapter's HTTP API without the listener and the registration: discovery and
// metric queries, GET only, JSON only. For tests of the wire format.
func Handler(opts Options) http.Handler {
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	return &handler{opts: opts}
}

type handler struct {
	opts    Options
	queries atomic.Int64
}

func (a *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeStatus(w, http.StatusMethodNotAllowed, metav1.StatusReasonMethodNotAllowed, r.Method+" is not supported")
		return
	}
	gv := Group + "/" + Version
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch path {
	case "/apis":
		writeJSON(w, &metav1.APIGroupList{
			TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"},
			Groups:   []metav1.APIGroup{apiGroup()},
		})
		return
	case "/apis/" + Group:
		g := apiGroup()
		g.TypeMeta = metav1.TypeMeta{Kind: "APIGroup", APIVersion: "v1"}
		writeJSON(w, &g)
		return
	case "/openapi/v2":
		// An empty spec: the aggregator logs an error every minute for a 404 here.
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"swagger":"2.0","info":{"title":"sluice-e2e-metrics-adapter","version":"v1beta1"},"paths":{}}`))
		return
	case "/apis/" + gv:
		list := &metav1.APIResourceList{TypeMeta: metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"}, GroupVersion: gv, APIResources: []metav1.APIResource{}}
		for _, m := range a.opts.Metrics {
			list.APIResources = append(list.APIResources, metav1.APIResource{Name: m, Namespaced: true, Kind: "ExternalMetricValueList", Verbs: metav1.Verbs{"get"}})
		}
		writeJSON(w, list)
		return
	}
	// /apis/<group>/<version>/namespaces/<namespace>/<metric>
	rest, ok := strings.CutPrefix(path, "/apis/"+gv+"/namespaces/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		writeStatus(w, http.StatusNotFound, metav1.StatusReasonNotFound, "the server could not find the requested resource "+r.URL.Path)
		return
	}
	namespace, metric := parts[0], parts[1]
	selector, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "labelSelector: "+err.Error())
		return
	}
	list := &externalmetrics.ExternalMetricValueList{
		TypeMeta: metav1.TypeMeta{Kind: "ExternalMetricValueList", APIVersion: gv},
		Items:    []externalmetrics.ExternalMetricValue{},
	}
	var value resource.Quantity
	found := false
	if a.opts.Values != nil {
		value, found = a.opts.Values(namespace, metric, selector)
	}
	if found {
		list.Items = append(list.Items, externalmetrics.ExternalMetricValue{
			MetricName:   metric,
			MetricLabels: selectedLabels(selector),
			Timestamp:    metav1.Now(),
			Value:        value,
		})
	}
	n := a.queries.Add(1)
	shown := "none"
	if found {
		shown = value.String()
	}
	a.opts.Logf("metricsadapter: query %d: %s/%s{%s} = %s", n, namespace, metric, selector, shown)
	writeJSON(w, list)
}

func apiGroup() metav1.APIGroup {
	v := metav1.GroupVersionForDiscovery{GroupVersion: Group + "/" + Version, Version: Version}
	return metav1.APIGroup{Name: Group, Versions: []metav1.GroupVersionForDiscovery{v}, PreferredVersion: v}
}

// selectedLabels are the labels the selector pins to one value: the series' labels.
func selectedLabels(sel labels.Selector) map[string]string {
	out := map[string]string{}
	reqs, _ := sel.Requirements()
	for _, r := range reqs {
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals, selection.In:
			if r.Values().Len() == 1 {
				out[r.Key()] = r.Values().List()[0]
			}
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, metav1.StatusReasonInternalError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	b, _ := json.Marshal(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Code: int32(code), Reason: reason, Message: msg,
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// selfSigned makes the serving certificate: valid for the Service's DNS name (what the
// aggregator checks) and for ip (for a test that calls URL directly). It is its own CA: the
// APIService's caBundle is the certificate itself.
func selfSigned(ip string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	svcName := ServiceName + "." + ServiceNamespace + ".svc"
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: svcName},
		DNSNames:              []string{svcName, svcName + ".cluster.local"},
		IPAddresses:           []net.IP{net.ParseIP(ip)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return cert, certPEM, err
}
