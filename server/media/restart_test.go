package media_test

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	serverminio "github.com/fieldsync/fieldsync/server/minio"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
	"github.com/fieldsync/fieldsync/syncproto"
)

// minioBinary returns the MinIO server deploy/stack.sh built, in
// FIELDSYNC_STACK_BIN_DIR or the repository's .cache/infra-bin. Without
// one the test is skipped, unless the stack started MinIO for this run
// (FIELDSYNC_MINIO_PID), which proves the binary should be there.
func minioBinary(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FIELDSYNC_STACK_BIN_DIR")
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		for ; ; wd = filepath.Dir(wd) {
			if _, err := os.Stat(filepath.Join(wd, "go.mod")); err == nil {
				dir = filepath.Join(wd, ".cache", "infra-bin")
				break
			}
			if wd == filepath.Dir(wd) {
				break
			}
		}
	}
	found, _ := filepath.Glob(filepath.Join(dir, "minio-*"))
	found = slices.DeleteFunc(found, func(p string) bool { return strings.HasSuffix(p, ".log") })
	if len(found) == 0 {
		if testenv.Required() && os.Getenv("FIELDSYNC_MINIO_PID") != "" {
			t.Fatalf("no MinIO binary in %s, though deploy/stack.sh started MinIO", dir)
		}
		t.Skipf("skipping: no MinIO binary in %s (deploy/stack.sh build makes one)", dir)
	}
	return found[len(found)-1]
}

// minioServer is a MinIO process of the test's own, which it may stop and
// start again without disturbing other tests.
type minioServer struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
}

const (
	restartUser     = "restart-test"
	restartPassword = "restart-test-secret"
)

func startMinio(t *testing.T) *minioServer {
	m := &minioServer{t: t, bin: minioBinary(t), dir: t.TempDir(), addr: closedPort(t)}
	m.start()
	t.Cleanup(m.stop)
	return m
}

func (m *minioServer) start() {
	m.t.Helper()
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "MINIO_") })
	env = append(env, "MINIO_ROOT_USER="+restartUser, "MINIO_ROOT_PASSWORD="+restartPassword, "MINIO_BROWSER=off", "MINIO_UPDATE=off")
	m.cmd = exec.Command(m.bin, "server", "--quiet", "--address", m.addr, m.dir)
	m.cmd.Env = env
	m.cmd.Stdout, m.cmd.Stderr = m.t.Output(), m.t.Output()
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	// Wait until it serves requests: its health endpoint answers before
	// the object layer is up ("Server not initialized yet"), so poll a
	// real call, for at most 30 s.
	client, err := minio.New(m.addr, &minio.Options{Creds: credentials.NewStaticV4(restartUser, restartPassword, ""), Region: "us-east-1", MaxRetries: 1})
	if err != nil {
		m.t.Fatal(err)
	}
	for range 300 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = client.ListBuckets(ctx)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	m.t.Fatalf("MinIO on %s was not ready after 30 s: %v", m.addr, err)
}

func (m *minioServer) stop() {
	if m.cmd == nil {
		return
	}
	m.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { m.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		m.cmd.Process.Kill()
		<-done
	}
	m.cmd = nil
}

// TestMinioRestart stops MinIO in the middle of an upload: record
// bookkeeping goes on, photo calls fail with EUNAVAILABLE (503 with
// Retry-After in the API), and once MinIO is back the same upload goes on
// from where it stood and completes.
func TestMinioRestart(t *testing.T) {
	db := testenv.Mongo(t)
	m := startMinio(t)
	cfg := serverminio.Config{Endpoint: m.addr, AccessKey: restartUser, SecretKey: restartPassword, Bucket: "fieldsync-restart"}
	if _, err := serverminio.Open(t.Context(), cfg, testenv.Logger(t)); err != nil { // creates the bucket
		t.Fatal(err)
	}
	blobs, err := serverminio.NewBlobs(cfg, serverminio.BlobOptions{})
	if err != nil {
		t.Fatal(err)
	}
	access := fakeAccess{"reviewer": {"school-1"}}
	svc := media.New(blobs, servermongo.NewMediaStore(db.Database()), access, media.Config{}, testenv.Logger(t))
	ctx := t.Context()

	rng := rand.New(rand.NewPCG(41, 42))
	data, other := fakeJPEG(rng, 600_000), fakeJPEG(rng, 50_000)
	sha, otherSHA := mediatest.SHA256(data), mediatest.SHA256(other)
	rec := record(t, "school-1", 1, sha)
	mediatest.Code(t, svc.Expect(ctx, rec), "")
	for off := 0; off < 300_000; off += 100_000 {
		_, err := svc.PutChunk(ctx, sha, int64(off), data[off:off+100_000])
		mediatest.Code(t, err, "")
	}

	m.stop()

	// Pushes of records still work: the media bookkeeping is in the
	// database only.
	mediatest.Code(t, svc.Expect(ctx, withPhotos(t, rec, 2, sha, otherSHA)), "")
	rp, err := svc.RecordPhotos(ctx, principal("reviewer"), rec.ID.String(), "")
	mediatest.Code(t, err, "")
	if rp.Complete || len(rp.Missing) != 2 {
		t.Fatalf("RecordPhotos with MinIO down = %+v", rp)
	}
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"Status", func(ctx context.Context) error { _, err := svc.Status(ctx, sha); return err }},
		{"PutChunk", func(ctx context.Context) error {
			_, err := svc.PutChunk(ctx, sha, 300_000, data[300_000:400_000])
			return err
		}},
		{"Finish", func(ctx context.Context) error { _, err := svc.Finish(ctx, sha, int64(len(data)), ""); return err }},
		{"Put", func(ctx context.Context) error { _, err := svc.Put(ctx, otherSHA, other, ""); return err }},
	}
	for _, c := range calls {
		mediatest.Code(t, c.call(ctx), syncproto.EUNAVAILABLE)
	}

	m.start()

	st, err := svc.Status(ctx, sha)
	mediatest.Code(t, err, "")
	if st.State != media.UploadPartial || st.Received != 300_000 {
		t.Fatalf("after the restart the server holds %+v, want the 300000 bytes sent before", st)
	}
	sendAll(t, svc, sha, data, 100_000)
	_, err = svc.Put(ctx, otherSHA, other, "image/jpeg")
	mediatest.Code(t, err, "")
	equalBytes(t, stored(t, blobs, sha), data)
	rp, err = svc.RecordPhotos(ctx, principal("reviewer"), rec.ID.String(), "")
	mediatest.Code(t, err, "")
	if !rp.Complete {
		t.Fatalf("RecordPhotos after the restart = %+v", rp)
	}
}
