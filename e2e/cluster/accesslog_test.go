package cluster

import (
	"strings"
	"testing"
	"time"
)

// Lines as Traefik v3.7 writes them with --accesslog.format=json and the request id header
// kept; the last one cut short, as a killed Traefik leaves it.
func TestParseAccessLog(t *testing.T) {
	log := `{"ClientAddr":"10.250.1.1:40000","DownstreamStatus":200,"Duration":1834567,"OriginStatus":200,"RequestHost":"chaos-x.example.com","ServiceAddr":"10.244.0.12:8080","ServiceName":"httproute-chaos-x-shop-gw-gateways-edge-ep-web-0-1c0cf7af9e8f6a2a9ec1-wrr@kubernetesgateway","ServiceURL":"http://10.244.0.12:8080","StartUTC":"2026-11-22T10:00:00.123456789Z","level":"info","msg":"","request_X-Request-Id":"load-1-7","time":"2026-11-22T10:00:00Z"}
{"DownstreamStatus":503,"Duration":90000,"RequestHost":"chaos-x.example.com","StartUTC":"2026-11-22T10:00:01Z","request_X-Request-Id":"load-1-8"}
{"DownstreamStatus":502,"Duration":90000,"OriginStatus":0,"ServiceAddr":"10.244.0.13:8080","StartUTC":"2026-11-22T10:00:02Z","request_X-Request-Id":"load-1-9"}
{"DownstreamStatus":200,"Dura`
	entries, skipped, err := parseAccessLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 || skipped != 1 {
		t.Fatalf("%d entries, %d skipped: %+v", len(entries), skipped, entries)
	}
	first := entries[0]
	if first.RequestID != "load-1-7" || first.BackendIP() != "10.244.0.12" || first.Status != 200 || first.OriginStatus != 200 ||
		first.Duration != 1834567*time.Nanosecond || !first.Start.Equal(time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)) || first.Host != "chaos-x.example.com" {
		t.Errorf("first entry %+v", first)
	}
	if e := entries[1]; e.BackendIP() != "" || e.Status != 503 {
		t.Errorf("no server to send to: %+v", e)
	}
	if e := entries[2]; e.BackendIP() != "10.244.0.13" || e.Status != 502 || e.OriginStatus != 0 {
		t.Errorf("refused by the pod: %+v", e)
	}
}
