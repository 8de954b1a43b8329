package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
	serverminio "github.com/fieldsync/fieldsync/server/minio"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Config is fieldsyncd's configuration. It comes from FIELDSYNC_* environment
// variables, a few flags (which win over the environment), and the defaults
// of DefaultConfig. Secrets come only from the environment.
type Config struct {
	Addr     string             // FIELDSYNC_ADDR, -addr
	MongoURI string             // FIELDSYNC_MONGO_URI
	MongoDB  string             // FIELDSYNC_MONGO_DB
	Minio    serverminio.Config // FIELDSYNC_MINIO_*
	// MinioPublic is the host:port phones and browsers reach MinIO at,
	// which presigned photo links name (FIELDSYNC_MINIO_PUBLIC_ENDPOINT;
	// default the endpoint). MinioPublicSecure says whether it is https.
	MinioPublic       string
	MinioPublicSecure bool
	ShutdownTimeout   time.Duration // FIELDSYNC_SHUTDOWN_TIMEOUT
	BodyLimit         int           // FIELDSYNC_BODY_LIMIT, bytes
	BodyBudget        int64         // FIELDSYNC_BODY_BUDGET, bytes
	BodyMinRate       int64         // FIELDSYNC_BODY_MIN_RATE, bytes per second
	BodyRateGrace     time.Duration // FIELDSYNC_BODY_RATE_GRACE
	RequestTimeout    time.Duration // FIELDSYNC_REQUEST_TIMEOUT
	AdminToken        string        // FIELDSYNC_ADMIN_TOKEN
	// ConsoleLoopbackHTTP lets the console's session cookie go without
	// Secure to browsers on loopback (tests, a demo on one machine).
	ConsoleLoopbackHTTP bool       // FIELDSYNC_CONSOLE_LOOPBACK_HTTP
	LogLevel            slog.Level // FIELDSYNC_LOG_LEVEL, -log-level

	// The sync limits the server enforces and advertises in
	// GET /v1/sync/info (syncproto.Limits).
	MaxRecordBytes int64 // FIELDSYNC_MAX_RECORD_BYTES
	MaxPullBytes   int64 // FIELDSYNC_MAX_PULL_BYTES

	// The maintenance of the sync store (server.Maintenance).
	JournalRetention   time.Duration // FIELDSYNC_JOURNAL_RETENTION
	TombstoneRetention time.Duration // FIELDSYNC_TOMBSTONE_RETENTION
	MaintenancePeriod  time.Duration // FIELDSYNC_MAINTENANCE_PERIOD

	// Memory. MemoryLimit is the Go runtime's soft memory limit
	// (FIELDSYNC_MEMORY_LIMIT; 0 is none; GOMEMLIMIT, when set, wins):
	// the collector runs harder as the heap nears it, so garbage of one
	// large photo decode or request body is freed before the next, and
	// the process's peak stays near the limit instead of twice what is
	// live. ThumbDecodeBudget is media.Config.ThumbMaxDecodeBytes
	// (FIELDSYNC_THUMB_DECODE_BUDGET), UploadQuota media.Config.DeviceQuota
	// (FIELDSYNC_UPLOAD_QUOTA), UnreferencedPhotoTTL
	// media.Config.UnreferencedTTL (FIELDSYNC_UNREFERENCED_PHOTO_TTL).
	MemoryLimit          int64
	ThumbDecodeBudget    int64
	UploadQuota          int64
	UnreferencedPhotoTTL time.Duration

	// ShowVersion is set by the -version flag: print the version and exit.
	ShowVersion bool
	// CPUProfile, set by the -cpuprofile flag, is a file to write a CPU
	// profile of the whole run to (for benchmarks: go tool pprof -top).
	CPUProfile string
}

