package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// logBuffer collects the server's JSON log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// lines returns the log records whose msg is msg.
func (l *logBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func newTestServer(t *testing.T, cfg Config, deps Deps) (*Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	s := NewServer(cfg, deps, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return s, logs
}

// do runs a request through s, checks the request and the answer against
// openapi.json (contract_test.go), and returns the status, the headers and
// the body.
func do(t *testing.T, s *Server, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, body := serveChecked(t, s, req)
	return resp.StatusCode, resp.Header, string(body)
}

func TestHealthz(t *testing.T) {
	s, logs := newTestServer(t, Config{}, Deps{})
	status, hdr, body := do(t, s, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if status != 200 || body != `{"status":"ok"}` {
		t.Errorf("GET /healthz = %d %s", status, body)
	}
	if id := hdr.Get(HeaderRequestID); len(id) != 36 {
		t.Errorf("X-Request-Id = %q, want a generated UUID", id)
	}
	access := logs.lines(t, "request")
	if len(access) != 1 {
		t.Fatalf("%d access lines, want 1", len(access))
	}
	for k, want := range map[string]any{"method": "GET", "path": "/healthz", "status": float64(200), "request_id": hdr.Get(HeaderRequestID)} {
		if access[0][k] != want {
			t.Errorf("access line %s = %v, want %v", k, access[0][k], want)
		}
	}
	if _, ok := access[0]["duration_ms"].(float64); !ok {
		t.Errorf("access line has no duration_ms: %v", access[0])
	}
}

func TestRequestID(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Deps{})
	tests := []struct {
		name, sent string
		echoed     bool
	}{
		{"Echoed", "phone-42.sync:7", true},
		{"Generated", "", false},
		{"UnsafeReplaced", "bad id\x01", false},
		{"TooLongReplaced", strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/healthz", nil)
			if tt.sent != "" {
				req.Header.Set(HeaderRequestID, tt.sent)
			}
			_, hdr, _ := do(t, s, req)
			got := hdr.Get(HeaderRequestID)
			if tt.echoed && got != tt.sent {
				t.Errorf("X-Request-Id = %q, want %q echoed", got, tt.sent)
			}
			if !tt.echoed && (got == tt.sent || len(got) != 36) {
				t.Errorf("X-Request-Id = %q, want a generated UUID", got)
			}
		})
	}
}

// switchCheck is a readiness check whose result the test sets.
type switchCheck struct {
	mu  sync.Mutex
	err error
}

func (c *switchCheck) set(err error) { c.mu.Lock(); c.err = err; c.mu.Unlock() }
func (c *switchCheck) ping(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("check called without a deadline")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func TestReadyz(t *testing.T) {
	mongo, minio := &switchCheck{}, &switchCheck{}
	s, logs := newTestServer(t, Config{}, Deps{Checks: []server.Check{
		{Name: "mongo", Ping: mongo.ping},
		{Name: "minio", Ping: minio.ping},
	}})
	down := errors.New("dial tcp 127.0.0.1:9000: connect: connection refused")

	steps := []struct {
		name         string
		mongo, minio error
		status       int
		body         string
		downLines    int // "dependency down" lines so far
		upLines      int // "dependency up again" lines so far
	}{
		{"AllUp", nil, nil, 200, `{"status":"ok"}`, 0, 0},
		{"MinioDown", nil, down, 503, `{"status":"unavailable","failing":["minio"]}`, 1, 0},
		{"MinioStillDown", nil, down, 503, `{"status":"unavailable","failing":["minio"]}`, 1, 0},
		{"BothDown", down, down, 503, `{"status":"unavailable","failing":["mongo","minio"]}`, 2, 0},
		{"MinioBack", down, nil, 503, `{"status":"unavailable","failing":["mongo"]}`, 2, 1},
		{"AllBack", nil, nil, 200, `{"status":"ok"}`, 2, 2},
		{"StillUp", nil, nil, 200, `{"status":"ok"}`, 2, 2},
	}
	for _, st := range steps {
		mongo.set(st.mongo)
		minio.set(st.minio)
		status, hdr, body := do(t, s, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if status != st.status || body != st.body {
			t.Errorf("%s: GET /readyz = %d %s, want %d %s", st.name, status, body, st.status, st.body)
		}
		if got, want := hdr.Get("Retry-After") != "", st.status == 503; got != want {
			t.Errorf("%s: Retry-After present = %v, want %v", st.name, got, want)
		}
		downs, ups := logs.lines(t, "dependency down"), logs.lines(t, "dependency up again")
		if len(downs) != st.downLines || len(ups) != st.upLines {
			t.Errorf("%s: %d down and %d up lines logged, want %d and %d", st.name, len(downs), len(ups), st.downLines, st.upLines)
		}
	}
	// The first change names MinIO and says why.
	if downs := logs.lines(t, "dependency down"); len(downs) > 0 {
		if downs[0]["dependency"] != "minio" || downs[0]["error"] != down.Error() || downs[0]["level"] != "ERROR" {
			t.Errorf("first down line = %v", downs[0])
		}
	}
}

func TestReadyz_SlowCheckTimesOut(t *testing.T) {
	s, _ := newTestServer(t, Config{ReadyTimeout: 50 * time.Millisecond}, Deps{Checks: []server.Check{
		{Name: "hung", Ping: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }},
	}})
	start := time.Now()
	status, _, body := do(t, s, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if status != 503 || !strings.Contains(body, `"failing":["hung"]`) {
		t.Errorf("GET /readyz = %d %s, want 503 naming hung", status, body)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("GET /readyz took %v with a 50 ms check timeout", d)
	}
}

// TestErrors checks handleError's table: every way an error becomes a
// response.
func TestErrors(t *testing.T) {
	const limit = 4096
	tests := []struct {
		name     string
		err      error // returned by the handler of GET /test
		method   string
		path     string
		status   int
		code     string
		message  string
		fields   map[string]string
		logLevel string // level of the error log line, "" for none
	}{
		{name: "Invalid", err: syncproto.Errorf(syncproto.EINVALID, "Bad cursor."), status: 400, code: "invalid", message: "Bad cursor."},
		{name: "FieldErrors", err: syncproto.FieldError("Check the form.", map[string]string{"school_id": "Required."}),
			status: 400, code: "invalid", message: "Check the form.", fields: map[string]string{"school_id": "Required."}},
		{name: "NotFound", err: syncproto.Errorf(syncproto.ENOTFOUND, "No such record."), status: 404, code: "not_found", message: "No such record."},
		{name: "Conflict", err: syncproto.Errorf(syncproto.ECONFLICT, "Taken."), status: 409, code: "conflict", message: "Taken."},
		{name: "Stale", err: syncproto.Errorf(syncproto.ESTALE, "Start over."), status: 410, code: "stale", message: "Start over."},
		{name: "Unauthorized", err: syncproto.Errorf(syncproto.EUNAUTHORIZED, "Sign in."), status: 401, code: "unauthorized", message: "Sign in."},
		{name: "Forbidden", err: syncproto.Errorf(syncproto.EFORBIDDEN, "Not yours."), status: 403, code: "forbidden", message: "Not yours."},
		{name: "TooLarge", err: syncproto.Errorf(syncproto.ETOOLARGE, "Too many changes."), status: 413, code: "too_large", message: "Too many changes."},
		{name: "Unsupported", err: syncproto.Errorf(syncproto.EUNSUPPORTED, "Send JPEG."), status: 415, code: "unsupported", message: "Send JPEG."},
		{name: "Unavailable", err: syncproto.Errorf(syncproto.EUNAVAILABLE, "Storage is down."), status: 503, code: "unavailable", message: "Storage is down.", logLevel: "WARN"},
		{name: "OpReused", err: syncproto.Errorf(syncproto.EOPREUSED, "Op reused."), status: 409, code: "op_reused", message: "Op reused."},
		{name: "Protocol", err: syncproto.Errorf(syncproto.EPROTOCOL, "Update the app."), status: 400, code: "protocol", message: "Update the app."},
		{name: "Wrapped", err: fmt.Errorf("sync: push: %w", syncproto.Errorf(syncproto.ESTALE, "Start over.")), status: 410, code: "stale", message: "Start over."},
		{name: "ForeignErrorIsInternal", err: errors.New("mongo: connection reset by peer 10.0.0.5"), status: 500, code: "internal", message: "Internal error.", logLevel: "ERROR"},
		{name: "ExplicitInternalHidesMessage", err: syncproto.Errorf(syncproto.EINTERNAL, "index corrupt"), status: 500, code: "internal", message: "Internal error.", logLevel: "ERROR"},
		{name: "UnknownCode", err: syncproto.Errorf("made_up", "?"), status: 500, code: "internal", message: "Internal error.", logLevel: "ERROR"},
		{name: "Deadline", err: fmt.Errorf("mongo: find: %w", context.DeadlineExceeded), status: 503, code: "unavailable", message: "The server took too long to answer; try again later.", logLevel: "WARN"},
		{name: "NoRoute", method: "GET", path: "/nope", status: 404, code: "not_found", message: "No such endpoint: GET /nope."},
		{name: "FiberError", err: fiber.NewError(http.StatusUnauthorized, "Missing token."), status: 401, code: "unauthorized", message: "Missing token."},
		{name: "FiberServerError", err: fiber.ErrBadGateway, status: 500, code: "internal", message: "Internal error."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, logs := newTestServer(t, Config{BodyLimit: limit}, Deps{})
			s.app.All("/test", func(c *fiber.Ctx) error { return tt.err })
			method, path := "GET", "/test"
			if tt.method != "" {
				method, path = tt.method, tt.path
			}
			status, hdr, got := do(t, s, httptest.NewRequest(method, path, nil))
			if status != tt.status {
				t.Errorf("status = %d, want %d (body %s)", status, tt.status, got)
			}
			var resp struct{ Error *syncproto.Error }
			if err := json.Unmarshal([]byte(got), &resp); err != nil || resp.Error == nil {
				t.Fatalf("body %q is not an error object: %v", got, err)
			}
			want := &syncproto.Error{Code: tt.code, Message: tt.message, Fields: tt.fields}
			if resp.Error.Error() != want.Error() {
				t.Errorf("error = %v, want %v", resp.Error, want)
			}
			if tt.fields == nil && strings.Contains(got, `"fields"`) {
				t.Errorf("body %s has fields, want none", got)
			}
			if got, want := hdr.Get("Retry-After") != "", status == 503; got != want {
				t.Errorf("Retry-After present = %v, want %v", got, want)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			var logged []map[string]any
			for _, msg := range []string{"internal error", "unknown error code", "dependency unavailable", "request timed out"} {
				logged = append(logged, logs.lines(t, msg)...)
			}
			switch {
			case tt.logLevel == "" && len(logged) > 0:
				t.Errorf("logged %v, want no error line", logged)
			case tt.logLevel != "" && len(logged) != 1:
				t.Errorf("logged %d error lines, want 1", len(logged))
			case tt.logLevel != "":
				if logged[0]["level"] != tt.logLevel || logged[0]["error"] != tt.err.Error() || logged[0]["request_id"] != hdr.Get(HeaderRequestID) {
					t.Errorf("error line = %v, want level %s with the error's detail and the request id", logged[0], tt.logLevel)
				}
			}
			// Every request, rejected early or not, leaves one line.
			if n := len(logs.lines(t, "request")) + len(logs.lines(t, "request rejected")); n != 1 {
				t.Errorf("%d request lines, want 1", n)
			}
		})
	}
}

func TestPanicBecomesInternalError(t *testing.T) {
	s, logs := newTestServer(t, Config{}, Deps{})
	s.app.Get("/panic", func(c *fiber.Ctx) error { panic("nil map write in handler") })
	status, _, body := do(t, s, httptest.NewRequest(http.MethodGet, "/panic", nil))
	if status != 500 || body != `{"error":{"code":"internal","message":"Internal error."}}` {
		t.Errorf("GET /panic = %d %s", status, body)
	}
	lines := logs.lines(t, "internal error")
	if len(lines) != 1 || !strings.Contains(lines[0]["error"].(string), "nil map write in handler") {
		t.Errorf("internal error lines = %v, want the panic value", lines)
	}
	// The server still works.
	if status, _, _ := do(t, s, httptest.NewRequest(http.MethodGet, "/healthz", nil)); status != 200 {
		t.Errorf("GET /healthz after a panic = %d", status)
	}
}

func TestHandlersGetADeadline(t *testing.T) {
	s, _ := newTestServer(t, Config{RequestTimeout: 7 * time.Second}, Deps{})
	var left time.Duration
	s.app.Get("/deadline", func(c *fiber.Ctx) error {
		d, ok := c.UserContext().Deadline()
		if !ok {
			return errors.New("no deadline")
		}
		left = time.Until(d)
		return c.SendStatus(http.StatusNoContent)
	})
	if status, _, body := do(t, s, httptest.NewRequest(http.MethodGet, "/deadline", nil)); status != 204 {
		t.Fatalf("GET /deadline = %d %s", status, body)
	}
	if left <= 6*time.Second || left > 7*time.Second {
		t.Errorf("deadline %v away, want about 7 s", left)
	}
}

// TestShutdownDrains checks that Shutdown lets a request in flight finish,
// and that new connections are refused afterwards.
func TestShutdownDrains(t *testing.T) {
	s, _ := newTestServer(t, Config{}, Deps{})
	started := make(chan struct{})
	s.app.Get("/slow", func(c *fiber.Ctx) error {
		close(started)
		time.Sleep(300 * time.Millisecond)
		return c.SendString("done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	url := "http://" + ln.Addr().String()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-started
	if err := s.Shutdown(5 * time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if r := <-got; r.err != nil || r.body != "done" {
		t.Errorf("request in flight got %q, %v; want it to finish", r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve returned %v after Shutdown", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("still accepting connections after Shutdown")
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int]string{
		100: "100 bytes", 4096: "4 KiB", 1536: "1.5 KiB", 32 << 20: "32 MiB", 3 << 19: "1.5 MiB", 1 << 30: "1 GiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
