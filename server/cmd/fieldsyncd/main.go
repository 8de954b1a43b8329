// Command fieldsyncd is the fieldsync server: it wires the configuration,
// the stores and the HTTP API together and runs until SIGINT or SIGTERM.
//
// This package holds wiring and configuration only; it must not import
// Fiber (server/api wraps it) or contain business logic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/api"
	"github.com/fieldsync/fieldsync/server/metrics"
	serverminio "github.com/fieldsync/fieldsync/server/minio"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/fieldsync/fieldsync/webapp"
)

// version is set at build time: -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := NewMain().Run(ctx, os.Args[1:], os.Getenv)
	stop()
	var cerr *configError
	switch {
	case err == nil:
	case errors.As(err, &cerr):
		fmt.Fprintf(os.Stderr, "fieldsyncd: invalid configuration (fieldsyncd -h lists the variables):\n%v\n", cerr)
		os.Exit(2)
	default:
		// Run has logged it.
		os.Exit(1)
	}
}

// Main is the program, as a value that tests can run.
type Main struct {
	Stdout io.Writer // -h and -version
	Stderr io.Writer // the JSON log

	// OnListen, if set, is called with the listening address once the
	// server accepts connections. Tests bind 127.0.0.1:0 and learn the
	// port here.
	OnListen func(addr net.Addr)

	// SetMemoryLimit applies FIELDSYNC_MEMORY_LIMIT (debug.SetMemoryLimit
	// in the real process). Nil leaves the runtime alone: tests run the
	// server inside the test process, whose memory is not the server's.
	SetMemoryLimit func(limit int64) int64
}

// NewMain returns a Main writing to the process's stdout and stderr.
func NewMain() *Main {
	return &Main{Stdout: os.Stdout, Stderr: os.Stderr, SetMemoryLimit: debug.SetMemoryLimit}
}

// configError marks errors in the configuration (exit code 2).
type configError struct{ err error }

func (e *configError) Error() string {
	return "  " + strings.ReplaceAll(e.err.Error(), "\n", "\n  ")
}

func (e *configError) Unwrap() error { return e.err }

// Run loads the configuration from args and getenv, then serves until ctx is
// done, and shuts down: it stops accepting connections, waits for requests
// in flight up to the shutdown timeout, then closes the stores. It returns
// nil after a shutdown asked for by ctx, including one during start-up.
func (m *Main) Run(ctx context.Context, args []string, getenv func(string) string) error {
	cfg := DefaultConfig()
	if err := cfg.Load(args, getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(m.Stdout)
			return nil
		}
		return &configError{err}
	}
	if cfg.ShowVersion {
		fmt.Fprintf(m.Stdout, "fieldsyncd %s\n", version)
		return nil
	}
	logger := slog.New(slog.NewJSONHandler(m.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return &configError{fmt.Errorf("-cpuprofile: %w", err)}
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return &configError{fmt.Errorf("-cpuprofile: %w", err)}
		}
		defer pprof.StopCPUProfile()
	}
	switch {
	case getenv("GOMEMLIMIT") != "":
		logger.Info("memory limit from GOMEMLIMIT", "GOMEMLIMIT", getenv("GOMEMLIMIT"))
	case m.SetMemoryLimit != nil && cfg.MemoryLimit > 0:
		m.SetMemoryLimit(cfg.MemoryLimit)
		logger.Info("memory limit", "bytes", cfg.MemoryLimit)
	}
	err := m.run(ctx, cfg, logger)
	if err != nil && ctx.Err() != nil {
		logger.Info("stopped during start-up", "reason", err.Error())
		return nil
	}
	if err != nil {
		logger.Error("fieldsyncd failed", "error", err.Error())
		return err
	}
	logger.Info("stopped")
	return nil
}

