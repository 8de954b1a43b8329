package mediatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Fetch reads the object a URL from s.PresignGet points to, as a client
// without credentials would.
type Fetch func(ctx context.Context, s media.BlobStore, url string) ([]byte, error)

// FetchMem is the Fetch of a Blobs store.
func FetchMem(ctx context.Context, s media.BlobStore, u string) ([]byte, error) {
	b := s.(*Blobs)
	rest, ok := strings.CutPrefix(u, "mem:")
	if !ok {
		return nil, fmt.Errorf("not a mem: URL: %s", u)
	}
	key, _, _ := strings.Cut(rest, "?")
	key, err := url.PathUnescape(key)
	if err != nil {
		return nil, err
	}
	rc, err := b.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// FetchHTTP is the Fetch of stores whose URLs are http(s) URLs: a GET
// without credentials.
func FetchHTTP(ctx context.Context, _ media.BlobStore, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET: %s: %s", resp.Status, body)
	}
	return body, err
}

// SHA256 returns the hex sha256 of data.
func SHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Code fails the test unless err has the wanted syncproto code ("" for
// nil).
func Code(tb testing.TB, err error, want string) {
	tb.Helper()
	if got := syncproto.ErrorCode(err); got != want {
		tb.Fatalf("error code %q (%v), want %q", got, err, want)
	}
}

// read returns the whole object, or the error of Get or of reading.
func read(ctx context.Context, s media.BlobStore, key string) ([]byte, error) {
	rc, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("the phone went away")
	}
	n := min(len(p), f.n)
	for i := range p[:n] {
		p[i] = 'x'
	}
	f.n -= n
	return n, nil
}

