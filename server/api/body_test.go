package api

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The tests of this file talk to a real listening server over raw TCP:
// what matters is what the server reads, when it answers, and whether it
// closes the connection, which fiber's App.Test cannot show.

const bodyTestToken = "body-test-admin-token"

// answerWait bounds the wait for an answer. It is not a measure: a server
// that waits for the rest of a body the client never sends does not
// answer at all, and the test fails instead of hanging.
const answerWait = 20 * time.Second

// serveBodies starts s on 127.0.0.1 with the route "POST /echo", which
// takes a body of at most echoMax bytes (admin token) and answers its
// length and sha256, and returns the address.
func serveBodies(t *testing.T, s *Server, echoMax int) string {
	t.Helper()
	s.app.Post("/echo", s.authenticated, s.body(echoMax), func(c *fiber.Ctx) error {
		b := requestBody(c)
		sum := sha256.Sum256(b)
		return c.JSON(echoAnswer{Bytes: len(b), SHA256: hex.EncodeToString(sum[:])})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(time.Second) })
	return ln.Addr().String()
}

type echoAnswer struct {
	Bytes  int    `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// rawConn is a client connection that writes requests byte by byte as
// the test says.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// send writes the request line, the headers (each "Name: value") and
// then body, which may be only the start of the body the headers
// announce.
func (c *rawConn) send(t *testing.T, method, path string, headers []string, body []byte) {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: fieldsync.test\r\n", method, path)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	if _, err := c.Write(b.Bytes()); err != nil {
		t.Fatalf("%s %s: write: %v", method, path, err)
	}
}

// answer reads one answer.
func (c *rawConn) answer(t *testing.T) (*http.Response, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(answerWait))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp, b
}

// closedByServer reports whether the server closes the connection (after
// its lingering read) rather than waiting for another request.
func (c *rawConn) closedByServer(t *testing.T) bool {
	t.Helper()
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite() // no more requests: a lingering server closes at once
	}
	_ = c.SetReadDeadline(time.Now().Add(answerWait))
	// EOF (nil) or a reset: closed; a timeout: still open.
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// checkErrorAnswer checks what every error answer carries: a generated
// X-Request-Id, JSON, and the error code.
func checkErrorAnswer(t *testing.T, resp *http.Response, body []byte, code string) *syncproto.Error {
	t.Helper()
	if id := resp.Header.Get(HeaderRequestID); len(id) != 36 {
		t.Errorf("X-Request-Id = %q, want a generated UUID", id)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q, want JSON", ct)
	}
	var e syncproto.ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("answer %d %s is not an error object: %v", resp.StatusCode, body, err)
	}
	if e.Error.Code != code {
		t.Errorf("code %q (%s), want %q", e.Error.Code, e.Error.Message, code)
	}
	return e.Error
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var bomb struct {
	once sync.Once
	b    []byte
}

// gzipBomb returns the gzip body of the attack: 32 MiB of zeros in about
// 32 KB, as 32 gzip members of 1 MiB each (a gzip body may hold several,
// one after the other).
func gzipBomb(t *testing.T) []byte {
	t.Helper()
	bomb.once.Do(func() { bomb.b = bytes.Repeat(gzipBytes(t, make([]byte, 1<<20)), 32) })
	if len(bomb.b) > 40<<10 {
		t.Fatalf("the gzip bomb is %d bytes, want about 32 KB", len(bomb.b))
	}
	return bomb.b
}

// chunked encodes b as a chunked body of 1000-byte chunks.
func chunked(b []byte) []byte {
	var out bytes.Buffer
	for len(b) > 0 {
		n := min(len(b), 1000)
		fmt.Fprintf(&out, "%x\r\n%s\r\n", n, b[:n])
		b = b[n:]
	}
	out.WriteString("0\r\n\r\n")
	return out.Bytes()
}

func contentLength(n int) string { return fmt.Sprintf("Content-Length: %d", n) }

const bearerHeader = "Authorization: Bearer " + bodyTestToken

// TestBodies runs each way a body can arrive through a route that takes
// at most 4 KiB, a route that takes none, and no route.
func TestBodies(t *testing.T) {
	const limit = 4 << 10
	s, _ := newTestServer(t, Config{AdminToken: bodyTestToken}, Deps{})
	addr := serveBodies(t, s, limit)

	full := bytes.Repeat([]byte("x"), limit)
	over := bytes.Repeat([]byte("x"), limit+1)
	bomb := gzipBomb(t)

	tests := []struct {
		name         string
		method, path string
		headers      []string
		body         []byte // what the client sends, perhaps less than it announces
		status       int
		code         string // of an error answer
		message      string // in the error message
		echoed       []byte // the body the route got, for 200 on /echo
		closes       bool   // the server closes the connection after the answer (the body was not read to its end)
	}{
		{name: "AtTheLimit", method: "POST", path: "/echo", headers: []string{bearerHeader, contentLength(limit)}, body: full,
			status: 200, echoed: full},
		{name: "Empty", method: "POST", path: "/echo", headers: []string{bearerHeader, contentLength(0)},
			status: 200, echoed: []byte{}},
		{name: "Gzip", method: "POST", path: "/echo", headers: []string{bearerHeader, "Content-Encoding: gzip", contentLength(len(gzipBytes(t, full)))},
			body: gzipBytes(t, full), status: 200, echoed: full},
		{name: "GzipUpperCase", method: "POST", path: "/echo", headers: []string{bearerHeader, "Content-Encoding: GZIP", contentLength(len(gzipBytes(t, full)))},
			body: gzipBytes(t, full), status: 200, echoed: full},
		{name: "Chunked", method: "POST", path: "/echo", headers: []string{bearerHeader, "Transfer-Encoding: chunked"},
			body: chunked(full), status: 200, echoed: full},
		{name: "GzipChunked", method: "POST", path: "/echo", headers: []string{bearerHeader, "Content-Encoding: gzip", "Transfer-Encoding: chunked"},
			body: chunked(gzipBytes(t, full)), status: 200, echoed: full},

		// Refused before a byte of the body is read.
		{name: "AnnouncedOverLimit", method: "POST", path: "/echo", headers: []string{bearerHeader, contentLength(limit + 1)}, body: over[:10],
			status: 413, code: syncproto.ETOOLARGE, message: "limit of 4 KiB", closes: true},
		{name: "NoTokenAnnounces32MiB", method: "POST", path: "/echo", headers: []string{contentLength(32 << 20)}, body: make([]byte, 16<<10),
			status: 401, code: syncproto.EUNAUTHORIZED, closes: true},
		{name: "BadTokenAnnounces32MiB", method: "POST", path: "/echo", headers: []string{"Authorization: Bearer not-the-token", contentLength(32 << 20)}, body: make([]byte, 16<<10),
			status: 401, code: syncproto.EUNAUTHORIZED, closes: true},
		{name: "NoTokenGzipBomb", method: "POST", path: "/echo", headers: []string{"Content-Encoding: gzip", contentLength(len(bomb))}, body: bomb,
			status: 401, code: syncproto.EUNAUTHORIZED, closes: true},
		{name: "Brotli", method: "POST", path: "/echo", headers: []string{bearerHeader, "Content-Encoding: br", contentLength(limit)}, body: full,
			status: 415, code: syncproto.EUNSUPPORTED, closes: true},

		// Refused while reading.
		{name: "ChunkedOverLimit", method: "POST", path: "/echo", headers: []string{bearerHeader, "Transfer-Encoding: chunked"}, body: chunked(over),
			status: 413, code: syncproto.ETOOLARGE, message: "limit of 4 KiB", closes: true},
		{name: "InflatesOverLimit", method: "POST", path: "/echo", headers: []string{bearerHeader, "Content-Encoding: gzip", contentLength(len(gzipBytes(t, over)))},
			body: gzipBytes(t, over), status: 413, code: syncproto.ETOOLARGE, message: "decompressed"},
		{name: "GzipBombWithToken", method: "POST", path: "/echo", headers: []string{bearerHeader, "Content-Encoding: gzip", contentLength(len(bomb))}, body: bomb,
			status: 413, code: syncproto.ETOOLARGE, message: "limit of 4 KiB", closes: true},
		{name: "CorruptGzip", method: "POST", path: "/echo", headers: []string{bearerHeader, "Content-Encoding: gzip", contentLength(9)}, body: []byte(`{"a":"b"}`),
			status: 400, code: syncproto.EINVALID, message: "gzip"},

		// Routes that take no body neither read nor inflate one.
		{name: "HealthzIgnoresGzipBomb", method: "GET", path: "/healthz", headers: []string{"Content-Encoding: gzip", contentLength(len(bomb))}, body: bomb,
			status: 200, closes: true},
		{name: "HealthzIgnoresBody", method: "GET", path: "/healthz", headers: []string{contentLength(32 << 20)}, body: make([]byte, 16<<10),
			status: 200, closes: true},
		{name: "NoRoute", method: "POST", path: "/nope", headers: []string{contentLength(32 << 20)}, body: make([]byte, 16<<10),
			status: 404, code: syncproto.ENOTFOUND, closes: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(t, tt.method, tt.path, tt.headers, tt.body)
			resp, body := c.answer(t)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.method, tt.path, resp.StatusCode, body, tt.status)
			}
			if tt.code != "" {
				e := checkErrorAnswer(t, resp, body, tt.code)
				if !strings.Contains(e.Message, tt.message) {
					t.Errorf("message %q, want it to say %q", e.Message, tt.message)
				}
			} else if id := resp.Header.Get(HeaderRequestID); len(id) != 36 {
				t.Errorf("X-Request-Id = %q, want a generated UUID", id)
			}
			if tt.echoed != nil {
				var got echoAnswer
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(tt.echoed)
				if got.Bytes != len(tt.echoed) || got.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("the route got %d bytes %s, want %d bytes %x", got.Bytes, got.SHA256, len(tt.echoed), sum)
				}
			}
			if resp.Close != tt.closes {
				t.Errorf("Connection: close = %v, want %v", resp.Close, tt.closes)
			}
			if tt.closes {
				if !c.closedByServer(t) {
					t.Error("the server kept the connection open")
				}
				return
			}
			// A body read to its end leaves the connection usable.
			c.send(t, "GET", "/healthz", nil, nil)
			if resp, body := c.answer(t); resp.StatusCode != 200 {
				t.Errorf("the next request on the connection = %d %s", resp.StatusCode, body)
			}
		})
	}
}

// TestUnauthenticatedBodyIsNotRead sends, without a token, a request that
// announces 32 MiB and a gzip body that inflates to 32 MiB, to a route
// that takes a body and to /healthz, which takes none: each is answered
// (401, or 200 for /healthz) although the client never sends the rest,
// and the server allocates a small fraction of what the bodies announce:
// neither is read nor inflated.
func TestUnauthenticatedBodyIsNotRead(t *testing.T) {
	s, _ := newTestServer(t, Config{AdminToken: bodyTestToken}, Deps{})
	addr := serveBodies(t, s, 32<<20)
	bomb := gzipBomb(t)
	start := make([]byte, 16<<10)

	tests := []struct {
		name         string
		method, path string
		headers      []string
		body         []byte
		status       int
	}{
		{"Announces32MiB", "POST", "/echo", []string{contentLength(32 << 20)}, start, http.StatusUnauthorized},
		{"GzipInflatingTo32MiB", "POST", "/echo", []string{"Content-Encoding: gzip", contentLength(len(bomb))}, bomb, http.StatusUnauthorized},
		{"HealthzAnnounces32MiB", "GET", "/healthz", []string{contentLength(32 << 20)}, start, http.StatusOK},
		{"HealthzGzipInflatingTo32MiB", "GET", "/healthz", []string{"Content-Encoding: gzip", contentLength(len(bomb))}, bomb, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			c.send(t, tt.method, tt.path, tt.headers, tt.body)
			resp, body := c.answer(t)
			runtime.ReadMemStats(&after)
			if resp.StatusCode != tt.status {
				t.Fatalf("%s %s without a token = %d %s, want %d", tt.method, tt.path, resp.StatusCode, body, tt.status)
			}
			if tt.status == http.StatusUnauthorized {
				checkErrorAnswer(t, resp, body, syncproto.EUNAUTHORIZED)
			} else if id := resp.Header.Get(HeaderRequestID); len(id) != 36 {
				t.Errorf("X-Request-Id = %q, want a generated UUID", id)
			}
			// The client and the server share this process: the
			// allocations of both are counted, and still they are far
			// below the 32 MiB a server reading the body would allocate.
			alloc := after.TotalAlloc - before.TotalAlloc
			if alloc > 1<<20 {
				t.Errorf("%d bytes allocated while answering, want well under the 32 MiB announced", alloc)
			}
			t.Logf("%d bytes allocated while answering", alloc)
		})
	}
}

// TestBodyBudget fills the budget of body bytes with slow bodies of two
// principals (the admin and the unauthenticated): a body over one
// principal's share is answered 429, one over the whole budget 503, both
// with code unavailable and Retry-After, and once the bodies have arrived
// their bytes are free again.
func TestBodyBudget(t *testing.T) {
	// A body buffer starts at 4 KiB and doubles (readAll); a body of
	// 20 KiB takes it to 20 KiB + 1.
	const limit = 20 << 10
	const budget = 2*(limit+1) + 8<<10 // two bodies of 20 KiB, not three; a share is half
	s, logs := newTestServer(t, Config{AdminToken: bodyTestToken, BodyBudget: budget}, Deps{})
	s.app.Post("/anonymous", s.body(limit), func(c *fiber.Ctx) error { return c.JSON(echoAnswer{Bytes: len(requestBody(c))}) })
	// A third principal, holding nothing when the budget is spent.
	office := func(c *fiber.Ctx) error {
		c.SetUserContext(server.WithPrincipal(c.UserContext(), server.Principal{UserID: "office-1"}))
		return c.Next()
	}
	s.app.Post("/office", office, s.body(limit), func(c *fiber.Ctx) error { return c.JSON(echoAnswer{Bytes: len(requestBody(c))}) })
	addr := serveBodies(t, s, limit)
	if s.cfg.BodyBudget != budget {
		t.Fatalf("budget %d, want %d", s.cfg.BodyBudget, budget)
	}
	full := bytes.Repeat([]byte("y"), limit)
	admin := []string{bearerHeader, contentLength(limit)}
	anonymous := []string{contentLength(limit)}
	refused := func(path string, headers []string, status int) {
		t.Helper()
		c := dialRaw(t, addr)
		c.send(t, "POST", path, headers, full)
		resp, body := c.answer(t)
		if resp.StatusCode != status {
			t.Fatalf("POST %s = %d %s, want %d", path, resp.StatusCode, body, status)
		}
		checkErrorAnswer(t, resp, body, syncproto.EUNAVAILABLE)
		if resp.Header.Get("Retry-After") == "" {
			t.Errorf("%d without Retry-After", status)
		}
		if !resp.Close {
			t.Errorf("%d before reading the body without Connection: close", status)
		}
	}

	// A body that has not arrived holds almost nothing: a stalled body
	// holds the buffer for what it sent.
	c0 := dialRaw(t, addr)
	c0.send(t, "POST", "/echo", admin, full[:100])
	waitFor(t, "the first buffer", func() bool { return s.budget.inUse() == 4<<10 })
	c0.Close()
	waitFor(t, "the budget to be free", func() bool { return s.budget.inUse() == 0 })

	// The admin's body stalls after 18 KiB, holding 20 KiB + 1: the
	// admin's share is spent, not the budget.
	stalled := []*rawConn{dialRaw(t, addr), dialRaw(t, addr)}
	stalled[0].send(t, "POST", "/echo", admin, full[:18<<10])
	waitFor(t, "the admin's body to hold its buffer", func() bool { return s.budget.inUse() == limit+1 })
	refused("/echo", admin, http.StatusTooManyRequests)
	// Another principal's body stalls too: now the budget is spent.
	stalled[1].send(t, "POST", "/anonymous", anonymous, full[:18<<10])
	waitFor(t, "two bodies to hold the budget", func() bool { return s.budget.inUse() == 2*(limit+1) })
	refused("/office", []string{contentLength(limit)}, http.StatusServiceUnavailable)
	refused("/anonymous", anonymous, http.StatusTooManyRequests)
	if lines := logs.lines(t, "dependency unavailable"); len(lines) != 0 {
		t.Errorf("a full budget was logged as a dependency down: %v", lines)
	}

	// The stalled bodies arrive; their bytes are given back.
	for _, c := range stalled {
		if _, err := c.Write(full[18<<10:]); err != nil {
			t.Fatal(err)
		}
		if resp, body := c.answer(t); resp.StatusCode != 200 {
			t.Fatalf("a stalled body, completed = %d %s", resp.StatusCode, body)
		}
	}
	waitFor(t, "the budget to be free", func() bool { return s.budget.inUse() == 0 })
	c := dialRaw(t, addr)
	c.send(t, "POST", "/echo", admin, full)
	if resp, body := c.answer(t); resp.StatusCode != 200 {
		t.Fatalf("a body after the others = %d %s, want 200", resp.StatusCode, body)
	}
}

// TestBudgetShares checks the budget's arithmetic: the whole and each
// principal's share.
func TestBudgetShares(t *testing.T) {
	b := newBudget(100, 60)
	steps := []struct {
		take    bool // take, or give
		who     string
		n       int64
		err     error
		inUse   int64
		comment string
	}{
		{true, "a", 60, nil, 60, "a principal may hold its share"},
		{true, "a", 1, errBodyShare, 60, "not more"},
		{true, "b", 41, errBodyBudget, 60, "nor another principal beyond the whole"},
		{true, "b", 40, nil, 100, "up to the whole"},
		{true, "c", 1, errBodyBudget, 100, "the whole is spent"},
		{true, "b", 21, errBodyShare, 100, "beyond both: the share is named"},
		{false, "a", 60, nil, 40, "a gives back"},
		{true, "c", 60, nil, 100, "c takes what a gave"},
		{false, "b", 40, nil, 60, ""},
		{false, "c", 60, nil, 0, "all given back"},
		{true, "b", 60, nil, 60, "b's share is whole again"},
	}
	for i, st := range steps {
		var err error
		if st.take {
			err = b.take(st.who, st.n)
		} else {
			b.give(st.who, st.n)
		}
		if err != st.err || b.inUse() != st.inUse {
			t.Fatalf("step %d (%s): %v, in use %d; want %v, %d", i, st.comment, err, b.inUse(), st.err, st.inUse)
		}
	}
	if len(b.by) != 1 {
		t.Errorf("principals holding nothing are kept: %v", b.by)
	}
}

// waitFor polls cond until it holds, failing the test after answerWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(answerWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlowBodies stalls bodies at each stage of reading: they are cut off
// with 408 once the grace and the minimum rate allow no more, and the
// connection is closed.
func TestSlowBodies(t *testing.T) {
	const limit = 64 << 10
	s, _ := newTestServer(t, Config{AdminToken: bodyTestToken, MinBodyRate: 100_000, BodyRateGrace: 100 * time.Millisecond}, Deps{})
	addr := serveBodies(t, s, limit)
	tests := []struct {
		name    string
		headers []string
		body    []byte
	}{
		// fasthttp waits for the first bytes of a body with the headers.
		{"NothingAfterTheHeaders", []string{bearerHeader, contentLength(limit)}, nil},
		{"NothingAfterTheHeadersNoToken", []string{contentLength(limit)}, nil},
		// The route reads the rest.
		{"StallAfterTheStart", []string{bearerHeader, contentLength(limit)}, make([]byte, 100)},
		{"StallAfter9000Bytes", []string{bearerHeader, contentLength(limit)}, make([]byte, 9000)},
		{"StallChunked", []string{bearerHeader, "Transfer-Encoding: chunked"}, []byte("2000\r\n" + strings.Repeat("z", 100))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.send(t, "POST", "/echo", tt.headers, tt.body)
			resp, body := c.answer(t)
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("a stalled body = %d %s, want 408", resp.StatusCode, body)
			}
			e := checkErrorAnswer(t, resp, body, syncproto.EUNAVAILABLE)
			if e.Message != slowBodyMessage {
				t.Errorf("message %q", e.Message)
			}
			if !resp.Close || !c.closedByServer(t) {
				t.Error("the connection stays open after a body was cut off")
			}
		})
	}
}

// TestRouteBodyLimits announces one byte more than each route takes, and
// sends the first two: the answer is 413 naming the route's limit, without
// waiting for the rest (or 401 without a token on a route that needs one:
// authentication comes first).
func TestRouteBodyLimits(t *testing.T) {
	s := serverWithAllDeps(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(time.Second) })
	admin := "Authorization: Bearer " + s.cfg.AdminToken

	tests := []struct {
		method, path string
		limit        int
		status       int
		noToken      bool
	}{
		{"POST", "/v1/devices/enroll", 4 << 10, 413, true},
		{"PUT", "/v1/admin/inspectors/x", 64 << 10, 413, false},
		{"PUT", "/v1/admin/assignments/x", 64 << 10, 413, false},
		{"POST", "/v1/admin/inspectors/x/enrollment-codes", 64 << 10, 413, false},
		{"POST", "/v1/admin/devices/x/revoke", 64 << 10, 413, false},
		{"POST", "/v1/sync/push", 32 << 20, 413, false},
		{"POST", "/v1/sync/pull", 1 << 20, 413, false},
		{"POST", "/v1/sync/push", 32 << 20, 401, true},
		{"POST", "/v1/conflicts/r/f/resolve", 32 << 20, 413, false},
		{"POST", "/v1/admin/compact/ref", 64 << 10, 413, false},
		{"POST", "/v1/admin/forms", 32 << 20, 413, false},
		{"POST", "/v1/admin/forms/xlsform", 32 << 20, 413, false},
		{"POST", "/v1/admin/forms/f/1/retire", 64 << 10, 413, false},
		{"PUT", "/v1/blobs/abc/chunks/0", 8 << 20, 413, false},
		{"POST", "/v1/blobs/abc/finish", 64 << 10, 413, false},
		{"PUT", "/v1/blobs/abc", 25 << 20, 413, false},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			headers := []string{admin, contentLength(tt.limit + 1)}
			if tt.noToken {
				headers = headers[1:]
			}
			c := dialRaw(t, ln.Addr().String())
			c.send(t, tt.method, tt.path, headers, []byte("{}"))
			resp, body := c.answer(t)
			if resp.StatusCode != tt.status {
				t.Fatalf("%d bytes announced: %d %s, want %d", tt.limit+1, resp.StatusCode, body, tt.status)
			}
			if tt.status == 413 {
				e := checkErrorAnswer(t, resp, body, syncproto.ETOOLARGE)
				if want := "limit of " + formatBytes(tt.limit) + " "; !strings.Contains(e.Message, want) {
					t.Errorf("message %q, want it to name %q", e.Message, want)
				}
			}
		})
	}
	if s.cfg.BodyBudget <= 32<<20 {
		t.Errorf("budget %d does not hold the largest body", s.cfg.BodyBudget)
	}
}

// TestBodiesAreReadOnlyInBodyGo keeps every read of a request body in
// body.go: fiber's and fasthttp's own readers read a streamed body whole,
// without a limit.
func TestBodiesAreReadOnlyInBodyGo(t *testing.T) {
	unbounded := regexp.MustCompile(`\.Request\(\)\.Body\(\)|\bc\.Body\(\)|\.BodyParser\(|\.BodyStream\(|\.PostBody\(|\.FormValue\(|\.FormFile\(|\.MultipartForm\(|\.BodyRaw\(`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if f == "body.go" || strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for i, line := range strings.Split(string(src), "\n") {
			if unbounded.MatchString(line) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				t.Errorf("%s:%d reads the request body outside body.go (use s.body and requestBody): %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
	if checked < 5 {
		t.Fatalf("checked %d files", checked)
	}
}

// TestEarlyRejectionsCarryRequestID sends requests fasthttp refuses before
// any middleware runs: they are answered with the usual JSON error and an
// X-Request-Id all the same.
func TestEarlyRejectionsCarryRequestID(t *testing.T) {
	s, logs := newTestServer(t, Config{AdminToken: bodyTestToken}, Deps{})
	addr := serveBodies(t, s, 4<<10)
	tests := []struct {
		name    string
		request string
		status  int
		code    string
	}{
		{"HeadersTooLarge", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + strings.Repeat("p", 8<<10) + "\r\n\r\n", 431, syncproto.ETOOLARGE},
		{"MalformedRequest", "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n", 400, syncproto.EINVALID},
		{"ConflictingLengths", "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, syncproto.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, addr)
			if _, err := io.WriteString(c, tt.request); err != nil {
				t.Fatal(err)
			}
			resp, body := c.answer(t)
			if resp.StatusCode != tt.status {
				t.Fatalf("answer %d %s, want %d", resp.StatusCode, body, tt.status)
			}
			checkErrorAnswer(t, resp, body, tt.code)
		})
	}
	// Each was logged once, with its request id.
	rejected := logs.lines(t, "request rejected")
	if len(rejected) != len(tests) {
		t.Fatalf("%d lines of rejected requests, want %d", len(rejected), len(tests))
	}
	for _, l := range rejected {
		if id, _ := l["request_id"].(string); len(id) != 36 {
			t.Errorf("rejected request logged without its request id: %v", l)
		}
	}
}

// FuzzBodies sends any body, plain or said to be gzip, to routes taking at
// most 64, 1000 or 4096 bytes, and checks the answer against an oracle:
// the body within the limit (inflated, for gzip), 413 beyond it, 400 for
// a corrupt gzip body, never anything else.
func FuzzBodies(f *testing.F) {
	limits := []int{64, 1000, 4096}
	s, _ := newTestServer(&testing.T{}, Config{AdminToken: bodyTestToken}, Deps{})
	for _, n := range limits {
		s.app.Post(fmt.Sprintf("/echo/%d", n), s.authenticated, s.body(n), func(c *fiber.Ctx) error {
			return c.Send(requestBody(c))
		})
	}
	f.Add([]byte(`{"protocol":1}`), false, uint8(0))
	f.Add(gzipBytes(f, []byte(`{"protocol":1}`)), true, uint8(1))
	f.Add(gzipBytes(f, make([]byte, 5000)), true, uint8(2))
	f.Add(bytes.Repeat(gzipBytes(f, []byte("ab")), 3), true, uint8(0))
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3}, true, uint8(1))
	f.Add(make([]byte, 65), false, uint8(0))
	f.Add([]byte{}, true, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, gzipped bool, which uint8) {
		limit := limits[int(which)%len(limits)]
		req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("/echo/%d", limit), bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+bodyTestToken)
		if gzipped {
			req.Header.Set("Content-Encoding", "gzip")
		}
		resp, err := s.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()

		// The oracle: the standard library, without limits, on a body the
		// fuzzer keeps small.
		want, wantStatus := data, http.StatusOK
		switch {
		case len(data) > limit:
			wantStatus = http.StatusRequestEntityTooLarge
		case gzipped && len(data) > 0: // an empty body is empty, whatever its encoding
			var err error
			want, err = inflateAtMost(data, limit+1)
			switch {
			case len(want) > limit:
				wantStatus = http.StatusRequestEntityTooLarge
			case err != nil:
				wantStatus = http.StatusBadRequest
			}
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("%d bytes (gzip %v) to a route of %d: %d %s, want %d", len(data), gzipped, limit, resp.StatusCode, got, wantStatus)
		}
		if wantStatus == http.StatusOK && !bytes.Equal(got, want) {
			t.Fatalf("the route got %q, want %q", got, want)
		}
	})
}

// inflateAtMost inflates a gzip body (of one member or more) up to n
// bytes.
func inflateAtMost(data []byte, n int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(zr, int64(n)))
}
