// Package testenv holds the helpers of integration tests: tests that talk
// to a real MongoDB-wire server (FerretDB under make test) and a real MinIO.
//
// Each such test gets its own database and its own key prefix in a shared
// bucket, removed when the test ends, so tests can run in parallel. A test
// whose server is not configured is skipped, except when
// FIELDSYNC_REQUIRE_INTEGRATION is set (make test and CI set it after
// starting the servers): then it fails, so a broken setup cannot pass as a
// row of skips.
//
// The servers are found through the same variables fieldsyncd reads:
// FIELDSYNC_MONGO_URI, FIELDSYNC_MINIO_ENDPOINT, FIELDSYNC_MINIO_ACCESS_KEY,
// FIELDSYNC_MINIO_SECRET_KEY and FIELDSYNC_MINIO_SECURE.
//
// This package is for _test.go files only; production code must not import
// it.
package testenv

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	serverminio "github.com/fieldsync/fieldsync/server/minio"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
)

// EnvRequire, when set to a true value, turns a missing server into a test
// failure instead of a skip.
const EnvRequire = "FIELDSYNC_REQUIRE_INTEGRATION"

// The variables that locate the servers.
const (
	EnvMongoURI       = "FIELDSYNC_MONGO_URI"
	EnvMinioEndpoint  = "FIELDSYNC_MINIO_ENDPOINT"
	EnvMinioAccessKey = "FIELDSYNC_MINIO_ACCESS_KEY"
	EnvMinioSecretKey = "FIELDSYNC_MINIO_SECRET_KEY"
	EnvMinioSecure    = "FIELDSYNC_MINIO_SECURE"
)

// EnvStackDir is the folder of the deploy/stack.sh stack the tests run
// under, if any (its logs, PID files and stack.env).
const EnvStackDir = "FIELDSYNC_STACK_DIR"

// EnvKeep, when set to a true value, keeps the test databases and objects
// after the tests, for a look at what a test wrote. Their names are logged.
const EnvKeep = "FIELDSYNC_TEST_KEEP_DATA"

// TestBucket is the bucket all tests share; each test writes under its own
// prefix.
const TestBucket = "fieldsync-test"

// CleanupTimeout bounds the removal of a test's database or objects.
const CleanupTimeout = 10 * time.Second

// Required reports whether integration tests must run (EnvRequire is true).
func Required() bool { return envBool(EnvRequire) }

func envBool(key string) bool {
	v := os.Getenv(key)
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b // anything but an explicit false counts as true
}

// Lookup returns the value of the environment variable key. If it is empty,
// the test fails when integration tests are required, and is skipped
// otherwise; either way the message names the variable.
func Lookup(tb testing.TB, key string) string {
	tb.Helper()
	// go test reuses a package's cached result when the variables its tests
	// read are unchanged. deploy/stack.sh gives every test stack its own
	// FIELDSYNC_STACK_DIR, so reading it here makes integration tests run
	// again against each new stack, while pure packages stay cached.
	_ = os.Getenv(EnvStackDir)
	v := os.Getenv(key)
	switch {
	case v != "":
		return v
	case Required():
		tb.Fatalf("%s is not set but %s is: integration tests must run here (make test starts the servers)", key, EnvRequire)
	case testing.Short():
		tb.Skipf("skipping integration test in -short mode (%s is not set)", key)
	default:
		tb.Skipf("skipping integration test: set %s to run it, or use make test", key)
	}
	return ""
}

// MongoURI returns the MongoDB URI, or skips or fails the test (see Lookup).
func MongoURI(tb testing.TB) string {
	tb.Helper()
	return Lookup(tb, EnvMongoURI)
}

// Mongo opens a fresh database for the test, named after it (see Name), and
// drops it when the test ends.
func Mongo(tb testing.TB) *servermongo.DB {
	tb.Helper()
	uri := MongoURI(tb)
	name := Name(tb, 63) // MongoDB's and FerretDB's limit: [a-zA-Z0-9_-]{1,63}
	db, err := servermongo.Open(tb.Context(), uri, name, Logger(tb))
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		// tb.Context() is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
		defer cancel()
		if envBool(EnvKeep) {
			tb.Logf("testenv: kept database %s (%s is set)", name, EnvKeep)
		} else if err := db.Database().Drop(ctx); err != nil {
			tb.Errorf("testenv: drop database %s: %v", name, err)
		}
		if err := db.Close(ctx); err != nil {
			tb.Errorf("testenv: %v", err)
		}
	})
	return db
}

// MinioConfig returns the settings of the test MinIO on TestBucket, without
// a prefix, or skips or fails the test (see Lookup).
func MinioConfig(tb testing.TB) serverminio.Config {
	tb.Helper()
	return serverminio.Config{
		Endpoint:  Lookup(tb, EnvMinioEndpoint),
		AccessKey: Lookup(tb, EnvMinioAccessKey),
		SecretKey: Lookup(tb, EnvMinioSecretKey),
		Bucket:    TestBucket,
		Secure:    envBool(EnvMinioSecure),
	}
}

// Minio returns a store on TestBucket whose Prefix is the test's own (see
// Name), and removes every object under that prefix when the test ends.
func Minio(tb testing.TB) *serverminio.Store {
	tb.Helper()
	cfg := MinioConfig(tb)
	cfg.Prefix = Name(tb, 200) + "/"
	st, err := serverminio.Open(tb.Context(), cfg, Logger(tb))
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	tb.Cleanup(func() {
		if envBool(EnvKeep) {
			tb.Logf("testenv: kept objects under %s/%s (%s is set)", cfg.Bucket, cfg.Prefix, EnvKeep)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
		defer cancel()
		if err := removePrefix(ctx, st.Client(), cfg.Bucket, cfg.Prefix); err != nil {
			tb.Errorf("testenv: remove %s/%s: %v", cfg.Bucket, cfg.Prefix, err)
		}
	})
	return st
}

func removePrefix(ctx context.Context, c *minio.Client, bucket, prefix string) error {
	objects := make(chan minio.ObjectInfo)
	var listErr error
	go func() {
		defer close(objects)
		for obj := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				listErr = obj.Err
				return
			}
			select {
			case objects <- obj:
			case <-ctx.Done():
				return
			}
		}
	}()
	var firstErr error
	for rerr := range c.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
		if firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", rerr.ObjectName, rerr.Err)
		}
	}
	if firstErr != nil {
		return firstErr
	}
	return listErr // written before objects was closed, read after RemoveObjects drained it
}

var lastName atomic.Int64

// Name returns a name unique to this test run and readable in logs:
// "t_<nanoseconds>_<test name>", with every character outside
// [A-Za-z0-9_-] replaced by "_", cut to maxLen bytes.
func Name(tb testing.TB, maxLen int) string {
	n := time.Now().UnixNano()
	for {
		last := lastName.Load()
		if n <= last {
			n = last + 1
		}
		if lastName.CompareAndSwap(last, n) {
			break
		}
	}
	name := fmt.Sprintf("t_%d_%s", n, strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		}
		return '_'
	}, tb.Name()))
	if len(name) > maxLen {
		name = name[:maxLen]
	}
	return name
}

// Logger returns a logger that writes to the test's output, at Debug level.
func Logger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tb.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
