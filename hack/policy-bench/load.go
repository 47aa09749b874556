package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice-mesh/sluice/internal/admission/admissiontest"
)

// uidMark stands for the request's uid in a review's body; every request gets its own uid.
const uidMark = "00000000-0000-0000-0000-000000000000"

// review is one AdmissionReview to send, its body cut around the uid.
type review struct {
	kind           string
	prefix, suffix []byte
}

// reviews are AdmissionReview v1 bodies for creates of the objects, as the API server sends
// them for a GitOps tool's apply.
func reviews(objs []admissiontest.Object) ([]review, error) {
	var out []review
	for _, o := range objs {
		gvk := metav1.GroupVersionKind{Group: o.Group, Version: o.Version, Kind: o.Kind}
		gvr := metav1.GroupVersionResource{Group: o.Group, Version: o.Version, Resource: o.Resource}
		opts, _ := json.Marshal(metav1.CreateOptions{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: "CreateOptions"}, FieldManager: "argocd-controller"})
		dry := false
		ar := admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID: types.UID(uidMark), Kind: gvk, Resource: gvr, RequestKind: &gvk, RequestResource: &gvr,
				Name: o.Name, Namespace: o.Namespace, Operation: admissionv1.Create,
				UserInfo: authenticationv1.UserInfo{Username: "system:serviceaccount:argocd:argocd-application-controller",
					UID:    "4c1a7f0e-9d2b-4b8e-8f3a-2e6d5c4b3a21",
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:argocd", "system:authenticated"}},
				Object: runtime.RawExtension{Raw: o.JSON}, DryRun: &dry, Options: runtime.RawExtension{Raw: opts},
			},
		}
		body, err := json.Marshal(ar)
		if err != nil {
			return nil, err
		}
		prefix, suffix, ok := bytes.Cut(body, []byte(uidMark))
		if !ok {
			return nil, fmt.Errorf("%s: no uid in the review", o.Kind)
		}
		out = append(out, review{kind: o.Kind, prefix: prefix, suffix: suffix})
	}
	return out, nil
}

// outcome is what became of one request.
type outcome uint8

const (
	allowed outcome = iota
	// notAllowed: answered, but the policies refused (the objects should pass them all).
	notAllowed
	// failed: no answer, a status other than 200, or an answer that is not a review of this
	// request.
	failed
)

// sample is one request.
type sample struct {
	review  int
	outcome outcome
	// latency is from the request's send to the last byte of the answer.
	latency time.Duration
	// lag is how late the request was sent after its scheduled time (open loop: a late
	// send means the load generator could not keep up).
	lag time.Duration
}

// loader sends reviews to the webhook.
type loader struct {
	client  *http.Client
	url     string
	reviews []review
	seq     atomic.Uint64
	// dials counts the connections opened.
	dials atomic.Int64
	// firstErr keeps the first message of each outcome other than allowed.
	mu       sync.Mutex
	firstErr map[outcome]string
}

func newLoader(certPEM []byte, url string, idleConns int, rs []review) *loader {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	l := &loader{url: url, reviews: rs, firstErr: map[outcome]string{}}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	// As the API server's webhook client (client-go's transport): keep-alive, 25 idle
	// connections kept per host, no cap on open ones.
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        idleConns,
		MaxIdleConnsPerHost: idleConns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			l.dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
	}
	l.client = &http.Client{Transport: tr, Timeout: 10 * time.Second}
	return l
}

// send posts review i and waits for the whole answer.
func (l *loader) send(ctx context.Context, i int) (outcome, time.Duration) {
	r := l.reviews[i]
	uid := fmt.Sprintf("00000000-0000-4000-8000-%012x", l.seq.Add(1))
	body := make([]byte, 0, len(r.prefix)+len(uid)+len(r.suffix))
	body = append(append(append(body, r.prefix...), uid...), r.suffix...)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return l.fail(failed, err.Error()), 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	start := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		return l.fail(failed, err.Error()), time.Since(start)
	}
	data, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return l.fail(failed, err.Error()), took
	}
	if resp.StatusCode != http.StatusOK {
		return l.fail(failed, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, data)), took
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &ar); err != nil || ar.Response == nil || string(ar.Response.UID) != uid {
		return l.fail(failed, fmt.Sprintf("not the review's answer: %s", data)), took
	}
	if !ar.Response.Allowed {
		msg := ""
		if ar.Response.Result != nil {
			msg = fmt.Sprintf("%d %s", ar.Response.Result.Code, ar.Response.Result.Message)
		}
		return l.fail(notAllowed, r.kind+": "+msg), took
	}
	return allowed, took
}

// resetErrors forgets the messages kept so far (those of the start and the warm-up).
func (l *loader) resetErrors() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.firstErr)
}

func (l *loader) fail(o outcome, msg string) outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.firstErr[o]; !ok {
		l.firstErr[o] = msg
	}
	return o
}

// run sends rps requests a second for d, open loop: request n goes out at start + n/rps
// whatever became of the earlier ones, each on its own goroutine (the transport queues it
// when all its connections are busy, which counts in its latency). It returns when every
// request is answered, with the time the sends took.
func (l *loader) run(ctx context.Context, rps int, d time.Duration) ([]sample, time.Duration, error) {
	n := int(int64(rps) * int64(d) / int64(time.Second))
	samples := make([]sample, n)
	var wg sync.WaitGroup
	start := time.Now()
	sent := 0
	for ; sent < n; sent++ {
		at := start.Add(time.Duration(int64(sent) * int64(time.Second) / int64(rps)))
		if wait := time.Until(at); wait > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if ctx.Err() != nil {
			break
		}
		lag := time.Since(at)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := i % len(l.reviews)
			o, took := l.send(ctx, r)
			samples[i] = sample{review: r, outcome: o, latency: took, lag: lag}
		}(sent)
	}
	sending := time.Since(start)
	wg.Wait()
	return samples[:sent], sending, ctx.Err()
}

// waitReady sends the first review until the webhook answers it (the manager's cache syncs
// the namespaces on the first request) or the child exits.
func (l *loader) waitReady(ctx context.Context, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		o, _ := l.send(ctx, 0)
		if o == allowed {
			return nil
		}
		if o == notAllowed {
			return fmt.Errorf("the webhook refuses the benchmark's Rollout: %s", l.firstErr[notAllowed])
		}
		select {
		case <-exited:
			return fmt.Errorf("the manager exited")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhook did not answer within %s: %s", timeout, l.firstErr[failed])
		}
	}
}

// metricsSnapshot sums the samples of a few metrics of the manager over their labels.
func metricsSnapshot(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	want := []string{"sluice_admission_policy_review_seconds_sum", "sluice_admission_policy_review_seconds_count", "go_gc_duration_seconds_count"}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		name, labels, _ := strings.Cut(line, "{")
		name, _, _ = strings.Cut(name, " ")
		if name == "sluice_admission_policy_review_seconds_bucket" {
			// Summed over kinds, by bucket: sluice_admission_policy_review_seconds_bucket le=0.005
			_, le, _ := strings.Cut(labels, `le="`)
			le, _, _ = strings.Cut(le, `"`)
			name += " le=" + le
		} else if !slices.Contains(want, name) {
			continue
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}
