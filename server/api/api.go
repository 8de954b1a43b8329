// Package api is fieldsync's HTTP layer, on Fiber v2.
//
// It is the only package that imports Fiber (the import-rule check in .ci/run
// enforces it), so that moving to another router touches nothing else. A
// handler decodes the request, calls one service method from Deps, and
// encodes the answer; every error becomes a response in one place,
// handleError, which maps syncproto error codes to HTTP statuses.
//
// The package must not import storage drivers (the MongoDB driver,
// minio-go): it talks to storage only through the services and checks in
// Deps.
package api

import (
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/compress"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/metrics"
	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/webapp"
)

// Config holds the HTTP settings. Zero fields take the values of
// DefaultConfig.
type Config struct {
	// BodyLimit is the largest body of a push and of the other routes
	// that take large documents (publishing forms, resolving a conflict),
	// in bytes, as sent and after gzip decompression. Larger bodies get
	// 413 with code too_large. The routes with small bodies (enrollment,
	// the admin routes, pull) and the photo routes have their own limits;
	// see body.go.
	BodyLimit int
	// BodyBudget is the most request-body bytes the server holds in
	// memory at once, over all requests; one principal (a device, the
	// admin) may hold half of it. A request whose body does not fit gets
	// 503 with Retry-After, or 429 with Retry-After when its principal's
	// half is spent (both with code unavailable). It is at least the largest body a route
	// accepts, and so is the half (smaller values are raised to it).
	BodyBudget int64
	// MinBodyRate is the slowest a request body may arrive, in bytes per
	// second, once BodyRateGrace has passed since the body began: the
	// n-th byte must have arrived by BodyRateGrace + n/MinBodyRate. A
	// slower body is cut off with 408. The default is Apache's
	// mod_reqtimeout's (20 s, then 500 bytes/s).
	MinBodyRate   int64
	BodyRateGrace time.Duration
	// RequestTimeout is the deadline of each handler's context.
	RequestTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (however
	// fast it arrives), and
	// WriteTimeout writing a response.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections that stay idle this long.
	// It also bounds how long Shutdown waits for idle connections.
	IdleTimeout time.Duration
	// ReadyTimeout bounds each readiness check of /readyz.
	ReadyTimeout time.Duration
	// AdminToken, when set, is the bearer token of the administrator
	// (FIELDSYNC_ADMIN_TOKEN). Empty disables the admin routes.
	AdminToken string
	// ConsoleLoopbackHTTP lets the console's cookies go without Secure
	// to browsers on a loopback address, for tests and a demo on one
	// machine over plain HTTP (FIELDSYNC_CONSOLE_LOOPBACK_HTTP).
	ConsoleLoopbackHTTP bool
}

// DefaultConfig returns the default HTTP settings.
func DefaultConfig() Config {
	return Config{
		BodyLimit:      32 << 20,
		BodyBudget:     64 << 20,
		MinBodyRate:    500,
		BodyRateGrace:  20 * time.Second,
		RequestTimeout: 60 * time.Second,
		ReadTimeout:    60 * time.Second,
		WriteTimeout:   60 * time.Second,
		IdleTimeout:    2 * time.Minute,
		ReadyTimeout:   3 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BodyLimit <= 0 {
		c.BodyLimit = d.BodyLimit
	}
	if c.BodyBudget <= 0 {
		c.BodyBudget = d.BodyBudget
	}
	if c.MinBodyRate <= 0 {
		c.MinBodyRate = d.MinBodyRate
	}
	if c.BodyRateGrace <= 0 {
		c.BodyRateGrace = d.BodyRateGrace
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = d.ReadyTimeout
	}
	return c
}

// Deps holds the services the handlers call. Each route group adds the
// service it needs here.
type Deps struct {
	// Checks are the readiness checks /readyz runs, reported in this order.
	Checks []server.Check
	// Devices enrolls and authenticates phones and knows their schools.
	Devices *server.Devices
	// Sync is the sync protocol and the review of its records.
	Sync server.SyncService
	// Forms publishes, retires and lists form versions.
	Forms *server.Forms
	// Media receives photos and hands out links to them.
	Media *media.Service
	// App is the inspector's web app served at /app/ (webapp.Load());
	// nil serves none.
	App *webapp.Assets
	// Metrics, when set, counts and times every request and is served at
	// /metrics (metrics.go).
	Metrics *metrics.Metrics
	// Reports computes quotas, monthly forms and ledgers (reports.go).
	Reports *reports.Service
	// Accounts, Desk and Audit are the office console (console.go):
	// sign-in, the hazard desk and the audit log.
	Accounts *server.Accounts
	Desk     *server.Desk
	Audit    *server.Audit
}

// Server is the HTTP server. Create it with NewServer.
type Server struct {
	app    *fiber.App
	cfg    Config
	deps   Deps
	logger *slog.Logger
	ready  readiness
	routeIndex
	// budget holds the body bytes in memory (Config.BodyBudget), and
	// largestBody is the largest body limit of a route registered in
	// NewServer, which the budget must hold.
	budget      *budget
	largestBody int64
	// chunkMax and blobMax are the body limits of the photo routes: the
	// largest chunk and the largest photo the photo service accepts.
	chunkMax, blobMax int
}

// NewServer returns a server with all routes registered.
func NewServer(cfg Config, deps Deps, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg.withDefaults(),
		deps:     deps,
		logger:   logger,
		chunkMax: media.DefaultMaxChunkBytes,
		blobMax:  media.DefaultMaxBlobSize,
	}
	if deps.Media != nil {
		if chunk, blob := deps.Media.UploadLimits(); chunk > 0 && blob > 0 {
			s.chunkMax, s.blobMax = int(chunk), int(blob)
		}
	}
	s.app = fiber.New(fiber.Config{
		ErrorHandler: s.handleError,
		// Bodies are read by the routes that take one, after
		// authentication, within their limits (body.go).
		StreamRequestBody: true,
		// Otherwise fasthttp reads a multipart body whole, to memory and
		// temporary files, before any handler runs.
		DisablePreParseMultipartForm: true,
		BodyLimit:                    s.cfg.BodyLimit,
		ReadTimeout:                  s.cfg.ReadTimeout,
		WriteTimeout:                 s.cfg.WriteTimeout,
		IdleTimeout:                  s.cfg.IdleTimeout,
		DisableStartupMessage:        true,
	})
	s.app.Server().HeaderReceived = s.headerReceived

	if deps.Metrics != nil {
		s.app.Use(s.observe) // outermost: it sees the status sent
	}
	// Outermost first: the request id is set before the access line needs
	// it; the access line turns the chain's error into the response; a
	// panic below becomes an error; handlers get a deadline; and a body
	// left unread closes the connection after the answer.
	//
	// Routes declare their body in their registration (s.body, after
	// their authentication); no middleware here reads or inflates one.
	s.app.Use(s.requestID, s.accessLog, s.recoverPanic, s.deadline, s.closeUnreadBody)
	// Responses are gzipped for clients that ask (phones pulling hundreds
	// of records over a weak signal); the fastest level, because the
	// server's CPU is shared by every phone.
	s.app.Use(compress.New(compress.Config{Level: compress.LevelBestSpeed}))

	// Route groups, one line each; each lives in its own file.
	s.routesHealth()
	s.routesOpenAPI()
	if deps.Devices != nil {
		s.routesDevices()
	}
	if deps.Sync != nil && deps.Devices != nil {
		s.routesSync()
	}
	if deps.Forms != nil {
		s.routesForms()
	}
	if deps.Media != nil {
		s.routesMedia()
	}
	if deps.App != nil {
		s.routesApp()
	}
	if deps.Metrics != nil {
		s.routesMetrics()
	}
	if deps.Reports != nil {
		s.routesReports()
	}
	if deps.Accounts != nil {
		s.routesAccounts()
		if deps.Desk != nil && deps.Sync != nil {
			s.routesConsole()
		}
	}
	// Every body a route accepts fits in the budget, and in one
	// principal's share of it, half (body.go holds one byte more than the
	// limit while it reads).
	s.cfg.BodyBudget = max(s.cfg.BodyBudget, s.largestBody+1)
	s.budget = newBudget(s.cfg.BodyBudget, max(s.cfg.BodyBudget/2, s.largestBody+1))

	return s
}

// Listen listens on the TCP address addr and serves until Shutdown.
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ln)
}

// Serve serves on ln until Shutdown. Listening first and then calling Serve
// in a goroutine reports listen errors synchronously, and lets tests bind
// port 0 and learn the address.
func (s *Server) Serve(ln net.Listener) error {
	return s.app.Listener(lingerListener{ln})
}

// Shutdown stops accepting connections and waits for requests in flight to
// finish, at most timeout; after that the remaining connections are closed.
func (s *Server) Shutdown(timeout time.Duration) error {
	return s.app.ShutdownWithTimeout(timeout)
}

// Test runs req through the server without a network, for handler tests.
// msTimeout is as for fiber's App.Test: -1 waits without limit.
func (s *Server) Test(req *http.Request, msTimeout ...int) (*http.Response, error) {
	return s.app.Test(req, msTimeout...)
}
