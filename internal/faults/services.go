package faults

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// suite is the state of one run of the fault suite.
type suite struct {
	cfg    config
	report *Report
}

// config is the suite's configuration, from FIELDSYNC_* variables (set by
// deploy/stack.sh and deploy/faults.sh).
type config struct {
	scenarios map[string]bool
	portBase  int
	seed      uint64
	batches   int           // push batches of the kill scenario
	outage    time.Duration // how long MinIO stays stopped
	report    string        // JSON report path; the table goes beside it

	fieldsyncd string // binary, built by TestMain
	minio      string // binary, FIELDSYNC_FAULTS_MINIO_BIN
	haproxy    string // binary, FIELDSYNC_FAULTS_HAPROXY_BIN or PATH
	stackDir   string // FIELDSYNC_STACK_DIR, for deploy/stack.sh stop|start
	root       string // the repository

	mongoURI, minioEndpoint, minioKey, minioSecret string
}

// The scenarios in the order they run, and the subset of .ci/run.
var (
	allScenarios = []string{"kill", "replicas2", "replicas3", "ferretdb", "postgres", "minio-stop", "minio-dist", "disk-full"}
	ciScenarios  = []string{"kill", "replicas2", "ferretdb", "minio-stop", "disk-full"}
)

// Port offsets from FIELDSYNC_FAULTS_PORT_BASE, one block per scenario.
const (
	offKill      = 0  // fieldsyncd
	offReplicas  = 10 // proxy +0, replicas +1..+3
	offFerret    = 20 // fieldsyncd
	offPostgres  = 21 // fieldsyncd
	offMinioStop = 22 // fieldsyncd
	offDist      = 30 // proxy +0, fieldsyncd +1, MinIO nodes +2..+5
	offDiskFull  = 40 // fieldsyncd +0, MinIO +1
)

func loadConfig() (config, error) {
	c := config{
		portBase:      19100,
		batches:       50,
		outage:        30 * time.Second,
		stackDir:      os.Getenv("FIELDSYNC_STACK_DIR"),
		mongoURI:      os.Getenv("FIELDSYNC_MONGO_URI"),
		minioEndpoint: os.Getenv("FIELDSYNC_MINIO_ENDPOINT"),
		minioKey:      os.Getenv("FIELDSYNC_MINIO_ACCESS_KEY"),
		minioSecret:   os.Getenv("FIELDSYNC_MINIO_SECRET_KEY"),
		minio:         os.Getenv("FIELDSYNC_FAULTS_MINIO_BIN"),
		haproxy:       os.Getenv("FIELDSYNC_FAULTS_HAPROXY_BIN"),
		seed:          uint64(time.Now().UnixNano()),
	}
	which := strings.TrimSpace(os.Getenv("FIELDSYNC_FAULTS"))
	c.scenarios = map[string]bool{}
	switch which {
	case "":
	case "all":
		for _, s := range allScenarios {
			c.scenarios[s] = true
		}
	case "ci":
		for _, s := range ciScenarios {
			c.scenarios[s] = true
		}
		c.batches, c.outage = 30, 10*time.Second
	default:
		for _, s := range strings.Split(which, ",") {
			s = strings.TrimSpace(s)
			if !contains(allScenarios, s) {
				return c, fmt.Errorf("FIELDSYNC_FAULTS: unknown scenario %q (want all, ci, or some of %s)", s, strings.Join(allScenarios, ","))
			}
			c.scenarios[s] = true
		}
	}
	num := func(name string, dst *int, lo, hi int) error {
		v := os.Getenv(name)
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%s=%q: want a number from %d to %d", name, v, lo, hi)
		}
		*dst = n
		return nil
	}
	if err := num("FIELDSYNC_FAULTS_PORT_BASE", &c.portBase, 1024, 65535-50); err != nil {
		return c, err
	}
	if err := num("FIELDSYNC_FAULTS_BATCHES", &c.batches, 5, 10000); err != nil {
		return c, err
	}
	if v := os.Getenv("FIELDSYNC_FAULTS_MINIO_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("FIELDSYNC_FAULTS_MINIO_OUTAGE=%q: want a duration such as 30s", v)
		}
		c.outage = d
	}
	if v := os.Getenv("FIELDSYNC_FAULTS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("FIELDSYNC_FAULTS_SEED=%q: want a number", v)
		}
		c.seed = n
	}
	wd, err := os.Getwd()
	if err != nil {
		return c, err
	}
	c.root = filepath.Join(wd, "..", "..")
	c.report = os.Getenv("FIELDSYNC_FAULTS_REPORT")
	if c.report == "" {
		c.report = filepath.Join(c.root, ".cache", "faults", "report.json")
	}
	if c.haproxy == "" {
		c.haproxy, _ = exec.LookPath("haproxy")
	}
	return c, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c config) port(off int) int { return c.portBase + off }

// ---------------------------------------------------------------- fieldsyncd

// daemon is one fieldsyncd process.
type daemon struct {
	*proc
	addr string
}

func (d *daemon) url() string { return "http://" + d.addr }

// backend says which database and bucket a scenario's fieldsyncd
// processes share, and where MinIO is.
type backend struct {
	db, bucket         string
	minio, key, secret string
	public             string // FIELDSYNC_MINIO_PUBLIC_ENDPOINT; empty: minio
	adminToken         string
	mongoURI           string
}