// DefaultConfig returns the defaults. MongoURI and the MinIO endpoint and
// keys have none: they are required.
func DefaultConfig() Config {
	return Config{
		Addr:            "127.0.0.1:8080",
		MongoDB:         "fieldsync",
		Minio:           serverminio.Config{Bucket: "fieldsync"},
		ShutdownTimeout: 20 * time.Second,
		BodyLimit:       32 << 20,
		BodyBudget:      64 << 20,
		BodyMinRate:     500,
		BodyRateGrace:   20 * time.Second,
		RequestTimeout:  60 * time.Second,
		LogLevel:        slog.LevelInfo,

		MaxRecordBytes:     server.DefaultSyncLimits().MaxRecordBytes,
		MaxPullBytes:       server.DefaultSyncLimits().MaxPullBytes,
		JournalRetention:   server.DefaultJournalRetention,
		TombstoneRetention: server.DefaultTombstoneRetention,
		MaintenancePeriod:  server.DefaultMaintenancePeriod,

		MemoryLimit:          256 << 20,
		ThumbDecodeBudget:    media.DefaultConfig().ThumbMaxDecodeBytes,
		UploadQuota:          media.DefaultConfig().DeviceQuota,
		UnreferencedPhotoTTL: media.DefaultConfig().UnreferencedTTL,
	}
}

// maintenanceVars names the variable of each server.Maintenance setting,
// for the errors of server.Maintenance.Check.
var maintenanceVars = map[string]string{
	"JournalRetention":   "FIELDSYNC_JOURNAL_RETENTION",
	"TombstoneRetention": "FIELDSYNC_TOMBSTONE_RETENTION",
	"Every":              "FIELDSYNC_MAINTENANCE_PERIOD",
}

// Bounds of the sync limits. A record must fit in a push body and be
// served by the store (servermongo.MaxRecordBytes); a pull page holds
// at least one record, and is held in memory while it is sent.
const (
	minDecodeBudget = 16 << 20
	minRecordBytes  = 1 << 10
	minPullBytes    = 64 << 10
	maxPullBytes    = 256 << 20
)

// envVars documents every variable Load reads, for -h and the README.
var envVars = []struct{ Name, Default, Help string }{
	{"FIELDSYNC_ADDR", "127.0.0.1:8080", "HTTP listen address, host:port (flag -addr)"},
	{"FIELDSYNC_MONGO_URI", "required", "MongoDB URI, mongodb://… or mongodb+srv://…"},
	{"FIELDSYNC_MONGO_DB", "fieldsync", "database name"},
	{"FIELDSYNC_MINIO_ENDPOINT", "required", "MinIO/S3 endpoint, host:port without a scheme"},
	{"FIELDSYNC_MINIO_ACCESS_KEY", "required", "MinIO access key"},
	{"FIELDSYNC_MINIO_SECRET_KEY", "required", "MinIO secret key"},
	{"FIELDSYNC_MINIO_BUCKET", "fieldsync", "bucket, created if missing"},
	{"FIELDSYNC_MINIO_SECURE", "false", "use https to reach MinIO"},
	{"FIELDSYNC_MINIO_PUBLIC_ENDPOINT", "the endpoint", "host:port phones and browsers reach MinIO at, named in photo links; https:// prefix for TLS"},
	{"FIELDSYNC_SHUTDOWN_TIMEOUT", "20s", "how long shutdown waits for requests in flight"},
	{"FIELDSYNC_BODY_LIMIT", "32MiB", "largest push body, as sent and decompressed (bytes, or with KiB/MiB/GiB)"},
	{"FIELDSYNC_BODY_BUDGET", "64MiB", "request-body bytes held in memory at once, all requests together; beyond it 503 (at least FIELDSYNC_BODY_LIMIT)"},
	{"FIELDSYNC_BODY_MIN_RATE", "500", "slowest request body accepted after the grace, bytes per second (or with KiB/MiB)"},
	{"FIELDSYNC_BODY_RATE_GRACE", "20s", "time a request body may take before FIELDSYNC_BODY_MIN_RATE applies"},
	{"FIELDSYNC_REQUEST_TIMEOUT", "60s", "deadline of a request's work; also bounds reading a request and writing a response"},
	{"FIELDSYNC_ADMIN_TOKEN", "none", "bearer token of the admin API (at least 16 characters); empty disables it"},
	{"FIELDSYNC_CONSOLE_LOOPBACK_HTTP", "false", "true lets the office console's session cookie work over plain http for browsers on 127.0.0.1 (tests, a local demo); elsewhere it is always Secure"},
	{"FIELDSYNC_LOG_LEVEL", "info", "debug, info, warn or error (flag -log-level)"},
	{"FIELDSYNC_MAX_RECORD_BYTES", "2MiB", "largest record state (its JSON), refused per change with 413 beyond; at most 4MiB and less than FIELDSYNC_BODY_LIMIT"},
	{"FIELDSYNC_MAX_PULL_BYTES", "8MiB", "records' JSON per pull page (one record at least); at least FIELDSYNC_MAX_RECORD_BYTES, at most 256MiB"},
	{"FIELDSYNC_JOURNAL_RETENTION", "90d", "how long a push's answer is kept for exactly-once (e.g. 120d, 2880h); at least 90d, how long a phone may stay offline"},
	{"FIELDSYNC_TOMBSTONE_RETENTION", "180d", "how long deleted records are remembered; more than FIELDSYNC_JOURNAL_RETENTION"},
	{"FIELDSYNC_MAINTENANCE_PERIOD", "6h", "how often one process forgets the journal past its retention and compacts the change log (1m to 7d)"},
	{"FIELDSYNC_MEMORY_LIMIT", "256MiB", "the Go runtime's soft memory limit (0 for none; GOMEMLIMIT, if set, wins); at least FIELDSYNC_BODY_BUDGET plus FIELDSYNC_THUMB_DECODE_BUDGET"},
	{"FIELDSYNC_THUMB_DECODE_BUDGET", "192MiB", "decoded pixels a process holds at once while making thumbnails (bit depth counted); a larger photo is kept without thumbnails"},
	{"FIELDSYNC_UPLOAD_QUOTA", "512MiB", "bytes one device may hold in unfinished uploads and in photos no record refers to; beyond it 413"},
	{"FIELDSYNC_UNREFERENCED_PHOTO_TTL", "7d", "how long a photo no record refers to is kept before it is removed"},
}

