package api

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Request bodies are read in this file and nowhere else.
//
// By default fasthttp, under Fiber, reads a whole request body into memory
// before any handler runs, in a buffer sized by the Content-Length the
// client announces: sixty connections announcing 32 MiB each, without any
// token, cost gigabytes. So the server streams request bodies
// (fiber.Config.StreamRequestBody) and no body is read until the route's
// handler chain asks for it, after authentication. Before the handlers,
// fasthttp takes only what arrived with the headers (its 4 KiB read
// buffer) and waits for the first bytes of the body, within a short
// deadline (headerReceived).
//
// A route that takes a body declares the largest body it accepts with
// s.body, after its authentication middleware, and its handler reads the
// bytes with requestBody:
//
//	s.app.Post("/v1/sync/push", s.authenticated, s.body(s.cfg.BodyLimit), s.handlePush)
//
// s.body
//   - answers 413 to a Content-Length over the limit, before reading a byte;
//   - inflates Content-Encoding gzip within the same limit (413 beyond), and
//     answers 415 to any other encoding;
//   - grows its buffer as bytes arrive, never by the length announced;
//   - holds the bytes it buffers against the server's budget of body bytes
//     in memory (Config.BodyBudget) as its buffer grows, until the handler
//     returns, and answers 503 with Retry-After when the budget is spent,
//     429 with Retry-After when the principal's share of it is (both with
//     code unavailable; a body that has not arrived holds almost nothing:
//     a slow client cannot reserve what it announces);
//   - answers 408 to a body that arrives more slowly than Config.MinBodyRate
//     once Config.BodyRateGrace has passed, or is still arriving after
//     Config.ReadTimeout.
//
// Routes without s.body never read a body, and never inflate one: a body
// sent to them is left unread, and the connection is closed after the
// answer (closeUnreadBody), as it is after every answer given before the
// body was read to its end. Handlers must not call c.Body(), c.BodyParser
// or c.Request().Body(): on a streamed request they read the whole body
// without any limit (TestBodiesAreReadOnlyInBodyGo checks).

// Body limits of the routes whose bodies are small JSON documents. The
// other routes take Config.BodyLimit or the photo service's limits.
const (
	// enrollBodyMax bounds an enrollment: a code, a device id and a name.
	enrollBodyMax = 4 << 10
	// smallBodyMax bounds the small JSON documents of the admin routes
	// (an inspector, an assignment, a compaction request, often just {})
	// and of finishing a photo upload.
	smallBodyMax = 64 << 10
	// pullBodyMax bounds a pull request: a cursor and at most
	// syncproto.MaxScopes scopes.
	pullBodyMax = 1 << 20
)

// Lingering close: after an answer sent before the body was read, the
// server stops writing, then reads and drops what the client still sends
// for a moment before it closes. Closing a socket with unread input makes
// the kernel send a reset, which can destroy the answer before the client
// has read it. The figures are net/http's.
const (
	lingerTime = 500 * time.Millisecond
	lingerMax  = 256 << 10
)

// Locals keys.
const (
	// localBody holds the body s.body read.
	localBody = "fieldsync.body"
	// localBodyDone is set when the request body was read to its end.
	localBodyDone = "fieldsync.body_done"
	// localBodySize holds the length of the body s.body read.
	localBodySize = "fieldsync.body_size"
)

// errBodyBudget answers a request whose body does not fit in the budget
// of body bytes in memory (503), and errBodyShare one whose principal
// holds its share of it already (429: the client itself is sending too
// much at once). Neither is logged as an error: the access line shows the
// status.
var (
	errBodyBudget = syncproto.Errorf(syncproto.EUNAVAILABLE, "The server is receiving too many request bodies at once; try again in a few seconds.")
	errBodyShare  = syncproto.Errorf(syncproto.EUNAVAILABLE, "This device is sending too many request bodies at once; wait for the others to finish, then try again.")
)

// errBodyTooSlow is the error of a body cut off for arriving too slowly.
var errBodyTooSlow = errors.New("request body too slow")

// slowBodyMessage is the message of every 408 answer.
const slowBodyMessage = "The request arrived too slowly; send it again, on a better connection if you can."

// budget counts the body bytes held in memory, against a size for all
// requests together and a share for each principal (a device, the admin,
// the unauthenticated): one device sending large bodies at once fills its
// share and gets 503s, while the others go on.
type budget struct {
	size, share int64
	mu          sync.Mutex
	used        int64
	by          map[string]int64
}

// newBudget returns a budget of size bytes, of which one principal may
// hold share.
func newBudget(size, share int64) *budget {
	return &budget{size: size, share: share, by: map[string]int64{}}
}

// take holds n more bytes for who. It returns errBodyShare when they do
// not fit in who's share, errBodyBudget when they do not fit in the whole.
func (b *budget) take(who string, n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.by[who]+n > b.share:
		return errBodyShare
	case b.used+n > b.size:
		return errBodyBudget
	}
	b.used += n
	b.by[who] += n
	return nil
}