func (m *Main) run(ctx context.Context, cfg Config, logger *slog.Logger) error {
	logger.Info("starting", "version", version, "addr", cfg.Addr,
		"mongo_db", cfg.MongoDB, "minio_endpoint", cfg.Minio.Endpoint, "minio_bucket", cfg.Minio.Bucket,
		"admin_api", cfg.AdminToken != "")

	// Prometheus metrics of requests, sync outcomes and both stores, at
	// /metrics.
	mets := metrics.New(version)
	cfg.Minio.Instrument = mets
	db, err := servermongo.Open(ctx, cfg.MongoURI, cfg.MongoDB, logger, servermongo.WithMetrics(mets))
	if err != nil {
		return err
	}
	defer func() {
		// Closed last (LIFO), after the HTTP server has drained.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := db.Close(ctx); err != nil {
			logger.Warn("closing the database", "error", err.Error())
		}
	}()
	// MinIO holds only photos: fieldsyncd starts and serves records while
	// it is down, and the media service's breaker answers photo calls
	// with 503 until it is back (see wire).
	store, err := serverminio.New(cfg.Minio, logger)
	if err != nil {
		return err
	}
	startErr := store.EnsureBucket(ctx)
	if startErr != nil && syncproto.ErrorCode(startErr) != syncproto.EUNAVAILABLE {
		return startErr // credentials, a bucket name MinIO refuses…
	}

	svc, err := wire(ctx, cfg, db, store, logger)
	if err != nil {
		return err
	}
	if startErr != nil {
		svc.blobs.Trip(startErr)
	}
	// The thumbnail worker and the maintenance stop with ctx, before the
	// database closes.
	workers, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	workersDone := make(chan struct{})
	go func() {
		defer close(workersDone)
		if err := svc.media.Run(workers); err != nil && workers.Err() == nil {
			logger.Error("thumbnail worker stopped", "error", err.Error())
		}
	}()
	maintenanceDone := make(chan struct{})
	go func() {
		defer close(maintenanceDone)
		svc.maintenance.Run(workers)
	}()
	// The audit log's chain is extended off the push path, every second.
	auditDone := make(chan struct{})
	go func() {
		defer close(auditDone)
		svc.audit.Run(workers, time.Second, logger.With("component", "audit"))
	}()
	defer func() {
		stopWorkers()
		<-workersDone
		<-maintenanceDone
		<-auditDone
	}()

	app := webapp.Load()
	if !app.HasCore() {
		logger.Warn("the web app's WebAssembly core is not built in: /app/ cannot save or sync; build with make build (make app)")
	}
	srv := api.NewServer(api.Config{
		BodyLimit:      cfg.BodyLimit,
		BodyBudget:     cfg.BodyBudget,
		MinBodyRate:    cfg.BodyMinRate,
		BodyRateGrace:  cfg.BodyRateGrace,
		RequestTimeout: cfg.RequestTimeout,
		ReadTimeout:    cfg.RequestTimeout,
		WriteTimeout:   cfg.RequestTimeout,
		AdminToken:     cfg.AdminToken,

		ConsoleLoopbackHTTP: cfg.ConsoleLoopbackHTTP,
	}, api.Deps{
		Checks: []server.Check{
			{Name: "mongo", Ping: db.Ping},
			{Name: "minio", Ping: store.Ping},
		},
		Devices: svc.devices,
		Sync:    svc.sync,
		Media:   svc.media,
		Forms:   svc.forms,
		App:     app,
		Metrics: mets,
		Reports: svc.reports,

		Accounts: svc.accounts, Desk: svc.desk, Audit: svc.audit,
	}, logger)

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "url", "http://"+ln.Addr().String())
	if m.OnListen != nil {
		m.OnListen(ln.Addr())
	}

	select {
	case <-ctx.Done():
	case err := <-served:
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		return fmt.Errorf("serve: %w", err)
	}

	logger.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	start := time.Now()
	if err := srv.Shutdown(cfg.ShutdownTimeout); err != nil {
		logger.Warn("requests still in flight at the shutdown timeout were cut off", "error", err.Error())
	}
	if err := <-served; err != nil {
		logger.Warn("serve", "error", err.Error())
	}
	logger.Info("http server stopped", "drain", time.Since(start).Round(time.Millisecond).String())
	return nil
}