// Load reads the configuration from getenv and then args (flags), and
// validates it. Every problem is reported, each naming its variable or
// flag. It returns flag.ErrHelp for -h.
func (c *Config) Load(args []string, getenv func(string) string) error {
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, a...)))
	}
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	duration := func(name string, dst *time.Duration) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		d, err := parseDuration(v)
		switch {
		case err != nil:
			bad(name, "%q is not a duration (examples: 20s, 2m, 90d)", v)
		case d <= 0:
			bad(name, "%q must be positive", v)
		default:
			*dst = d
		}
	}
	logLevel := func(name, v string) {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			bad(name, "%q is not a log level (want debug, info, warn or error)", v)
		}
	}

	str("FIELDSYNC_ADDR", &c.Addr)
	str("FIELDSYNC_MONGO_URI", &c.MongoURI)
	str("FIELDSYNC_MONGO_DB", &c.MongoDB)
	str("FIELDSYNC_MINIO_ENDPOINT", &c.Minio.Endpoint)
	str("FIELDSYNC_MINIO_ACCESS_KEY", &c.Minio.AccessKey)
	str("FIELDSYNC_MINIO_SECRET_KEY", &c.Minio.SecretKey)
	str("FIELDSYNC_MINIO_BUCKET", &c.Minio.Bucket)
	if v := strings.TrimSpace(getenv("FIELDSYNC_MINIO_SECURE")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("FIELDSYNC_MINIO_SECURE", "%q is not a boolean (want true or false)", v)
		}
		c.Minio.Secure = b
	}
	if v := strings.TrimSpace(getenv("FIELDSYNC_MINIO_PUBLIC_ENDPOINT")); v != "" {
		host := v
		switch {
		case strings.HasPrefix(v, "https://"):
			host, c.MinioPublicSecure = strings.TrimPrefix(v, "https://"), true
		case strings.HasPrefix(v, "http://"):
			host = strings.TrimPrefix(v, "http://")
		}
		if _, _, err := net.SplitHostPort(host); err != nil || strings.Contains(host, "/") {
			bad("FIELDSYNC_MINIO_PUBLIC_ENDPOINT", "%q is not host:port (optionally with http:// or https://)", v)
		}
		c.MinioPublic = host
	}
	duration("FIELDSYNC_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	duration("FIELDSYNC_REQUEST_TIMEOUT", &c.RequestTimeout)
	if v := strings.TrimSpace(getenv("FIELDSYNC_BODY_LIMIT")); v != "" {
		n, err := parseBytes(v)
		switch {
		case err != nil:
			bad("FIELDSYNC_BODY_LIMIT", "%q is not a size (examples: 33554432, 32MiB, 512KiB)", v)
		case n < 1<<10 || n > 1<<30:
			bad("FIELDSYNC_BODY_LIMIT", "%q must be between 1KiB and 1GiB", v)
		default:
			c.BodyLimit = int(n)
		}
	}
	if v := strings.TrimSpace(getenv("FIELDSYNC_BODY_BUDGET")); v != "" {
		n, err := parseBytes(v)
		switch {
		case err != nil:
			bad("FIELDSYNC_BODY_BUDGET", "%q is not a size (examples: 64MiB, 1GiB)", v)
		case n < 1<<10 || n > 1<<40:
			bad("FIELDSYNC_BODY_BUDGET", "%q must be between 1KiB and 1TiB", v)
		default:
			c.BodyBudget = n
		}
	}
	if v := strings.TrimSpace(getenv("FIELDSYNC_BODY_MIN_RATE")); v != "" {
		n, err := parseBytes(v)
		switch {
		case err != nil:
			bad("FIELDSYNC_BODY_MIN_RATE", "%q is not a number of bytes per second (examples: 500, 2KiB)", v)
		case n < 1 || n > 1<<30:
			bad("FIELDSYNC_BODY_MIN_RATE", "%q must be between 1 and 1GiB (per second)", v)
		default:
			c.BodyMinRate = n
		}
	}
	duration("FIELDSYNC_BODY_RATE_GRACE", &c.BodyRateGrace)
	size := func(name string, dst *int64) {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return
		}
		n, err := parseBytes(v)
		if err != nil {
			bad(name, "%q is not a size (examples: 2MiB, 512KiB, 1048576)", v)
			return
		}
		*dst = n
	}
	size("FIELDSYNC_MAX_RECORD_BYTES", &c.MaxRecordBytes)
	size("FIELDSYNC_MAX_PULL_BYTES", &c.MaxPullBytes)
	size("FIELDSYNC_MEMORY_LIMIT", &c.MemoryLimit)
	size("FIELDSYNC_THUMB_DECODE_BUDGET", &c.ThumbDecodeBudget)
	size("FIELDSYNC_UPLOAD_QUOTA", &c.UploadQuota)
	duration("FIELDSYNC_UNREFERENCED_PHOTO_TTL", &c.UnreferencedPhotoTTL)
	duration("FIELDSYNC_JOURNAL_RETENTION", &c.JournalRetention)
	duration("FIELDSYNC_TOMBSTONE_RETENTION", &c.TombstoneRetention)
	duration("FIELDSYNC_MAINTENANCE_PERIOD", &c.MaintenancePeriod)
	c.AdminToken = getenv("FIELDSYNC_ADMIN_TOKEN")
	if v := strings.TrimSpace(getenv("FIELDSYNC_CONSOLE_LOOPBACK_HTTP")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("FIELDSYNC_CONSOLE_LOOPBACK_HTTP", "%q is not a boolean (want true or false)", v)
		}
		c.ConsoleLoopbackHTTP = b
	}
	if v := strings.TrimSpace(getenv("FIELDSYNC_LOG_LEVEL")); v != "" {
		logLevel("FIELDSYNC_LOG_LEVEL", v)
	}

	fs := flag.NewFlagSet("fieldsyncd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Run prints the usage; errors are returned
	fs.StringVar(&c.Addr, "addr", c.Addr, "HTTP listen address (overrides FIELDSYNC_ADDR)")
	fs.Func("log-level", "log level (overrides FIELDSYNC_LOG_LEVEL)", func(v string) error {
		logLevel("-log-level", v)
		return nil
	})
	fs.BoolVar(&c.ShowVersion, "version", false, "print the version and exit")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the run to this file, at shutdown")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		errs = append(errs, err)
	} else if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %q (configuration comes from FIELDSYNC_* variables)", fs.Args()))
	}
	if c.ShowVersion {
		return nil
	}

	if err := c.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validate checks the values that have no parse step.
