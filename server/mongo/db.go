// Package mongo is fieldsync's storage on MongoDB (in tests and local runs,
// FerretDB v1 on PostgreSQL), through go.mongodb.org/mongo-driver/v2.
//
// It is the only package that imports the MongoDB driver; driver types and
// errors do not leave it (errors are translated to syncproto codes at its
// edge). It must not import Fiber. Code here must not depend on
// multi-document transactions or change streams: FerretDB v1 has neither.
//
// Inside this package "mongo" names the driver's package, as "http" does in
// a package named http.
package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/fieldsync/fieldsync/server/metrics"
)

// OpenTimeout bounds Open's first round trip to the server.
const OpenTimeout = 15 * time.Second

// serverSelectionTimeout is how long an operation waits for a usable server
// before failing. The driver's default (30 s) is longer than a phone waits
// for a response; failing sooner lets the API answer 503 with Retry-After.
const serverSelectionTimeout = 10 * time.Second

// DB is an open connection pool to one database. It is safe for concurrent
// use.
type DB struct {
	client *mongo.Client
	db     *mongo.Database
	logger *slog.Logger
}

// Option changes how Open connects.
type Option func(*options.ClientOptions)

// WithMetrics times every command by name and follows the connection pool
// (connections open and lent, checkout waits and failures, clears) through
// the driver's command and pool monitors.
func WithMetrics(m *metrics.Metrics) Option {
	return func(o *options.ClientOptions) {
		if m == nil {
			return
		}
		o.SetMonitor(&event.CommandMonitor{
			Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
				m.ObserveStore(metrics.StoreMongo, e.CommandName, e.Duration, false)
			},
			Failed: func(_ context.Context, e *event.CommandFailedEvent) {
				m.ObserveStore(metrics.StoreMongo, e.CommandName, e.Duration, true)
			},
		})
		o.SetPoolMonitor(&event.PoolMonitor{Event: func(e *event.PoolEvent) {
			switch e.Type {
			case event.ConnectionCreated:
				m.Pool(metrics.PoolConnOpened, 0, "")
			case event.ConnectionClosed:
				m.Pool(metrics.PoolConnClosed, 0, "")
			case event.ConnectionCheckedOut:
				m.Pool(metrics.PoolCheckedOut, e.Duration, "")
			case event.ConnectionCheckedIn:
				m.Pool(metrics.PoolCheckedIn, 0, "")
			case event.ConnectionCheckOutFailed:
				m.Pool(metrics.PoolCheckoutFailed, e.Duration, e.Reason)
			case event.ConnectionPoolCleared:
				m.Pool(metrics.PoolCleared, 0, "")
			}
		}})
	}
}

// Open connects to the server at uri, checks that it answers, and returns a
// handle on the database dbName. The caller must Close it.
func Open(ctx context.Context, uri, dbName string, logger *slog.Logger, more ...Option) (*DB, error) {
	if uri == "" {
		return nil, errors.New("mongo: open: empty URI")
	}
	if dbName == "" {
		return nil, errors.New("mongo: open: empty database name")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := options.Client().
		ApplyURI(uri).
		SetAppName("fieldsyncd").
		SetServerSelectionTimeout(serverSelectionTimeout)
	for _, o := range more {
		o(opts)
	}
	// Connect only parses the options and starts monitoring: no I/O yet.
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("mongo: open: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, OpenTimeout)
	defer cancel()
	if err := client.Ping(pctx, readpref.Primary()); err != nil {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer dcancel()
		_ = client.Disconnect(dctx)
		return nil, fmt.Errorf("mongo: open: ping: %w", err)
	}
	return &DB{client: client, db: client.Database(dbName), logger: logger.With("component", "mongo")}, nil
}

// Ping checks that the server answers. It is the readiness check of the
// database; give ctx a short deadline, because without one Ping waits for
// the server up to the server selection timeout.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("mongo: ping: %w", err)
	}
	return nil
}

// Close closes the connection pool, waiting for operations in progress until
// ctx is done.
func (db *DB) Close(ctx context.Context) error {
	if err := db.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("mongo: close: %w", err)
	}
	return nil
}

// Database returns the driver's handle on the database. It is for the
// storage code in this package and for test helpers; other packages should
// not need it.
func (db *DB) Database() *mongo.Database { return db.db }

// Name returns the database's name.
func (db *DB) Name() string { return db.db.Name() }

// Logger returns the logger the package's stores log with.
func (db *DB) Logger() *slog.Logger { return db.logger }

// transient reports whether err is a failure that the same idempotent
// operation, sent again, may well not meet: a network error, a driver
// timeout, or an InternalError (code 1) while ctx is still live. FerretDB
// v1 answers InternalError when its PostgreSQL backend fails a statement;
// under the 1,000-phone load about one update in 30,000 failed so, at the
// BEGIN of its transaction ("timeout: read tcp …: i/o timeout"), before
// anything was written.
func transient(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	if mongo.IsNetworkError(err) || mongo.IsTimeout(err) {
		return true
	}
	var se mongo.ServerError // a command, write or bulk write error
	return errors.As(err, &se) && se.HasErrorCode(1)
}

// retryAttempts bounds how often retry runs an operation.
const retryAttempts = 3

// retry runs op until it succeeds, fails otherwise than transiently, or
// has run retryAttempts times, pausing a little more each time. Only for
// operations whose repetition is harmless: reads, inserts under a unique
// _id whose duplicate the caller handles, and upserts.
func retry(ctx context.Context, op func() error) error {
	var err error
	for attempt := range retryAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
			}
		}
		if err = op(); !transient(ctx, err) {
			return err
		}
	}
	return err
}