// give returns n bytes who took.
func (b *budget) give(who string, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.by[who] -= n; b.by[who] == 0 {
		delete(b.by, who)
	}
}

// inUse returns the bytes held.
func (b *budget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// hold is what one request holds of the budget.
type hold struct {
	b   *budget
	who string
	n   int64
}

func (h *hold) grow(n int64) error {
	if err := h.b.take(h.who, n); err != nil {
		return err
	}
	h.n += n
	return nil
}

func (h *hold) release() { h.b.give(h.who, h.n); h.n = 0 }

// holder names the principal a body is held for: its device, the admin,
// or nobody (enrollment).
func holder(c *fiber.Ctx) string {
	p, ok := server.PrincipalFrom(c.UserContext())
	switch {
	case !ok:
		return ""
	case p.IsDevice():
		return "device:" + p.DeviceID.String()
	}
	return "user:" + p.UserID
}

// body returns middleware that reads the request body of a route that
// takes one, at most maxBytes as sent and as inflated; see the comment
// at the top of this file. Put it after the route's authentication.
func (s *Server) body(maxBytes int) fiber.Handler {
	limit := int64(maxBytes)
	s.largestBody = max(s.largestBody, limit)
	return func(c *fiber.Ctx) error {
		h := &hold{b: s.budget, who: holder(c)}
		defer h.release()
		b, err := s.readBody(c, limit, h)
		if err != nil {
			return err
		}
		c.Locals(localBody, b)
		c.Locals(localBodySize, len(b))
		// fasthttp keeps a request's user values in its pooled context
		// after truncating their list, so the body would stay reachable
		// (and unbudgeted) until the context is reused: drop it here.
		defer c.Locals(localBody, nil)
		return c.Next()
	}
}

// requestBody returns the body s.body read for the route. A route that
// did not declare one gets a panic (an internal error): the declaration is
// missing from its registration.
func requestBody(c *fiber.Ctx) []byte {
	b, ok := c.Locals(localBody).([]byte)
	if !ok {
		panic("api: requestBody on route " + c.Route().Path + ", which takes no body: add s.body(max) to its registration")
	}
	return b
}

// requestBodySize returns the length of the body s.body read (after
// inflation), 0 for a route without one. Unlike requestBody it may be
// called by any middleware, also after the handler.
func requestBodySize(c *fiber.Ctx) int {
	n, _ := c.Locals(localBodySize).(int)
	return n
}

// readBody reads the request body within limit, holding budget for what
// it buffers in h (the caller releases it).
func (s *Server) readBody(c *fiber.Ctx, limit int64, h *hold) ([]byte, error) {
	req := c.Request()
	// -1 is a chunked body of unknown length; a request with neither a
	// length nor chunks has no body (fasthttp sets 0).
	announced := int64(req.Header.ContentLength())
	if announced > limit {
		return nil, bodyTooLarge(limit)
	}
	gzipped := false
	switch enc := strings.ToLower(strings.TrimSpace(c.Get(fiber.HeaderContentEncoding))); enc {
	case "", "identity":
	case "gzip":
		gzipped = true
	default:
		return nil, syncproto.Errorf(syncproto.EUNSUPPORTED, "Content-Encoding %q is not supported; send gzip or nothing.", enc)
	}
	if announced == 0 {
		c.Locals(localBodyDone, true)
		return []byte{}, nil
	}
	var stream io.Reader = req.BodyStream()
	if stream == nil { // a server without streaming: the body is in memory already
		stream = bytes.NewReader(req.Body())
	}
	start := c.Context().Time()
	wire := &wireReader{r: stream, limit: limit, rate: float64(s.cfg.MinBodyRate),
		start: start, grace: s.cfg.BodyRateGrace, hard: start.Add(s.cfg.ReadTimeout)}
	if conn, ok := c.Context().Conn().(interface{ SetReadDeadline(time.Time) error }); ok {
		wire.conn = conn
	}

	defer func() {
		if wire.eof {
			// Read to its end, refused or not: the connection can go on.
			c.Locals(localBodyDone, true)
		}
	}()

	var src io.Reader = wire
	if gzipped {
		zr, err := gzip.NewReader(wire)
		if err != nil {
			return nil, bodyReadError(wire, err, limit, true)
		}
		src = zr
	}
	// An identity body of known length ends at its length: its buffer
	// never needs to grow past it.
	bufMax := limit
	if !gzipped && announced > 0 {
		bufMax = announced
	}
	b, err := readAll(src, bufMax, h)
	switch {
	case err != nil:
		return nil, bodyReadError(wire, err, limit, gzipped)
	case int64(len(b)) > limit && gzipped:
		return nil, syncproto.Errorf(syncproto.ETOOLARGE, "The decompressed body is larger than the limit of %s of this route. Send smaller batches.", formatBytes(int(limit)))
	case int64(len(b)) > limit:
		return nil, bodyTooLarge(limit)
	}
	return b, nil
}

// readAll reads r to its end into a buffer that grows as bytes arrive,
// never beyond limit+1 bytes (one more than limit tells the caller the
// body is too large), and never sized by a length the client announced.
// The budget covers the buffer's capacity: h grows before the buffer
// does, and errBodyBudget or errBodyShare is returned when the budget or
// the principal's share is spent.
func readAll(r io.Reader, limit int64, h *hold) ([]byte, error) {
	const first = 4 << 10
	var buf []byte
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf, nil
			}
			n := min(max(2*int64(cap(buf)), first), limit+1)
			if err := h.grow(n - int64(cap(buf))); err != nil {
				return nil, err
			}
			grown := make([]byte, len(buf), n)
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// bodyReadError turns an error met while reading a body into the answer.
func bodyReadError(wire *wireReader, err error, limit int64, gzipped bool) error {
	switch {
	case errors.Is(err, errBodyBudget), errors.Is(err, errBodyShare):
		return err
	case errors.Is(err, errBodyTooSlow):
		return fiber.NewError(http.StatusRequestTimeout, slowBodyMessage)
	case wire.n > limit:
		return bodyTooLarge(limit)
	case gzipped && isGzipError(err):
		return syncproto.Errorf(syncproto.EINVALID, "The gzip body is corrupt: %v.", err)
	}
	return syncproto.Errorf(syncproto.EINVALID, "The request body could not be read to its end (%v).", err)
}

func isGzipError(err error) bool {
	var corrupt flate.CorruptInputError
	return errors.Is(err, gzip.ErrHeader) || errors.Is(err, gzip.ErrChecksum) ||
		errors.As(err, &corrupt) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func bodyTooLarge(limit int64) error {
	return syncproto.Errorf(syncproto.ETOOLARGE, "The request body is larger than the limit of %s of this route.", formatBytes(int(limit)))
}

// wireReader reads a body from the connection, at most limit+1 bytes, and
// enforces the minimum rate by setting the connection's read deadline
// before each read: the n-th byte must arrive by start + grace + n/rate,
// and every byte by hard. It counts the bytes read, and notes the end of
// the body.
type wireReader struct {
	r     io.Reader
	conn  interface{ SetReadDeadline(time.Time) error } // nil without a connection (tests)
	limit int64
	rate  float64 // bytes per second
	start time.Time
	grace time.Duration
	hard  time.Time
	n     int64
	eof   bool
}

func (w *wireReader) Read(p []byte) (int, error) {
	if w.n > w.limit {
		return 0, io.ErrUnexpectedEOF // the caller sees wire.n and answers 413
	}
	if int64(len(p)) > w.limit+1-w.n {
		p = p[:w.limit+1-w.n]
	}
	if w.conn != nil {
		due := w.start.Add(w.grace + time.Duration(float64(w.n+1)/w.rate*float64(time.Second)))
		if due.After(w.hard) {
			due = w.hard
		}
		_ = w.conn.SetReadDeadline(due)
	}
	n, err := w.r.Read(p)
	w.n += int64(n)
	switch {
	case err == io.EOF:
		w.eof = true
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		return n, errBodyTooSlow
	}
	return n, err
}

// headerReceived sets how fasthttp reads a request body before the
// handlers run, once it has the headers.
//
// With streamed bodies fasthttp still prefetches the start of a body, as
// much as the request's MaxRequestBodySize allows, up to 8 KiB, and waits
// for it (readBodyWithStreaming): a body that fits is then read whole
// before authentication. A limit of one byte makes it take only what its
// read buffer already holds, waiting for no more than the first two bytes;
// the limits that matter are the routes' (s.body).
//
// The wait runs under the grace of the minimum rate, at most ReadTimeout,
// so that a client announcing a body and sending nothing is cut off then.
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if h.ContentLength() == 0 {
		return fasthttp.RequestConfig{}
	}
	return fasthttp.RequestConfig{
		MaxRequestBodySize: 1,
		ReadTimeout:        min(s.cfg.BodyRateGrace, s.cfg.ReadTimeout),
	}
}

// closeUnreadBody is middleware that closes the connection after the
// answer when the request had a body that was not read to its end (a
// route without a body, an answer given before reading it): the unread
// rest would otherwise be taken for the next request on the connection.
func (s *Server) closeUnreadBody(c *fiber.Ctx) error {
	err := c.Next()
	if c.Request().Header.ContentLength() != 0 && c.Locals(localBodyDone) == nil {
		c.Context().SetConnectionClose()
		if lc, ok := c.Context().Conn().(*lingerConn); ok {
			lc.linger.Store(true)
		}
	}
	return err
}

// lingerListener hands out connections that can close lingering.
type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

// lingerConn is a connection whose Close, once linger is set, shuts its
// writing side and drops what the client still sends, for at most
// lingerTime and lingerMax bytes, before it closes.
type lingerConn struct {
	net.Conn
	linger atomic.Bool
}

func (c *lingerConn) Close() error {
	if !c.linger.Load() {
		return c.Conn.Close()
	}
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return c.Conn.Close()
	}
	err := cw.CloseWrite()
	go func() {
		_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.CopyN(io.Discard, c.Conn, lingerMax)
		_ = c.Conn.Close()
	}()
	return err
}