// TestBlobStore is the contract of media.BlobStore. open returns an empty
// store for one subtest; fetch reads a presigned URL.
func TestBlobStore(t *testing.T, open func(t *testing.T) media.BlobStore, fetch Fetch) {
	data := bytes.Repeat([]byte("fieldsync photo bytes "), 3000) // 66 KB
	sum := SHA256(data)

	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, s media.BlobStore)
	}{
		{"PutGetStat", func(t *testing.T, ctx context.Context, s media.BlobStore) {
			Code(t, s.Put(ctx, "a/b", bytes.NewReader(data), int64(len(data)), media.PutOptions{ContentType: "image/jpeg"}), "")
			got, err := read(ctx, s, "a/b")
			Code(t, err, "")
			if !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes, not the %d put", len(got), len(data))
			}
			info, err := s.Stat(ctx, "a/b")
			Code(t, err, "")
			if info.Key != "a/b" || info.Size != int64(len(data)) || info.ContentType != "image/jpeg" || info.Modified.IsZero() {
				t.Fatalf("Stat = %+v", info)
			}
		}},
		{"PutReplaces", func(t *testing.T, ctx context.Context, s media.BlobStore) {
			Code(t, s.Put(ctx, "k", strings.NewReader("one"), 3, media.PutOptions{}), "")
			Code(t, s.Put(ctx, "k", strings.NewReader("second"), 6, media.PutOptions{}), "")
			got, err := read(ctx, s, "k")
			Code(t, err, "")
			if string(got) != "second" {
				t.Fatalf("got %q", got)
			}
		}},
		{"Missing", func(t *testing.T, ctx context.Context, s media.BlobStore) {
			_, err := s.Stat(ctx, "nothing")
			Code(t, err, syncproto.ENOTFOUND)
			_, err = read(ctx, s, "nothing")
			Code(t, err, syncproto.ENOTFOUND)
			Code(t, s.Remove(ctx, "nothing", "neither"), "")
		}},
		{"SHA256Checked", func(t *testing.T, ctx context.Context, s media.BlobStore) {
			Code(t, s.Put(ctx, "good", bytes.NewReader(data), int64(len(data)), media.PutOptions{SHA256: sum}), "")
			wrong := SHA256([]byte("something else"))
			Code(t, s.Put(ctx, "bad", bytes.NewReader(data), int64(len(data)), media.PutOptions{SHA256: wrong}), syncproto.EINVALID)
			_, err := s.Stat(ctx, "bad")
			Code(t, err, syncproto.ENOTFOUND)
		}},
		{"ShortReaderStoresNothing", func(t *testing.T, ctx context.Context, s media.BlobStore) {
			err := s.Put(ctx, "short", &failingReader{n: 1000}, 5000, media.PutOptions{})
			if err == nil {
				t.Fatal("Put of a failing reader succeeded")
			}
			_, err = s.Stat(ctx, "short")
			Code(t, err, syncproto.ENOTFOUND)
		}},
		{"IfAbsent", func(t *testing.T, ctx context.Context, s media.BlobStore) {
			Code(t, s.Put(ctx, "once", strings.NewReader("first"), 5, media.PutOptions{IfAbsent: true}), "")
			Code(t, s.Put(ctx, "once", strings.NewReader("other"), 5, media.PutOptions{IfAbsent: true}), syncproto.ECONFLICT)
			got, err := read(ctx, s, "once")
			Code(t, err, "")
			if string(got) != "first" {
				t.Fatalf("got %q", got)
			}
		}},
		{"ListRemove", func(t *testing.T, ctx context.Context, s media.BlobStore) {
			keys := []string{"staging/x/0000000000000002", "staging/x/0000000000000000", "staging/xy/0000000000000000", "staging/x/0000000000000001", "photos/x"}
			for i, k := range keys {
				Code(t, s.Put(ctx, k, strings.NewReader(strings.Repeat("z", i+1)), int64(i+1), media.PutOptions{}), "")
			}
			list, err := s.List(ctx, "staging/x/")
			Code(t, err, "")
			var got []string
			for _, in := range list {
				got = append(got, fmt.Sprintf("%s:%d", in.Key, in.Size))
			}
			want := []string{"staging/x/0000000000000000:2", "staging/x/0000000000000001:4", "staging/x/0000000000000002:1"}
			if !slices.Equal(got, want) {
				t.Fatalf("List = %v, want %v", got, want)
			}
			Code(t, s.Remove(ctx, "staging/x/0000000000000000", "staging/x/0000000000000002"), "")
			list, err = s.List(ctx, "staging/")
			Code(t, err, "")
			if len(list) != 2 || list[0].Key != "staging/x/0000000000000001" || list[1].Key != "staging/xy/0000000000000000" {
				t.Fatalf("after Remove, List = %+v", list)
			}
		}},
		{"PresignGet", func(t *testing.T, ctx context.Context, s media.BlobStore) {
			Code(t, s.Put(ctx, "photos/ab/p", bytes.NewReader(data), int64(len(data)), media.PutOptions{ContentType: "image/jpeg"}), "")
			u, err := s.PresignGet(ctx, "photos/ab/p", time.Minute)
			Code(t, err, "")
			got, err := fetch(ctx, s, u)
			if err != nil {
				t.Fatalf("fetch %s: %v", u, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("the presigned URL gave %d bytes, not the %d put", len(got), len(data))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, t.Context(), open(t))
		})
	}
}