func (s *suite) backend(t *testing.T, name string) backend {
	b := backend{
		db:     "faults_" + strings.ReplaceAll(name, "-", "_") + "_" + strconv.FormatInt(time.Now().UnixNano(), 36),
		bucket: "faults-" + name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		minio:  s.cfg.minioEndpoint, key: s.cfg.minioKey, secret: s.cfg.minioSecret,
		adminToken: "faults-admin-" + uuid.NewString(),
		mongoURI:   s.cfg.mongoURI,
	}
	t.Cleanup(func() { s.dropDB(b.db) })
	return b
}

// fieldsyncd starts a fieldsyncd on 127.0.0.1:port and waits until it is
// ready.
func (s *suite) fieldsyncd(t *testing.T, dir, name string, port int, b backend) *daemon {
	t.Helper()
	requireFree(t, "127.0.0.1", port)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"FIELDSYNC_ADDR=" + addr, "FIELDSYNC_MONGO_URI=" + b.mongoURI, "FIELDSYNC_MONGO_DB=" + b.db,
		"FIELDSYNC_MINIO_ENDPOINT=" + b.minio, "FIELDSYNC_MINIO_ACCESS_KEY=" + b.key, "FIELDSYNC_MINIO_SECRET_KEY=" + b.secret,
		"FIELDSYNC_MINIO_BUCKET=" + b.bucket, "FIELDSYNC_ADMIN_TOKEN=" + b.adminToken,
		"FIELDSYNC_LOG_LEVEL=warn", "FIELDSYNC_SHUTDOWN_TIMEOUT=5s"}
	if b.public != "" {
		env = append(env, "FIELDSYNC_MINIO_PUBLIC_ENDPOINT="+b.public)
	}
	d := &daemon{proc: newProc(t, dir, name, env, s.cfg.fieldsyncd), addr: addr}
	if err := s.restart(t.Context(), d); err != nil {
		t.Fatal(err)
	}
	return d
}

// restart starts a daemon (again) and waits until /readyz answers 200.
func (s *suite) restart(ctx context.Context, d *daemon) error {
	if err := d.start(); err != nil {
		return err
	}
	return waitHTTP(ctx, d.proc, d.url()+"/readyz", 200, 60*time.Second)
}

// ---------------------------------------------------------------- HAProxy

// haproxy starts HAProxy on 127.0.0.1:port, balancing round robin over
// backends (host:port), each health-checked on path every 500 ms. A
// request whose connection fails, or that gets no answer at all, is
// retried once on another server: safe for fieldsync, whose pushes are
// idempotent by batch id and whose uploads are idempotent by offset.
func (s *suite) haproxy(t *testing.T, dir, name string, port int, check string, backends []string) *proc {
	t.Helper()
	if s.cfg.haproxy == "" {
		t.Fatal("haproxy is not installed; deploy/faults.sh installs it (apt-get install haproxy)")
	}
	requireFree(t, "127.0.0.1", port)
	var b strings.Builder
	fmt.Fprintf(&b, `global
	maxconn 2000
defaults
	mode http
	timeout connect 2s
	timeout client 120s
	timeout server 120s
	timeout http-request 60s
	option redispatch
	retries 2
	retry-on conn-failure empty-response
	default-server inter 500ms fastinter 250ms downinter 500ms fall 2 rise 1
frontend in
	bind 127.0.0.1:%d
	default_backend servers
backend servers
	balance roundrobin
	option httpchk
	http-check send meth GET uri %s ver HTTP/1.1 hdr Host localhost
	http-check expect status 200
`, port, check)
	for i, be := range backends {
		fmt.Fprintf(&b, "\tserver s%d %s check\n", i, be)
	}
	cfg := filepath.Join(dir, name+".cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t.Context(), s.cfg.haproxy, "-c", "-q", "-f", cfg); err != nil {
		t.Fatalf("haproxy config: %v\n%s", err, out)
	}
	p := newProc(t, dir, name, []string{"PATH=" + os.Getenv("PATH")}, s.cfg.haproxy, "-db", "-f", cfg)
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	// Ready when the health check passes through the proxy: a server is
	// up for it.
	if err := waitHTTP(t.Context(), p, "http://127.0.0.1:"+strconv.Itoa(port)+check, 200, 30*time.Second); err != nil {
		t.Fatalf("haproxy: %v\n%s", err, p.tail())
	}
	return p
}

// ---------------------------------------------------------------- the stack

// stack runs "deploy/stack.sh stop|start NAME" on the stack the suite
// runs under.
func (s *suite) stack(ctx context.Context, action, name string) error {
	if s.cfg.stackDir == "" {
		return fmt.Errorf("FIELDSYNC_STACK_DIR is not set: run the suite under deploy/stack.sh (make faults)")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(s.cfg.root, "deploy", "stack.sh"), action, name, "--dir", s.cfg.stackDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("deploy/stack.sh %s %s: %w\n%s", action, name, err, out)
	}
	return nil
}

// dropDB drops a scenario's database.
func (s *suite) dropDB(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := mongo.Connect(options.Client().ApplyURI(s.cfg.mongoURI))
	if err != nil {
		return
	}
	defer c.Disconnect(ctx)
	c.Database(name).Drop(ctx)
}
