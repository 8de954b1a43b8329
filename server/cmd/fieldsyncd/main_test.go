package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/syncproto"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestMain_Run runs fieldsyncd end to end against the real servers: it
// starts, answers the probes, and shuts down cleanly when ctx is canceled.
func TestMain_Run(t *testing.T) {
	t.Parallel()
	db := testenv.Mongo(t) // a fresh database, dropped at the end
	mc := testenv.MinioConfig(t)
	vars := map[string]string{
		"FIELDSYNC_ADDR":             "127.0.0.1:0",
		"FIELDSYNC_MONGO_URI":        testenv.MongoURI(t),
		"FIELDSYNC_MONGO_DB":         db.Name(),
		"FIELDSYNC_MINIO_ENDPOINT":   mc.Endpoint,
		"FIELDSYNC_MINIO_ACCESS_KEY": mc.AccessKey,
		"FIELDSYNC_MINIO_SECRET_KEY": mc.SecretKey,
		"FIELDSYNC_MINIO_BUCKET":     mc.Bucket,
		"FIELDSYNC_SHUTDOWN_TIMEOUT": "5s",
		"FIELDSYNC_ADMIN_TOKEN":      "main-test-admin-token",
		"FIELDSYNC_MAX_RECORD_BYTES": "1MiB",
		"FIELDSYNC_MAX_PULL_BYTES":   "3MiB",
	}
	if mc.Secure {
		vars["FIELDSYNC_MINIO_SECURE"] = "true"
	}

	var logs syncBuffer
	addrs := make(chan string, 1)
	m := &Main{Stdout: io.Discard, Stderr: &logs, OnListen: func(a net.Addr) { addrs <- a.String() }}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, nil, func(k string) string { return vars[k] }) }()

	var base string
	select {
	case addr := <-addrs:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("Run returned before listening: %v\nlog:\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("not listening after 30 s\nlog:\n%s", logs.String())
	}

	for _, tt := range []struct {
		path string
		want string
	}{
		{"/healthz", `{"status":"ok"}`},
		{"/readyz", `{"status":"ok"}`},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+tt.path, nil)
		req.Header.Set("X-Request-Id", "e2e-"+strings.TrimPrefix(tt.path, "/"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != tt.want {
			t.Errorf("GET %s = %d %s, want 200 %s", tt.path, resp.StatusCode, body, tt.want)
		}
		if got := resp.Header.Get("X-Request-Id"); got != req.Header.Get("X-Request-Id") {
			t.Errorf("GET %s: X-Request-Id = %q, want it echoed", tt.path, got)
		}
	}

	// The configured limits are the ones phones are told.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/v1/sync/info", nil)
	req.Header.Set("Authorization", "Bearer "+vars["FIELDSYNC_ADMIN_TOKEN"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var info syncproto.Info
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/sync/info = %d, %v", resp.StatusCode, err)
	}
	if info.Limits.MaxRecordBytes != 1<<20 || info.Limits.MaxPullBytes != 3<<20 || info.Limits.MaxBytes != 32<<20 {
		t.Errorf("advertised limits %+v, want the configured record (1 MiB), page (3 MiB) and body (32 MiB) sizes", info.Limits)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("Run did not return within 25 s of cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after Run returned")
	}

	// The log is JSON, one object per line, with an access line per request
	// carrying the request id.
	var sawAccess, sawStopped bool
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "request" && rec["request_id"] == "e2e-readyz" && rec["status"] == float64(200) {
			sawAccess = true
		}
		if rec["msg"] == "stopped" {
			sawStopped = true
		}
	}
	if !sawAccess || !sawStopped {
		t.Errorf("log lacks the access line of /readyz (%v) or \"stopped\" (%v):\n%s", sawAccess, sawStopped, logs.String())
	}
}

func TestMain_Run_ConfigError(t *testing.T) {
	m := &Main{Stdout: io.Discard, Stderr: io.Discard}
	err := m.Run(t.Context(), nil, func(k string) string {
		if k == "FIELDSYNC_MONGO_URI" {
			return "mongodb://127.0.0.1:1/"
		}
		return ""
	})
	var cerr *configError
	if !errors.As(err, &cerr) {
		t.Fatalf("Run = %v, want a configuration error", err)
	}
	if !strings.Contains(err.Error(), "FIELDSYNC_MINIO_ENDPOINT") {
		t.Errorf("error %q does not name FIELDSYNC_MINIO_ENDPOINT", err)
	}
}