// TestMetaStore is the contract of media.MetaStore. open returns an empty
// store for one subtest.
func TestMetaStore(t *testing.T, open func(t *testing.T) media.MetaStore) {
	sha := func(s string) string { return SHA256([]byte(s)) }
	t0 := time.Date(2026, 10, 8, 9, 30, 0, 0, time.UTC)

	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, s media.MetaStore)
	}{
		{"RecordCompareAndSet", func(t *testing.T, ctx context.Context, s media.MetaStore) {
			_, err := s.Record(ctx, "s1", "r1")
			Code(t, err, syncproto.ENOTFOUND)
			r := media.RecordRefs{RecordID: "r1", SchoolID: "s1", Rev: 3, Photos: []syncproto.PhotoRef{
				{SHA256: sha("a"), Size: 10, ContentType: "image/jpeg"}, {SHA256: sha("b")},
			}}
			Code(t, s.PutRecord(ctx, r, nil), "")
			Code(t, s.PutRecord(ctx, r, nil), syncproto.ECONFLICT)
			got, err := s.Record(ctx, "s1", "r1")
			Code(t, err, "")
			if got.RecordID != "r1" || got.SchoolID != "s1" || got.Rev != 3 || !slices.Equal(got.Photos, r.Photos) {
				t.Fatalf("Record = %+v, want %+v", got, r)
			}
			next := media.RecordRefs{RecordID: "r1", SchoolID: "s1", Rev: 5}
			stale := got
			stale.Rev = 2
			Code(t, s.PutRecord(ctx, next, &stale), syncproto.ECONFLICT)
			Code(t, s.PutRecord(ctx, next, &got), "")
			Code(t, s.PutRecord(ctx, next, &got), syncproto.ECONFLICT) // got is stale now
			got, err = s.Record(ctx, "s1", "r1")
			Code(t, err, "")
			if got.Rev != 5 || len(got.Photos) != 0 {
				t.Fatalf("Record after replace = %+v", got)
			}
			// The same id in another school is another record.
			_, err = s.Record(ctx, "s2", "r1")
			Code(t, err, syncproto.ENOTFOUND)
			other := media.RecordRefs{RecordID: "r1", SchoolID: "s2", Rev: 1, Photos: []syncproto.PhotoRef{{SHA256: sha("z")}}}
			Code(t, s.PutRecord(ctx, other, nil), "")
			got, err = s.Record(ctx, "s1", "r1")
			Code(t, err, "")
			if got.Rev != 5 || len(got.Photos) != 0 {
				t.Fatalf("Record of s1 after s2's = %+v", got)
			}
			all, err := s.RecordsByID(ctx, "r1")
			Code(t, err, "")
			if len(all) != 2 || all[0].SchoolID != "s1" || all[1].SchoolID != "s2" || len(all[1].Photos) != 1 {
				t.Fatalf("RecordsByID = %+v", all)
			}
		}},
		{"ExpectThenStored", func(t *testing.T, ctx context.Context, s media.MetaStore) {
			a := sha("a")
			_, err := s.Photo(ctx, a)
			Code(t, err, syncproto.ENOTFOUND)
			Code(t, s.ExpectPhoto(ctx, syncproto.PhotoRef{SHA256: a, Size: 42, ContentType: "image/jpeg"}, "s1"), "")
			Code(t, s.ExpectPhoto(ctx, syncproto.PhotoRef{SHA256: a}, "s2"), "")
			Code(t, s.ExpectPhoto(ctx, syncproto.PhotoRef{SHA256: a}, "s1"), "")
			p, err := s.Photo(ctx, a)
			Code(t, err, "")
			slices.Sort(p.Schools)
			if p.SHA256 != a || p.State != media.StateExpected || p.Size != 42 || p.ContentType != "image/jpeg" || !slices.Equal(p.Schools, []string{"s1", "s2"}) {
				t.Fatalf("expected photo = %+v", p)
			}
			Code(t, s.PhotoStored(ctx, a, media.Stored{Size: 40, ContentType: "image/png", At: t0, By: "u1"}), "")
			Code(t, s.PhotoStored(ctx, a, media.Stored{Size: 40, ContentType: "image/png", At: t0.Add(time.Hour), By: "u2"}), "")
			Code(t, s.ExpectPhoto(ctx, syncproto.PhotoRef{SHA256: a}, "s3"), "")
			p, err = s.Photo(ctx, a)
			Code(t, err, "")
			slices.Sort(p.Schools)
			if p.State != media.StateComplete || p.Size != 40 || p.ContentType != "image/png" || !p.StoredAt.Equal(t0) || p.UploadedBy != "u1" ||
				p.ThumbState != media.ThumbsPending || !slices.Equal(p.Schools, []string{"s1", "s2", "s3"}) {
				t.Fatalf("stored photo = %+v", p)
			}
		}},
		{"StoredBeforeExpected", func(t *testing.T, ctx context.Context, s media.MetaStore) {
			b := sha("b")
			Code(t, s.PhotoStored(ctx, b, media.Stored{Size: 7, ContentType: "image/webp", At: t0}), "")
			Code(t, s.ExpectPhoto(ctx, syncproto.PhotoRef{SHA256: b, Size: 99}, "s1"), "")
			p, err := s.Photo(ctx, b)
			Code(t, err, "")
			if p.State != media.StateComplete || p.Size != 7 || !slices.Equal(p.Schools, []string{"s1"}) {
				t.Fatalf("photo = %+v", p)
			}
		}},
		{"ThumbJobs", func(t *testing.T, ctx context.Context, s media.MetaStore) {
			c := sha("c")
			Code(t, s.PhotoStored(ctx, c, media.Stored{Size: 7, ContentType: "image/jpeg", At: t0}), "")
			_, err := s.ClaimThumbs(ctx, t0, time.Minute)
			Code(t, err, syncproto.ENOTFOUND)
			Code(t, s.QueueThumbs(ctx, c, "image/jpeg", t0), "")
			Code(t, s.QueueThumbs(ctx, c, "image/jpeg", t0), "")

			j1, err := s.ClaimThumbs(ctx, t0, time.Minute)
			Code(t, err, "")
			if j1.SHA256 != c || j1.ContentType != "image/jpeg" || j1.Attempts != 0 || !j1.Until.Equal(t0.Add(time.Minute)) {
				t.Fatalf("claimed %+v", j1)
			}
			_, err = s.ClaimThumbs(ctx, t0.Add(time.Second), time.Minute)
			Code(t, err, syncproto.ENOTFOUND) // leased, one job only

			Code(t, s.ThumbsRetry(ctx, j1, t0.Add(10*time.Minute), "store down"), "")
			Code(t, s.ThumbsRetry(ctx, j1, t0.Add(10*time.Minute), "again"), syncproto.ECONFLICT)
			_, err = s.ClaimThumbs(ctx, t0.Add(5*time.Minute), time.Minute)
			Code(t, err, syncproto.ENOTFOUND) // not due yet

			at := t0.Add(10 * time.Minute)
			j2, err := s.ClaimThumbs(ctx, at, time.Minute)
			Code(t, err, "")
			if j2.Attempts != 1 || j2.Unfinished != 0 || !j2.Until.Equal(at.Add(time.Minute)) {
				t.Fatalf("claimed again %+v", j2)
			}
			// The worker dies: once the lease is over another takes it.
			j3, err := s.ClaimThumbs(ctx, at.Add(2*time.Minute), time.Minute)
			Code(t, err, "")
			if j3.SHA256 != c || j3.Until.Equal(j2.Until) || j3.Unfinished != 1 {
				t.Fatalf("took over %+v (old lease %v)", j3, j2.Until)
			}
			lat, lon := 28.2282, 112.9388
			taken := time.Date(2026, 10, 8, 9, 30, 0, 0, time.FixedZone("CST", 8*3600))
			res := media.ThumbResult{State: media.ThumbsDone, Thumbs: map[string]string{"320": "thumbs/320", "1280": "thumbs/1280"},
				EXIF: media.EXIF{TakenAt: &taken, Raw: "2026:10:08 09:30:00", Lat: &lat, Lon: &lon, Orientation: 6}}
			Code(t, s.ThumbsDone(ctx, j2, res), syncproto.ECONFLICT) // the old lease
			Code(t, s.ThumbsDone(ctx, j3, res), "")
			_, err = s.ClaimThumbs(ctx, at.Add(time.Hour), time.Minute)
			Code(t, err, syncproto.ENOTFOUND)
			p, err := s.Photo(ctx, c)
			Code(t, err, "")
			if p.ThumbState != media.ThumbsDone || p.Thumbs["320"] != "thumbs/320" || p.Thumbs["1280"] != "thumbs/1280" ||
				p.EXIF.TakenAt == nil || !p.EXIF.TakenAt.Equal(taken) || p.EXIF.Raw != res.EXIF.Raw ||
				p.EXIF.Lat == nil || *p.EXIF.Lat != lat || p.EXIF.Lon == nil || *p.EXIF.Lon != lon || p.EXIF.Orientation != 6 {
				t.Fatalf("photo after thumbnails = %+v (exif %+v)", p, p.EXIF)
			}
		}},
		{"HoldersAndUnreferenced", func(t *testing.T, ctx context.Context, s media.MetaStore) {
			e, f := sha("e"), sha("f")
			Code(t, s.Vouch(ctx, e, "d-1", []string{"s1"}), syncproto.ENOTFOUND)
			Code(t, s.PhotoStored(ctx, e, media.Stored{Size: 7, ContentType: "image/jpeg", At: t0}), "")
			Code(t, s.PhotoStored(ctx, f, media.Stored{Size: 9, ContentType: "image/jpeg", At: t0}), "")
			Code(t, s.Vouch(ctx, e, "d-1", nil), "")
			Code(t, s.Vouch(ctx, e, "d-2", []string{"s1"}), "")
			Code(t, s.Vouch(ctx, e, "d-1", []string{"s1", "s2"}), "")
			p, err := s.Photo(ctx, e)
			Code(t, err, "")
			slices.Sort(p.Holders)
			slices.Sort(p.Vouched)
			if !slices.Equal(p.Holders, []string{"d-1", "d-2"}) || !slices.Equal(p.Vouched, []string{"s1", "s2"}) {
				t.Fatalf("photo = %+v", p)
			}
			un, err := s.Unreferenced(ctx, 10)
			Code(t, err, "")
			if len(un) != 2 {
				t.Fatalf("unreferenced = %+v", un)
			}
			Code(t, s.ExpectPhoto(ctx, syncproto.PhotoRef{SHA256: f}, "s1"), "")
			un, err = s.Unreferenced(ctx, 10)
			Code(t, err, "")
			if len(un) != 1 || un[0].SHA256 != e || un[0].Size != 7 || !slices.Contains(un[0].Holders, "d-1") {
				t.Fatalf("unreferenced after f is referred to = %+v", un)
			}
			gone, err := s.ForgetPhoto(ctx, f)
			Code(t, err, "")
			if gone {
				t.Fatal("forgot a referenced photo")
			}
			gone, err = s.ForgetPhoto(ctx, e)
			Code(t, err, "")
			if !gone {
				t.Fatal("kept an unreferenced photo")
			}
			_, err = s.Photo(ctx, e)
			Code(t, err, syncproto.ENOTFOUND)
		}},
		{"ThumbFailure", func(t *testing.T, ctx context.Context, s media.MetaStore) {
			d := sha("d")
			Code(t, s.PhotoStored(ctx, d, media.Stored{Size: 7, ContentType: "image/heic", At: t0}), "")
			Code(t, s.QueueThumbs(ctx, d, "image/heic", t0), "")
			j, err := s.ClaimThumbs(ctx, t0, time.Minute)
			Code(t, err, "")
			Code(t, s.ThumbsDone(ctx, j, media.ThumbResult{State: media.ThumbsFailed, Error: "decode: bad"}), "")
			p, err := s.Photo(ctx, d)
			Code(t, err, "")
			if p.ThumbState != media.ThumbsFailed || p.ThumbError != "decode: bad" || len(p.Thumbs) != 0 {
				t.Fatalf("photo = %+v", p)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, t.Context(), open(t))
		})
	}
}
