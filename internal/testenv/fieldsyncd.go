package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Server is a fieldsyncd process of a test: its base URL, its admin
// token and its database.
type Server struct {
	URL        string
	AdminToken string
	DB         string
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds fieldsyncd once per test process.
func binary(tb testing.TB) string {
	tb.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "testenv-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "fieldsyncd")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/fieldsync/fieldsync/server/cmd/fieldsyncd").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build fieldsyncd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return binPath
}

// Fieldsyncd builds fieldsyncd (once per test binary) and runs n processes
// of it on one database of their own of the test MongoDB and on the test
// MinIO bucket, as replicas behind a proxy would run, each on a free port
// of its own, and waits until all are ready. They are stopped when the
// test ends, then the database is dropped (unless EnvKeep); their logs are
// printed if the test failed. env adds FIELDSYNC_* settings.
func Fieldsyncd(t *testing.T, n int, env ...string) []*Server {
	t.Helper()
	mongoURI := MongoURI(t)
	minioEndpoint := Lookup(t, EnvMinioEndpoint)
	bin := binary(t)
	db := Name(t, 60)
	token := "test-" + uuid.NewString()
	// Registered first, so that it runs after the servers have stopped.
	t.Cleanup(func() {
		if envBool(EnvKeep) {
			t.Logf("testenv: kept database %s (%s is set)", db, EnvKeep)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), CleanupTimeout)
		defer cancel()
		if c, err := mongo.Connect(options.Client().ApplyURI(mongoURI)); err == nil {
			c.Database(db).Drop(ctx)
			c.Disconnect(ctx)
		}
	})
	dir := t.TempDir()
	servers := make([]*Server, n)
	for i := range servers {
		servers[i] = runFieldsyncd(t, bin, filepath.Join(dir, fmt.Sprintf("fieldsyncd-%d.log", i)),
			append([]string{"FIELDSYNC_MONGO_URI=" + mongoURI, "FIELDSYNC_MONGO_DB=" + db,
				"FIELDSYNC_MINIO_ENDPOINT=" + minioEndpoint, "FIELDSYNC_MINIO_BUCKET=" + TestBucket,
				"FIELDSYNC_ADMIN_TOKEN=" + token, "FIELDSYNC_LOG_LEVEL=warn"}, env...))
		servers[i].AdminToken, servers[i].DB = token, db
	}
	return servers
}

// runFieldsyncd starts one fieldsyncd process with env and waits until it
// is ready.
func runFieldsyncd(t *testing.T, bin, logPath string, env []string) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &Server{URL: "http://" + addr}
	cmd := exec.Command(bin)
	cmd.Env = append(append(os.Environ(), env...), "FIELDSYNC_ADDR="+addr)
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("fieldsyncd log (%s):\n%s", addr, b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("fieldsyncd not ready after 60 s:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
