package media_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	serverminio "github.com/fieldsync/fieldsync/server/minio"
	servermongo "github.com/fieldsync/fieldsync/server/mongo"
)

var benchPhotos = flag.Int("bench.photos", 200, "photos per BenchmarkUpload iteration")

// BenchmarkUpload uploads the same photos of 2–4 MB three ways, one after
// another on one connection, against the real MinIO and FerretDB:
//
//   - raw: minio-go's PutObject with default options, the baseline;
//   - put: the service's one-request path (hash, sniff, a put that MinIO
//     checks against the sha256, the MetaStore updates);
//   - chunked: 256 KiB chunks staged as objects, then Finish.
//
// For each photo the raw and put uploads carry the same bytes and run
// back to back, so both see the same server state. It reports MB/s
// (10^6 bytes per second of upload calls) and the ratios to raw. Run it
// with:
//
//	go test -run '^$' -bench BenchmarkUpload -benchtime 1x ./server/media/
func BenchmarkUpload(b *testing.B) {
	st := testenv.Minio(b)
	db := testenv.Mongo(b)
	cfg := testenv.MinioConfig(b)
	cfg.Prefix = st.Prefix()
	blobs, err := serverminio.NewBlobs(cfg, serverminio.BlobOptions{})
	if err != nil {
		b.Fatal(err)
	}
	meta := servermongo.NewMediaStore(db.Database())
	if err := meta.EnsureIndexes(b.Context()); err != nil {
		b.Fatal(err)
	}
	svc := media.New(blobs, meta, fakeAccess{}, media.Config{}, nil)
	ctx := context.Background()

	rng := rand.New(rand.NewPCG(2026, 11))
	base := fakeJPEG(rng, 4<<20)
	sizes := make([]int, *benchPhotos)
	for i := range sizes {
		sizes[i] = 2<<20 + rng.IntN(2<<20)
	}
	// photo fills buf with photo i of a series: the same random bytes,
	// stamped so that every photo has its own hash.
	photo := func(buf []byte, series, i int) []byte {
		p := buf[:sizes[i]]
		copy(p, base)
		binary.BigEndian.PutUint32(p[12:], uint32(series))
		binary.BigEndian.PutUint32(p[16:], uint32(i))
		return p
	}
	buf := make([]byte, 4<<20)
	var total int64
	for _, n := range sizes {
		total += int64(n)
	}

	for it := range b.N {
		var raw, put, chunked time.Duration
		for i := range sizes {
			p := photo(buf, it, i)
			sha := mediatest.SHA256(p)

			start := time.Now()
			if _, err := st.Client().PutObject(ctx, st.Bucket(), st.Key(fmt.Sprintf("bench-raw/%d/%d", it, i)), bytes.NewReader(p), int64(len(p)),
				minio.PutObjectOptions{ContentType: "image/jpeg"}); err != nil {
				b.Fatal(err)
			}
			raw += time.Since(start)

			start = time.Now()
			if u, err := svc.Put(ctx, sha, p, "image/jpeg"); err != nil || u.State != media.UploadComplete {
				b.Fatalf("Put: %+v, %v", u, err)
			}
			put += time.Since(start)
		}
		for i := range sizes {
			p := photo(buf, b.N+it, i)
			sha := mediatest.SHA256(p)
			start := time.Now()
			for off := 0; off < len(p); off += media.DefaultChunkBytes {
				if _, err := svc.PutChunk(ctx, sha, int64(off), p[off:min(off+media.DefaultChunkBytes, len(p))]); err != nil {
					b.Fatal(err)
				}
			}
			if u, err := svc.Finish(ctx, sha, int64(len(p)), "image/jpeg"); err != nil || u.State != media.UploadComplete {
				b.Fatalf("Finish: %+v, %v", u, err)
			}
			chunked += time.Since(start)
		}
		mbps := func(d time.Duration) float64 { return float64(total) / d.Seconds() / 1e6 }
		b.ReportMetric(mbps(raw), "raw_MB/s")
		b.ReportMetric(mbps(put), "put_MB/s")
		b.ReportMetric(mbps(put)/mbps(raw), "put/raw")
		b.ReportMetric(mbps(chunked), "chunked_MB/s")
		b.ReportMetric(mbps(chunked)/mbps(raw), "chunked/raw")
		b.Logf("%d photos, %.0f MB: raw PutObject %.1f MB/s; service Put %.1f MB/s (%.2f of raw); chunked %.1f MB/s (%.2f of raw)",
			len(sizes), float64(total)/1e6, mbps(raw), mbps(put), mbps(put)/mbps(raw), mbps(chunked), mbps(chunked)/mbps(raw))
	}
}
