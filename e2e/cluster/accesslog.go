package cluster

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// RequestIDHeader is the request header Traefik keeps in its access log: a client that sets it
// (load.Generator.IDHeader) can find each of its requests there.
const RequestIDHeader = "X-Request-Id"

// AccessEntry is one request in Traefik's access log.
type AccessEntry struct {
	RequestID string
	Start     time.Time
	Duration  time.Duration
	Host      string
	// ServiceName is Traefik's service (the route's backend); ServiceAddr is the server
	// (pod ip:port) the request was sent to, "" when Traefik had none to send it to.
	ServiceName, ServiceAddr string
	// Status is what Traefik answered; OriginStatus what the backend answered (0: none, e.g.
	// the connection to the pod was refused and Traefik answered 502 itself).
	Status, OriginStatus int
}

// BackendIP is the pod address the request was sent to, "" when none.
func (e AccessEntry) BackendIP() string {
	host, _, err := net.SplitHostPort(e.ServiceAddr)
	if err != nil {
		return ""
	}
	return host
}

// ReadAccessLog parses Traefik's access log so far. Lines that don't parse (the last one of a
// Traefik that was killed while writing it) are skipped and counted in skipped.
func (c *Cluster) ReadAccessLog() (entries []AccessEntry, skipped int, err error) {
	f, err := os.Open(c.AccessLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = f.Close() }()
	return parseAccessLog(f)
}

func parseAccessLog(r io.Reader) (entries []AccessEntry, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		var raw struct {
			StartUTC         time.Time `json:"StartUTC"`
			Duration         int64     `json:"Duration"` // nanoseconds
			RequestHost      string    `json:"RequestHost"`
			ServiceName      string    `json:"ServiceName"`
			ServiceAddr      string    `json:"ServiceAddr"`
			DownstreamStatus int       `json:"DownstreamStatus"`
			OriginStatus     int       `json:"OriginStatus"`
			RequestID        string    `json:"request_X-Request-Id"` // request_ + RequestIDHeader
		}
		if json.Unmarshal(sc.Bytes(), &raw) != nil || raw.StartUTC.IsZero() {
			skipped++
			continue
		}
		entries = append(entries, AccessEntry{
			RequestID: raw.RequestID, Start: raw.StartUTC, Duration: time.Duration(raw.Duration),
			Host: raw.RequestHost, ServiceName: raw.ServiceName, ServiceAddr: raw.ServiceAddr,
			Status: raw.DownstreamStatus, OriginStatus: raw.OriginStatus,
		})
	}
	if err := sc.Err(); err != nil {
		return entries, skipped, fmt.Errorf("reading the access log: %w", err)
	}
	return entries, skipped, nil
}
