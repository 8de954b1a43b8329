package main

import (
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/server"
	serverminio "github.com/fieldsync/fieldsync/server/minio"
	"github.com/fieldsync/fieldsync/syncproto"
)

// required holds the variables without a default.
var required = map[string]string{
	"FIELDSYNC_MONGO_URI":        "mongodb://127.0.0.1:27017/",
	"FIELDSYNC_MINIO_ENDPOINT":   "127.0.0.1:9000",
	"FIELDSYNC_MINIO_ACCESS_KEY": "access",
	"FIELDSYNC_MINIO_SECRET_KEY": "secret-key",
}

// env returns required with the changes in kv (a pair with an empty value
// removes the variable) as a getenv function.
func env(kv ...string) func(string) string {
	m := make(map[string]string)
	for k, v := range required {
		m[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return func(k string) string { return m[k] }
}

const day = 24 * time.Hour

func TestConfigLoad(t *testing.T) {
	base := func() Config {
		c := DefaultConfig()
		c.MongoURI = "mongodb://127.0.0.1:27017/"
		c.Minio = serverminio.Config{Endpoint: "127.0.0.1:9000", AccessKey: "access", SecretKey: "secret-key", Bucket: "fieldsync"}
		return c
	}
	tests := []struct {
		name    string
		args    []string
		getenv  func(string) string
		want    func(*Config) // changes to base(); nil when an error is expected
		wantErr []string      // each must appear in the error
	}{
		{name: "Defaults", getenv: env(), want: func(*Config) {}},
		{
			name: "AllVariables",
			getenv: env(
				"FIELDSYNC_ADDR", "0.0.0.0:9999",
				"FIELDSYNC_MONGO_DB", "fs_prod-1",
				"FIELDSYNC_MINIO_BUCKET", "media.fieldsync",
				"FIELDSYNC_MINIO_SECURE", "true",
				"FIELDSYNC_MINIO_PUBLIC_ENDPOINT", "https://photos.example.cn:443",
				"FIELDSYNC_SHUTDOWN_TIMEOUT", "5s",
				"FIELDSYNC_BODY_LIMIT", "8MiB",
				"FIELDSYNC_BODY_BUDGET", "256MiB",
				"FIELDSYNC_BODY_MIN_RATE", "2KiB",
				"FIELDSYNC_BODY_RATE_GRACE", "30s",
				"FIELDSYNC_REQUEST_TIMEOUT", "2m",
				"FIELDSYNC_ADMIN_TOKEN", "0123456789abcdef",
				"FIELDSYNC_LOG_LEVEL", "debug",
				"FIELDSYNC_MAX_RECORD_BYTES", "1MiB",
				"FIELDSYNC_MAX_PULL_BYTES", "16MiB",
				"FIELDSYNC_JOURNAL_RETENTION", "120d",
				"FIELDSYNC_TOMBSTONE_RETENTION", "8760h",
				"FIELDSYNC_MAINTENANCE_PERIOD", "30m",
				"FIELDSYNC_MEMORY_LIMIT", "1GiB",
				"FIELDSYNC_THUMB_DECODE_BUDGET", "96MiB",
				"FIELDSYNC_UPLOAD_QUOTA", "1GiB",
				"FIELDSYNC_UNREFERENCED_PHOTO_TTL", "3d",
			),
			want: func(c *Config) {
				c.Addr = "0.0.0.0:9999"
				c.MongoDB = "fs_prod-1"
				c.Minio.Bucket = "media.fieldsync"
				c.Minio.Secure = true
				c.MinioPublic, c.MinioPublicSecure = "photos.example.cn:443", true
				c.ShutdownTimeout = 5 * time.Second
				c.BodyLimit = 8 << 20
				c.BodyBudget = 256 << 20
				c.BodyMinRate = 2 << 10
				c.BodyRateGrace = 30 * time.Second
				c.RequestTimeout = 2 * time.Minute
				c.AdminToken = "0123456789abcdef"
				c.LogLevel = slog.LevelDebug
				c.MaxRecordBytes = 1 << 20
				c.MaxPullBytes = 16 << 20
				c.JournalRetention = 120 * day
				c.TombstoneRetention = 365 * day
				c.MaintenancePeriod = 30 * time.Minute
				c.MemoryLimit = 1 << 30
				c.ThumbDecodeBudget = 96 << 20
				c.UploadQuota = 1 << 30
				c.UnreferencedPhotoTTL = 3 * day
			},
		},
		{name: "BodyLimitInBytes", getenv: env("FIELDSYNC_BODY_LIMIT", "4194304"), want: func(c *Config) { c.BodyLimit = 4 << 20 }},

		// The sync limits.
		{name: "LargestRecord", getenv: env("FIELDSYNC_MAX_RECORD_BYTES", "4MiB"), want: func(c *Config) { c.MaxRecordBytes = 4 << 20 }},
		{name: "SmallRecordsAndPages", getenv: env("FIELDSYNC_MAX_RECORD_BYTES", "65536", "FIELDSYNC_MAX_PULL_BYTES", "64KiB"),
			want: func(c *Config) { c.MaxRecordBytes, c.MaxPullBytes = 64<<10, 64<<10 }},
		{name: "BadMaxRecordBytes", getenv: env("FIELDSYNC_MAX_RECORD_BYTES", "2 MB-ish"), wantErr: []string{"FIELDSYNC_MAX_RECORD_BYTES:", "not a size"}},
		{name: "MaxRecordBytesTooLarge", getenv: env("FIELDSYNC_MAX_RECORD_BYTES", "5MiB", "FIELDSYNC_MAX_PULL_BYTES", "16MiB"),
			wantErr: []string{"FIELDSYNC_MAX_RECORD_BYTES:", "between 1KiB and 4MiB"}},
		{name: "MaxRecordBytesTooSmall", getenv: env("FIELDSYNC_MAX_RECORD_BYTES", "100"), wantErr: []string{"FIELDSYNC_MAX_RECORD_BYTES:", "between"}},
		{name: "RecordAsLargeAsBody", getenv: env("FIELDSYNC_BODY_LIMIT", "2MiB", "FIELDSYNC_MAX_RECORD_BYTES", "2MiB"),
			wantErr: []string{"FIELDSYNC_MAX_RECORD_BYTES:", "FIELDSYNC_BODY_LIMIT"}},
		{name: "DefaultRecordOverSmallBody", getenv: env("FIELDSYNC_BODY_LIMIT", "1MiB"),
			wantErr: []string{"FIELDSYNC_MAX_RECORD_BYTES: 2097152 bytes is not less than FIELDSYNC_BODY_LIMIT"}},
		{name: "BadMaxPullBytes", getenv: env("FIELDSYNC_MAX_PULL_BYTES", "big"), wantErr: []string{"FIELDSYNC_MAX_PULL_BYTES:", "not a size"}},
		{name: "PageSmallerThanRecord", getenv: env("FIELDSYNC_MAX_PULL_BYTES", "1MiB"),
			wantErr: []string{"FIELDSYNC_MAX_PULL_BYTES:", "largest record"}},
		{name: "PageTooLarge", getenv: env("FIELDSYNC_MAX_PULL_BYTES", "1GiB"), wantErr: []string{"FIELDSYNC_MAX_PULL_BYTES:", "between 64KiB and 256MiB"}},

		// Memory and photos.
		{name: "NoMemoryLimit", getenv: env("FIELDSYNC_MEMORY_LIMIT", "0"), want: func(c *Config) { c.MemoryLimit = 0 }},
		{name: "MemoryLimitBelowBudgets", getenv: env("FIELDSYNC_MEMORY_LIMIT", "128MiB"),
			wantErr: []string{"FIELDSYNC_MEMORY_LIMIT:", "FIELDSYNC_BODY_BUDGET plus FIELDSYNC_THUMB_DECODE_BUDGET (256MiB)"}},
		{name: "LargerDecodeBudgetNeedsLimit", getenv: env("FIELDSYNC_THUMB_DECODE_BUDGET", "512MiB"),
			wantErr: []string{"FIELDSYNC_MEMORY_LIMIT:", "(576MiB)"}},
		{name: "LargerDecodeBudget", getenv: env("FIELDSYNC_THUMB_DECODE_BUDGET", "512MiB", "FIELDSYNC_MEMORY_LIMIT", "1GiB"),
			want: func(c *Config) { c.ThumbDecodeBudget, c.MemoryLimit = 512<<20, 1<<30 }},
		{name: "TinyDecodeBudget", getenv: env("FIELDSYNC_THUMB_DECODE_BUDGET", "1MiB"), wantErr: []string{"FIELDSYNC_THUMB_DECODE_BUDGET:", "between 16MiB"}},
		{name: "BadMemoryLimit", getenv: env("FIELDSYNC_MEMORY_LIMIT", "lots"), wantErr: []string{"FIELDSYNC_MEMORY_LIMIT:", "not a size"}},
		{name: "TinyUploadQuota", getenv: env("FIELDSYNC_UPLOAD_QUOTA", "4KiB"), wantErr: []string{"FIELDSYNC_UPLOAD_QUOTA:", "no photo would fit"}},
		{name: "ShortPhotoTTL", getenv: env("FIELDSYNC_UNREFERENCED_PHOTO_TTL", "10m"), wantErr: []string{"FIELDSYNC_UNREFERENCED_PHOTO_TTL:", "less than 1h"}},

		// The maintenance.
		{name: "JournalInHours", getenv: env("FIELDSYNC_JOURNAL_RETENTION", "2400h"), want: func(c *Config) { c.JournalRetention = 100 * day }},
		{name: "JournalAtTheOfflineBound", getenv: env("FIELDSYNC_JOURNAL_RETENTION", "90d", "FIELDSYNC_TOMBSTONE_RETENTION", "91d"),
			want: func(c *Config) { c.TombstoneRetention = 91 * day }},
		{name: "HourlyMaintenance", getenv: env("FIELDSYNC_MAINTENANCE_PERIOD", "1h"), want: func(c *Config) { c.MaintenancePeriod = time.Hour }},
		{name: "JournalShorterThanOffline", getenv: env("FIELDSYNC_JOURNAL_RETENTION", "30d"),
			wantErr: []string{"FIELDSYNC_JOURNAL_RETENTION: 30d is shorter than the 90d a phone may stay offline", "exactly once"}},
		{name: "JournalOneHourShort", getenv: env("FIELDSYNC_JOURNAL_RETENTION", "2159h"), wantErr: []string{"FIELDSYNC_JOURNAL_RETENTION:", "exactly once"}},
		{name: "TombstonesNotAfterJournal", getenv: env("FIELDSYNC_JOURNAL_RETENTION", "200d"),
			wantErr: []string{"FIELDSYNC_TOMBSTONE_RETENTION: 180d must exceed the journal retention (200d)"}},
		{name: "TombstonesAsLongAsJournal", getenv: env("FIELDSYNC_TOMBSTONE_RETENTION", "90d"), wantErr: []string{"FIELDSYNC_TOMBSTONE_RETENTION:", "recreate"}},
		{name: "MaintenanceTooOften", getenv: env("FIELDSYNC_MAINTENANCE_PERIOD", "10s"), wantErr: []string{"FIELDSYNC_MAINTENANCE_PERIOD:", "between"}},
		{name: "MaintenanceTooRare", getenv: env("FIELDSYNC_MAINTENANCE_PERIOD", "30d"), wantErr: []string{"FIELDSYNC_MAINTENANCE_PERIOD: 30d is not between 1m0s and 7d"}},
		{name: "BadRetention", getenv: env("FIELDSYNC_JOURNAL_RETENTION", "3 months"), wantErr: []string{"FIELDSYNC_JOURNAL_RETENTION:", "not a duration"}},
		{name: "FractionalDays", getenv: env("FIELDSYNC_TOMBSTONE_RETENTION", "180.5d"), wantErr: []string{"FIELDSYNC_TOMBSTONE_RETENTION:", "not a duration"}},
		{name: "NegativeDays", getenv: env("FIELDSYNC_JOURNAL_RETENTION", "-90d"), wantErr: []string{"FIELDSYNC_JOURNAL_RETENTION:", "positive"}},

		{name: "FlagsWinOverEnv", args: []string{"-addr", "127.0.0.1:0", "-log-level", "warn"},
			getenv: env("FIELDSYNC_ADDR", "127.0.0.1:1234", "FIELDSYNC_LOG_LEVEL", "debug"),
			want:   func(c *Config) { c.Addr = "127.0.0.1:0"; c.LogLevel = slog.LevelWarn }},
		{name: "Version", args: []string{"-version"}, getenv: env("FIELDSYNC_MONGO_URI", ""),
			want: func(c *Config) { c.ShowVersion = true; c.MongoURI = "" }},
		{
			name:   "MissingRequired",
			getenv: func(string) string { return "" },
			wantErr: []string{
				"FIELDSYNC_MONGO_URI: is required",
				"FIELDSYNC_MINIO_ENDPOINT: is required",
				"FIELDSYNC_MINIO_ACCESS_KEY: is required",
				"FIELDSYNC_MINIO_SECRET_KEY: is required",
			},
		},
		{name: "BadMongoURI", getenv: env("FIELDSYNC_MONGO_URI", "postgres://x"), wantErr: []string{"FIELDSYNC_MONGO_URI: must start with mongodb://"}},
		{name: "BadDBName", getenv: env("FIELDSYNC_MONGO_DB", "a.b"), wantErr: []string{"FIELDSYNC_MONGO_DB:"}},
		{name: "EndpointWithScheme", getenv: env("FIELDSYNC_MINIO_ENDPOINT", "http://127.0.0.1:9000"), wantErr: []string{"FIELDSYNC_MINIO_ENDPOINT:", "without a scheme"}},
		{name: "EndpointWithoutPort", getenv: env("FIELDSYNC_MINIO_ENDPOINT", "minio.local"), wantErr: []string{"FIELDSYNC_MINIO_ENDPOINT:", "host:port"}},
		{name: "BadBucket", getenv: env("FIELDSYNC_MINIO_BUCKET", "Field_Sync"), wantErr: []string{"FIELDSYNC_MINIO_BUCKET:"}},
		{name: "BadSecure", getenv: env("FIELDSYNC_MINIO_SECURE", "yes please"), wantErr: []string{"FIELDSYNC_MINIO_SECURE:"}},
		{name: "BadPublicEndpoint", getenv: env("FIELDSYNC_MINIO_PUBLIC_ENDPOINT", "ftp://photos"), wantErr: []string{"FIELDSYNC_MINIO_PUBLIC_ENDPOINT:", "host:port"}},
		{name: "BadShutdownTimeout", getenv: env("FIELDSYNC_SHUTDOWN_TIMEOUT", "20"), wantErr: []string{"FIELDSYNC_SHUTDOWN_TIMEOUT:", "not a duration"}},
		{name: "NegativeRequestTimeout", getenv: env("FIELDSYNC_REQUEST_TIMEOUT", "-1s"), wantErr: []string{"FIELDSYNC_REQUEST_TIMEOUT:", "positive"}},
		{name: "BadBodyLimit", getenv: env("FIELDSYNC_BODY_LIMIT", "32 parsecs"), wantErr: []string{"FIELDSYNC_BODY_LIMIT:", "not a size"}},
		{name: "BodyLimitTooSmall", getenv: env("FIELDSYNC_BODY_LIMIT", "100"), wantErr: []string{"FIELDSYNC_BODY_LIMIT:", "between"}},
		{name: "BodyLimitTooLarge", getenv: env("FIELDSYNC_BODY_LIMIT", "2GiB"), wantErr: []string{"FIELDSYNC_BODY_LIMIT:", "between"}},
		{name: "BodyMinRateInBytes", getenv: env("FIELDSYNC_BODY_MIN_RATE", "100"), want: func(c *Config) { c.BodyMinRate = 100 }},
		{name: "BadBodyBudget", getenv: env("FIELDSYNC_BODY_BUDGET", "lots"), wantErr: []string{"FIELDSYNC_BODY_BUDGET:", "not a size"}},
		{name: "BodyBudgetBelowBodyLimit", getenv: env("FIELDSYNC_BODY_BUDGET", "16MiB"), wantErr: []string{"FIELDSYNC_BODY_BUDGET:", "FIELDSYNC_BODY_LIMIT"}},
		{name: "BodyBudgetTooLarge", getenv: env("FIELDSYNC_BODY_BUDGET", "2048GiB"), wantErr: []string{"FIELDSYNC_BODY_BUDGET:", "between"}},
		{name: "BadBodyMinRate", getenv: env("FIELDSYNC_BODY_MIN_RATE", "fast"), wantErr: []string{"FIELDSYNC_BODY_MIN_RATE:", "bytes per second"}},
		{name: "ZeroBodyMinRate", getenv: env("FIELDSYNC_BODY_MIN_RATE", "0"), wantErr: []string{"FIELDSYNC_BODY_MIN_RATE:", "between"}},
		{name: "BadBodyRateGrace", getenv: env("FIELDSYNC_BODY_RATE_GRACE", "20"), wantErr: []string{"FIELDSYNC_BODY_RATE_GRACE:", "not a duration"}},
		{name: "BadAddr", getenv: env("FIELDSYNC_ADDR", "8080"), wantErr: []string{"FIELDSYNC_ADDR:"}},
		{name: "BadAddrPort", getenv: env("FIELDSYNC_ADDR", "127.0.0.1:http-alt"), wantErr: []string{"FIELDSYNC_ADDR:", "port"}},
		{name: "ShortAdminToken", getenv: env("FIELDSYNC_ADMIN_TOKEN", "secret"), wantErr: []string{"FIELDSYNC_ADMIN_TOKEN:", "16"}},
		{name: "BadLogLevel", getenv: env("FIELDSYNC_LOG_LEVEL", "loud"), wantErr: []string{"FIELDSYNC_LOG_LEVEL:"}},
		{name: "BadLogLevelFlag", args: []string{"-log-level=loud"}, getenv: env(), wantErr: []string{"-log-level:"}},
		{name: "UnknownFlag", args: []string{"-mongo", "x"}, getenv: env(), wantErr: []string{"-mongo"}},
		{name: "ExtraArguments", args: []string{"serve"}, getenv: env(), wantErr: []string{"unexpected arguments"}},
		{
			name:    "SeveralProblemsAtOnce",
			getenv:  env("FIELDSYNC_SHUTDOWN_TIMEOUT", "soon", "FIELDSYNC_MINIO_SECRET_KEY", ""),
			wantErr: []string{"FIELDSYNC_SHUTDOWN_TIMEOUT:", "FIELDSYNC_MINIO_SECRET_KEY:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DefaultConfig()
			err := got.Load(tt.args, tt.getenv)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("Load succeeded, want an error mentioning %q", tt.wantErr)
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			want := base()
			tt.want(&want)
			if got != want {
				t.Errorf("Load gave\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

func TestConfigLoad_Help(t *testing.T) {
	c := DefaultConfig()
	if err := c.Load([]string{"-h"}, env()); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Load(-h) = %v, want flag.ErrHelp", err)
	}
}

// TestConfigWiring checks that the configured limits and maintenance
// reach the values the server is built with.
func TestConfigWiring(t *testing.T) {
	c := DefaultConfig()
	if err := c.Load(nil, env("FIELDSYNC_BODY_LIMIT", "8MiB", "FIELDSYNC_MAX_RECORD_BYTES", "3MiB", "FIELDSYNC_MAX_PULL_BYTES", "12MiB",
		"FIELDSYNC_JOURNAL_RETENTION", "100d", "FIELDSYNC_TOMBSTONE_RETENTION", "200d", "FIELDSYNC_MAINTENANCE_PERIOD", "2h")); err != nil {
		t.Fatal(err)
	}
	l := c.Limits()
	want := server.DefaultSyncLimits()
	want.MaxBytes, want.MaxRecordBytes, want.MaxPullBytes = 8<<20, 3<<20, 12<<20
	if l != want {
		t.Errorf("Limits() = %+v, want %+v", l, want)
	}
	m := c.Maintenance(nil)
	if m.JournalRetention != 100*day || m.TombstoneRetention != 200*day || m.Every != 2*time.Hour {
		t.Errorf("Maintenance() = journal %s, tombstones %s, every %s", m.JournalRetention, m.TombstoneRetention, m.Every)
	}
	d := DefaultConfig()
	if dm := d.Maintenance(nil); dm.JournalRetention != server.MaxOffline || dm.Check() != nil {
		t.Errorf("the default maintenance: journal %s, %v", dm.JournalRetention, dm.Check())
	}
	if d.Limits() != func() syncproto.Limits { l := server.DefaultSyncLimits(); l.MaxBytes = 32 << 20; return l }() {
		t.Errorf("the default limits %+v differ from the server's", d.Limits())
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"20s", 20 * time.Second, true},
		{"2160h", 90 * day, true},
		{"90d", 90 * day, true},
		{"0d", 0, true},
		{"1d12h", 0, false},
		{"1.5d", 0, false},
		{"d", 0, false},
		{"99999999d", 0, false},
		{"soon", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseDuration(%q) = %s, %v; want %s, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1024", 1024, true},
		{"512KiB", 512 << 10, true},
		{"512 kb", 512 << 10, true},
		{"32MiB", 32 << 20, true},
		{"32M", 32 << 20, true},
		{"1GiB", 1 << 30, true},
		{"1.5MiB", 0, false},
		{"MiB", 0, false},
		{"-1", 0, false},
		{"12TB", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, err := parseBytes(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