func (c *Config) validate() error {
	var errs []error
	bad := func(name, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", name, fmt.Sprintf(format, a...)))
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil {
		bad("FIELDSYNC_ADDR", "%q is not host:port", c.Addr)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		bad("FIELDSYNC_ADDR", "%q has no valid port number", c.Addr)
	}
	switch {
	case c.MongoURI == "":
		bad("FIELDSYNC_MONGO_URI", "is required (for example mongodb://127.0.0.1:27017/)")
	case !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://"):
		bad("FIELDSYNC_MONGO_URI", "must start with mongodb:// or mongodb+srv://")
	}
	if !validDBName(c.MongoDB) {
		bad("FIELDSYNC_MONGO_DB", "%q is not a database name (1 to 63 letters, digits, _ or -)", c.MongoDB)
	}
	switch {
	case c.Minio.Endpoint == "":
		bad("FIELDSYNC_MINIO_ENDPOINT", "is required (host:port, for example 127.0.0.1:9000)")
	case strings.Contains(c.Minio.Endpoint, "://"):
		bad("FIELDSYNC_MINIO_ENDPOINT", "%q must be host:port without a scheme (set FIELDSYNC_MINIO_SECURE=true for https)", c.Minio.Endpoint)
	default:
		if _, _, err := net.SplitHostPort(c.Minio.Endpoint); err != nil {
			bad("FIELDSYNC_MINIO_ENDPOINT", "%q is not host:port", c.Minio.Endpoint)
		}
	}
	if c.Minio.AccessKey == "" {
		bad("FIELDSYNC_MINIO_ACCESS_KEY", "is required")
	}
	if c.Minio.SecretKey == "" {
		bad("FIELDSYNC_MINIO_SECRET_KEY", "is required")
	}
	if !validBucketName(c.Minio.Bucket) {
		bad("FIELDSYNC_MINIO_BUCKET", "%q is not a bucket name (3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit)", c.Minio.Bucket)
	}
	if c.BodyBudget < int64(c.BodyLimit) {
		bad("FIELDSYNC_BODY_BUDGET", "%d bytes is less than FIELDSYNC_BODY_LIMIT (%d bytes): one push would not fit", c.BodyBudget, c.BodyLimit)
	}
	switch {
	case c.MaxRecordBytes < minRecordBytes || c.MaxRecordBytes > servermongo.MaxRecordBytes:
		bad("FIELDSYNC_MAX_RECORD_BYTES", "%d bytes is not between %s and %s (the store reads records a few at a time, within the driver's limit on a reply)", c.MaxRecordBytes, formatBytes(minRecordBytes), formatBytes(servermongo.MaxRecordBytes))
	case c.MaxRecordBytes >= int64(c.BodyLimit):
		bad("FIELDSYNC_MAX_RECORD_BYTES", "%d bytes is not less than FIELDSYNC_BODY_LIMIT (%d bytes): a push of one such record would be refused", c.MaxRecordBytes, c.BodyLimit)
	}
	switch {
	case c.MaxPullBytes < minPullBytes || c.MaxPullBytes > maxPullBytes:
		bad("FIELDSYNC_MAX_PULL_BYTES", "%d bytes is not between %s and %s", c.MaxPullBytes, formatBytes(minPullBytes), formatBytes(maxPullBytes))
	case c.MaxPullBytes < c.MaxRecordBytes:
		bad("FIELDSYNC_MAX_PULL_BYTES", "%d bytes is less than FIELDSYNC_MAX_RECORD_BYTES (%d bytes): a page must hold the largest record", c.MaxPullBytes, c.MaxRecordBytes)
	}
	if c.ThumbDecodeBudget < minDecodeBudget || c.ThumbDecodeBudget > 1<<40 {
		bad("FIELDSYNC_THUMB_DECODE_BUDGET", "%d bytes is not between %s and 1TiB (a phone's 1600-pixel photo takes about 10MiB)", c.ThumbDecodeBudget, formatBytes(minDecodeBudget))
	}
	if need := c.BodyBudget + c.ThumbDecodeBudget; c.MemoryLimit != 0 && c.MemoryLimit < need {
		bad("FIELDSYNC_MEMORY_LIMIT", "%d bytes is less than FIELDSYNC_BODY_BUDGET plus FIELDSYNC_THUMB_DECODE_BUDGET (%s): the collector would run without pause under load; raise it or set 0 for none", c.MemoryLimit, formatBytes(need))
	}
	if c.MemoryLimit < 0 {
		bad("FIELDSYNC_MEMORY_LIMIT", "must not be negative")
	}
	if c.UploadQuota < 1<<20 {
		bad("FIELDSYNC_UPLOAD_QUOTA", "%d bytes is less than 1MiB: no photo would fit", c.UploadQuota)
	}
	if c.UnreferencedPhotoTTL < time.Hour {
		bad("FIELDSYNC_UNREFERENCED_PHOTO_TTL", "%s is less than 1h: a phone's photo could be removed before the record naming it arrives", c.UnreferencedPhotoTTL)
	}
	if err := c.Maintenance(nil).Check(); err != nil {
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var se *server.SettingError
			if errors.As(e, &se) {
				bad(maintenanceVars[se.Setting], "%s", se.Reason)
			} else {
				errs = append(errs, e)
			}
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("FIELDSYNC_ADMIN_TOKEN", "is too short: use at least 16 characters (make run generates one)")
	}
	return errors.Join(errs...)
}

// Limits returns the sync limits of the configuration: the server's
// defaults with the configured sizes.
func (c *Config) Limits() syncproto.Limits {
	l := server.DefaultSyncLimits()
	l.MaxBytes = int64(c.BodyLimit)
	l.MaxRecordBytes = c.MaxRecordBytes
	l.MaxPullBytes = c.MaxPullBytes
	return l
}

// Maintenance returns the maintenance of store with the configured
// retentions and period.
func (c *Config) Maintenance(store server.MaintenanceStore) *server.Maintenance {
	m := server.NewMaintenance(store)
	m.JournalRetention, m.TombstoneRetention, m.Every = c.JournalRetention, c.TombstoneRetention, c.MaintenancePeriod
	return m
}

// validDBName accepts what both MongoDB and FerretDB v1 accept.
func validDBName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// validBucketName follows S3's rules for new buckets, without the rarely
// met ones (IP-address-like names, reserved prefixes).
func validBucketName(s string) bool {
	if len(s) < 3 || len(s) > 63 || strings.Contains(s, "..") {
		return false
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= '0' && r <= '9'
		if (i == 0 || i == len(s)-1) && !alnum {
			return false
		}
		if !alnum && r != '-' && r != '.' {
			return false
		}
	}
	return true
}

// parseBytes parses "1048576", "512KiB", "32MiB", "1GiB" (also K, KB, M, MB,
// G, GB, all powers of 1024).
func parseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, err
	}
	var mult int64
	switch strings.ToLower(unit) {
	case "", "b":
		mult = 1
	case "k", "kb", "kib":
		mult = 1 << 10
	case "m", "mb", "mib":
		mult = 1 << 20
	case "g", "gb", "gib":
		mult = 1 << 30
	default:
		return 0, fmt.Errorf("unknown unit %q", unit)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%s is too large", s)
	}
	return n * mult, nil
}

// parseDuration parses a Go duration ("20s", "2m", "2160h") or a number
// of days ("90d").
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// formatBytes writes n in the largest binary unit that divides it.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// usage writes the -h text.
func usage(w io.Writer) {
	fmt.Fprintf(w, `Usage: fieldsyncd [-addr host:port] [-log-level level] [-version]

fieldsyncd serves the fieldsync sync API. It is configured by environment
variables (flags win over them):

`)
	for _, v := range envVars {
		fmt.Fprintf(w, "  %-30s %-16s %s\n", v.Name, v.Default, v.Help)
	}
}
