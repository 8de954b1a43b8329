// Package minio is fieldsync's object storage (photos and other media) on
// MinIO or any S3-compatible server, through github.com/minio/minio-go/v7.
//
// It is the only package that stores objects; minio-go types and errors do
// not leave it (errors are translated to syncproto codes at its edge). It
// must not import Fiber or the MongoDB driver.
//
// Inside this package "minio" names minio-go's package.
package minio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// PingTimeout bounds Ping when the caller's context has a later deadline or
// none: a readiness probe must fail fast when MinIO is down.
const PingTimeout = 2 * time.Second

// OpenTimeout bounds Open's round trips to the server.
const OpenTimeout = 15 * time.Second

// Config says where the objects live.
type Config struct {
	Endpoint  string // host:port, without a scheme
	AccessKey string
	SecretKey string
	Bucket    string
	Secure    bool // use https

	// Prefix, if not empty, starts every object key the store uses (see
	// Store.Key), so that several users can share one bucket: tests get a
	// prefix each. It usually ends with "/".
	Prefix string

	// Instrument, if set, wraps the HTTP transport of every client made
	// from this Config: fieldsyncd passes its metrics (server/metrics),
	// which time MinIO's answers.
	Instrument Instrument
}

// Instrument wraps an HTTP transport; store names the store ("minio").
type Instrument interface {
	RoundTripper(store string, next http.RoundTripper) http.RoundTripper
}

// transport returns the transport of a client: nil (minio-go's default)
// unless the Config wraps it.
func (cfg Config) transport() (http.RoundTripper, error) {
	if cfg.Instrument == nil {
		return nil, nil
	}
	t, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, err
	}
	return cfg.Instrument.RoundTripper("minio", t), nil
}

// Store is a bucket on an S3-compatible server. It is safe for concurrent
// use.
type Store struct {
	client   *minio.Client
	probe    *minio.Client // for Ping
	endpoint string
	bucket   string
	prefix   string
	logger   *slog.Logger
}

// Open connects to the server, creates the bucket if it is missing, and
// returns the store: New, then EnsureBucket.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	s, err := New(cfg, logger)
	if err != nil {
		return nil, err
	}
	if err := s.EnsureBucket(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// New returns the store without talking to the server: it checks the
// configuration only, so a process can start while MinIO is down and call
// EnsureBucket once it is back.
func New(cfg Config, logger *slog.Logger) (*Store, error) {
	switch {
	case cfg.Endpoint == "":
		return nil, errors.New("minio: open: empty endpoint")
	case strings.Contains(cfg.Endpoint, "://"):
		return nil, fmt.Errorf("minio: open: endpoint %q must be host:port, without a scheme", cfg.Endpoint)
	case cfg.Bucket == "":
		return nil, errors.New("minio: open: empty bucket name")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tr, err := cfg.transport()
	if err != nil {
		return nil, fmt.Errorf("minio: open %s: %w", cfg.Endpoint, err)
	}
	opts := minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    cfg.Secure,
		Transport: tr,
	}
	client, err := minio.New(cfg.Endpoint, &opts)
	if err != nil {
		return nil, fmt.Errorf("minio: open %s: %w", cfg.Endpoint, err)
	}
	// The probe does not retry, so that Ping reports why MinIO is down
	// ("connection refused") rather than running out of time retrying.
	opts.MaxRetries = 1
	probe, err := minio.New(cfg.Endpoint, &opts)
	if err != nil {
		return nil, fmt.Errorf("minio: open %s: %w", cfg.Endpoint, err)
	}
	return &Store{client: client, probe: probe, endpoint: cfg.Endpoint, bucket: cfg.Bucket, prefix: cfg.Prefix, logger: logger.With("component", "minio")}, nil
}

// EnsureBucket creates the bucket if it is missing, within OpenTimeout.
// It does not retry (the probe's client), so an unreachable server is
// reported at once, as EUNAVAILABLE (see translate).
func (s *Store) EnsureBucket(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, OpenTimeout)
	defer cancel()
	ok, err := s.probe.BucketExists(ctx, s.bucket)
	if err != nil {
		return translate("open "+s.endpoint+": bucket", s.bucket, err)
	}
	if !ok {
		err := s.probe.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{})
		switch code := minio.ToErrorResponse(err).Code; {
		case err == nil:
			s.logger.Info("created bucket", "bucket", s.bucket)
		case code == minio.BucketAlreadyOwnedByYou || code == minio.BucketAlreadyExists:
			// Someone else created it since BucketExists: fine.
		default:
			return translate("open "+s.endpoint+": create bucket", s.bucket, err)
		}
	}
	return nil
}

// Ping checks that the server answers and that the bucket exists. It is the
// readiness check of the object store, and gives up after PingTimeout.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, PingTimeout)
	defer cancel()
	ok, err := s.probe.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("minio: ping: %w", err)
	}
	if !ok {
		return fmt.Errorf("minio: ping: bucket %s does not exist", s.bucket)
	}
	return nil
}

// Client returns minio-go's client, for the storage code in this package
// and for test helpers.
func (s *Store) Client() *minio.Client { return s.client }

// Bucket returns the bucket's name.
func (s *Store) Bucket() string { return s.bucket }

// Prefix returns the key prefix of the store's objects (Config.Prefix).
func (s *Store) Prefix() string { return s.prefix }

// Key returns the object key of name: the store's prefix followed by name.
// Code in this package must build every object key with it.
func (s *Store) Key(name string) string { return s.prefix + name }

// Logger returns the logger the package's code logs with.
func (s *Store) Logger() *slog.Logger { return s.logger }
