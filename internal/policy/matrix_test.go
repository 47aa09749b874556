package policy

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

func TestFieldsCoverEveryPolicyLeaf(t *testing.T) {
	fields := Fields()
	joined := "," + strings.Join(fields, ",") + ","
	for _, want := range []string{
		"mtls.mode", "authorization.rules", "authorization.rules.from.serviceAccount", "authorization.rules.to.paths",
		"timeouts.request", "timeouts.idle", "retries.attempts", "retries.perTryTimeout", "retries.retryOn",
		"circuitBreaker.maxConnections", "circuitBreaker.outlierDetection.consecutive5xx",
		"rateLimit.requestsPerSecond", "rateLimit.burst", "loadBalancer.algorithm",
		"loadBalancer.consistentHash.header", "loadBalancer.consistentHash.cookie.name", "loadBalancer.consistentHash.cookie.ttl",
		"locality.preferClose",
	} {
		if !strings.Contains(joined, ","+want+",") {
			t.Errorf("Fields() lacks %s: %v", want, fields)
		}
	}
	for _, f := range fields {
		if strings.HasPrefix(f, "targetRefs") || f == "provider" {
			t.Errorf("Fields() lists addressing field %s", f)
		}
	}
	// Every JSON leaf of the spec's policy groups is listed: count them independently by
	// marshalling a fully populated spec's keys would need a fixture; instead the number of
	// struct leaves is pinned, so a new field fails here until it is looked at.
	if got := len(fields); got != 27 {
		t.Errorf("Fields() has %d paths, want 27; a field was added or removed: give it a row in every provider's Matrix: %v", got, fields)
	}
}

func TestSetFieldsAndCheck(t *testing.T) {
	spec := &meshv1alpha1.MeshPolicySpec{
		MTLS:          &meshv1alpha1.MTLS{Mode: meshv1alpha1.MTLSStrict},
		Authorization: &meshv1alpha1.Authorization{}, // deny all
		Retries:       &meshv1alpha1.Retries{Attempts: 2, PerTryTimeout: &metav1.Duration{Duration: time.Second}},
		RateLimit:     &meshv1alpha1.RateLimit{RequestsPerSecond: 10, Burst: ptr.To[int32](20)},
		Locality:      &meshv1alpha1.Locality{PreferClose: false},
	}
	got := SetFields(spec)
	want := []string{"mtls.mode", "authorization.rules", "retries.attempts", "retries.perTryTimeout", "rateLimit.requestsPerSecond", "rateLimit.burst", "locality.preferClose"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SetFields = %v, want %v", got, want)
	}

	m := Matrix{
		"mtls.mode":                   {Level: Full},
		"authorization.rules":         {Level: Partial, Note: "differs"},
		"retries.attempts":            {Level: Full},
		"retries.perTryTimeout":       {Level: Unsupported, Note: "no per-try timeout"},
		"rateLimit.requestsPerSecond": {Level: Full},
		"locality.preferClose":        {Level: Full},
		// rateLimit.burst has no row: unsupported.
	}
	unsupported, partial := Check(m, spec)
	if len(unsupported) != 2 || unsupported[0].Field != "retries.perTryTimeout" || unsupported[0].Reason != "no per-try timeout" || unsupported[1].Field != "rateLimit.burst" {
		t.Errorf("unsupported = %+v", unsupported)
	}
	if len(partial) != 1 || partial[0].Field != "authorization.rules" {
		t.Errorf("partial = %+v", partial)
	}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "no matrix row for") {
		t.Errorf("Validate of an incomplete matrix: %v", err)
	}
}

func TestMerge(t *testing.T) {
	got := Merge([]meshv1alpha1.UnsupportedField{{Field: "b", Reason: "1"}}, meshv1alpha1.UnsupportedField{Field: "a", Reason: "2"}, meshv1alpha1.UnsupportedField{Field: "b", Reason: "3"})
	if len(got) != 2 || got[0].Field != "a" || got[1].Reason != "1" {
		t.Errorf("Merge = %+v", got)
	}
}

func TestObjectName(t *testing.T) {
	if got := ObjectName("pay", "svc"); got != "pay-svc" {
		t.Errorf("short name %q", got)
	}
	long := ObjectName(strings.Repeat("a", 60), strings.Repeat("b", 60))
	if len(long) != 63 || long == ObjectName(strings.Repeat("a", 60), strings.Repeat("b", 61)) {
		t.Errorf("long names must be 63 characters and distinct: %q", long)
	}
}
