package media_test

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	serverminio "github.com/fieldsync/fieldsync/server/minio"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
)

// env is one test's stores. process returns a new Service on the same
// stores through new clients: what a restarted or second fieldsyncd sees.
type env struct {
	blobs   media.BlobStore
	meta    media.MetaStore
	fetch   mediatest.Fetch
	clock   *clock
	access  fakeAccess
	cfg     media.Config
	process func() *media.Service
	// down returns a service whose object store cannot be reached, on
	// the same MetaStore.
	down func() *media.Service
}

// backends are the store pairs every service test runs on: in memory
// (always), and MinIO with FerretDB (when configured; required under
// make test).
var backends = []struct {
	name string
	open func(t *testing.T, cfg media.Config) *env
}{
	{"mem", openMem},
	{"real", openReal},
}

// forEachBackend runs test as a parallel subtest per backend.
func forEachBackend(t *testing.T, cfg media.Config, test func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b.open(t, cfg))
		})
	}
}

func (e *env) service() *media.Service { return e.process() }

func newEnv(cfg media.Config) *env {
	e := &env{clock: newClock(), access: fakeAccess{}}
	cfg.Now = e.clock.Now
	e.cfg = cfg
	return e
}

func openMem(t *testing.T, cfg media.Config) *env {
	e := newEnv(cfg)
	blobs, meta := mediatest.NewBlobs(), mediatest.NewMeta()
	e.blobs, e.meta, e.fetch = blobs, meta, mediatest.FetchMem
	e.process = func() *media.Service { return media.New(blobs, meta, e.access, e.cfg, testenv.Logger(t)) }
	e.down = func() *media.Service {
		dead := mediatest.NewBlobs()
		dead.Down.Store(true)
		return media.New(dead, meta, e.access, e.cfg, testenv.Logger(t))
	}
	return e
}

func openReal(t *testing.T, cfg media.Config) *env {
	e := newEnv(cfg)
	st := testenv.Minio(t)
	db := testenv.Mongo(t)
	mcfg := testenv.MinioConfig(t)
	mcfg.Prefix = st.Prefix()
	newBlobs := func(c serverminio.Config) media.BlobStore {
		b, err := serverminio.NewBlobs(c, serverminio.BlobOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	newMeta := func() media.MetaStore {
		// A connection pool of its own, as another process has.
		conn, err := servermongo.Open(t.Context(), testenv.MongoURI(t), db.Name(), testenv.Logger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return servermongo.NewMediaStore(conn.Database())
	}
	ms := servermongo.NewMediaStore(db.Database())
	if err := ms.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.blobs, e.meta, e.fetch = newBlobs(mcfg), ms, mediatest.FetchHTTP
	e.process = func() *media.Service {
		return media.New(newBlobs(mcfg), newMeta(), e.access, e.cfg, testenv.Logger(t))
	}
	e.down = func() *media.Service {
		dead := mcfg
		dead.Endpoint = closedPort(t)
		return media.New(newBlobs(dead), newMeta(), e.access, e.cfg, testenv.Logger(t))
	}
	return e
}

// clock is a settable time for tests: thumbnail backoff and staging age
// are checked by moving it, never by sleeping.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// fakeAccess lets a user id see the listed schools.
type fakeAccess map[string][]string

func (a fakeAccess) CanSeeSchool(ctx context.Context, p server.Principal, school string) (bool, error) {
	return slices.Contains(a[p.UserID], school), nil
}

// fakeJPEG returns n random bytes behind a JPEG signature: what the upload
// checks accept, though no decoder would.
func fakeJPEG(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	// SOI, a JFIF APP0 and a frame header (16×16, three components):
	// enough to pass the upload's check that the bytes decode as a JPEG,
	// not to decode.
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
		0xFF, 0xC0, 0, 17, 8, 0, 16, 0, 16, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1})
	return b
}

// keysUnder lists the keys of the store under prefix.
func keysUnder(t *testing.T, s media.BlobStore, prefix string) []string {
	t.Helper()
	infos, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, in := range infos {
		keys = append(keys, in.Key)
	}
	return keys
}

// stored returns the bytes stored as the original of sha.
func stored(t *testing.T, s media.BlobStore, sha string) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), "photos/"+sha[:2]+"/"+sha)
	if err != nil {
		t.Fatalf("get original: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read original: %v", err)
	}
	return b
}

// nothingLeft fails unless the store holds nothing for sha: no original,
// no chunk.
func nothingLeft(t *testing.T, s media.BlobStore, sha string) {
	t.Helper()
	if keys := slices.Concat(keysUnder(t, s, "photos/"), keysUnder(t, s, "staging/")); len(keys) > 0 {
		var mine []string
		for _, k := range keys {
			if strings.Contains(k, sha) {
				mine = append(mine, k)
			}
		}
		if len(mine) > 0 {
			t.Fatalf("left behind for %s: %v", sha, mine)
		}
	}
}

// sendAll uploads data in chunks from where the server stands, and
// finishes.
func sendAll(t *testing.T, svc *media.Service, sha string, data []byte, chunk int) media.Upload {
	t.Helper()
	ctx := t.Context()
	st, err := svc.Status(ctx, sha)
	mediatest.Code(t, err, "")
	off := int(st.Received)
	for off < len(data) {
		end := min(off+chunk, len(data))
		u, err := svc.PutChunk(ctx, sha, int64(off), data[off:end])
		mediatest.Code(t, err, "")
		off = int(u.Received)
	}
	u, err := svc.Finish(ctx, sha, int64(len(data)), "image/jpeg")
	mediatest.Code(t, err, "")
	return u
}

func equalBytes(t *testing.T, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("stored %d bytes (sha256 %s), want %d bytes (sha256 %s)", len(got), mediatest.SHA256(got), len(want), mediatest.SHA256(want))
	}
}
