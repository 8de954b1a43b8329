package media_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// TestResumeAtRandomCuts uploads a photo whose connection drops at 20
// random byte positions. After each cut the phone asks the server where it
// stands and goes on from there, through the other of two service
// instances (a restart, or another fieldsyncd behind the load balancer).
// At most the chunk in flight is sent again per cut, and the stored
// object is the photo, byte for byte.
func TestResumeAtRandomCuts(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		rng := rand.New(rand.NewPCG(6, 2026))
		data := fakeJPEG(rng, 1_300_000+rng.IntN(100_000))
		sha := mediatest.SHA256(data)
		const chunk = 64 << 10

		var cuts []int
		for len(cuts) < 20 {
			if c := 1 + rng.IntN(len(data)-1); !slices.Contains(cuts, c) {
				cuts = append(cuts, c)
			}
		}
		slices.Sort(cuts)

		procs := []*media.Service{e.process(), e.process()}
		sent := 0     // chunks sent, counting those lost
		inflight := 0 // offset of the chunk in flight at the last cut
		// Pass i runs until cut i, which drops the connection while the
		// chunk holding byte cuts[i] is in flight, or the first chunk
		// sent after it if that byte has arrived already.
		for i := 0; i <= len(cuts); i++ {
			svc := procs[i%2]
			st, err := svc.Status(ctx, sha)
			mediatest.Code(t, err, "")
			if int(st.Received) < inflight {
				t.Fatalf("cut %d: the server has %d bytes, but the chunk at %d was in flight: more than one chunk to send again", i, st.Received, inflight)
			}
			off := int(st.Received)
			for off < len(data) {
				end := min(off+chunk, len(data))
				sent++
				if i < len(cuts) && cuts[i] < end {
					// On odd cuts the server got the chunk and the answer
					// was lost; on even cuts the request never arrived
					// whole.
					if i%2 == 1 {
						_, err := svc.PutChunk(ctx, sha, int64(off), data[off:end])
						mediatest.Code(t, err, "")
					}
					inflight = off
					break
				}
				u, err := svc.PutChunk(ctx, sha, int64(off), data[off:end])
				mediatest.Code(t, err, "")
				if u.State != media.UploadPartial || int(u.Received) != end {
					t.Fatalf("after chunk at %d: %+v", off, u)
				}
				off = end
			}
			if i < len(cuts) && off >= len(data) {
				t.Fatalf("cut %d at byte %d did not happen", i, cuts[i])
			}
		}
		chunks := (len(data) + chunk - 1) / chunk
		if resent := sent - chunks; resent > len(cuts) {
			t.Fatalf("sent %d chunks for a %d-chunk photo: %d sent again for %d cuts", sent, chunks, resent, len(cuts))
		}
		t.Logf("%d-chunk photo, %d cuts: %d chunks sent", chunks, len(cuts), sent)
		u, err := procs[1].Finish(ctx, sha, int64(len(data)), "image/jpeg")
		mediatest.Code(t, err, "")
		if u.State != media.UploadComplete || u.Size != int64(len(data)) || u.ContentType != media.TypeJPEG {
			t.Fatalf("Finish = %+v", u)
		}
		got := stored(t, e.blobs, sha)
		equalBytes(t, got, data)
		if got := mediatest.SHA256(got); got != sha {
			t.Fatalf("stored object has sha256 %s, want %s", got, sha)
		}
		if keys := keysUnder(t, e.blobs, "staging/"); len(keys) != 0 {
			t.Fatalf("chunks left after Finish: %v", keys)
		}
		st, err := procs[0].Status(ctx, sha)
		mediatest.Code(t, err, "")
		if st.State != media.UploadComplete || st.Received != int64(len(data)) {
			t.Fatalf("Status after Finish = %+v", st)
		}
	})
}

// TestResumeInSecondProcess starts an upload in one service and finishes
// it in another, which holds no state of the first.
func TestResumeInSecondProcess(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		data := fakeJPEG(rand.New(rand.NewPCG(1, 2)), 700_000)
		sha := mediatest.SHA256(data)
		first := e.process()
		for off := 0; off < 400_000; off += 100_000 {
			_, err := first.PutChunk(ctx, sha, int64(off), data[off:off+100_000])
			mediatest.Code(t, err, "")
		}
		second := e.process()
		st, err := second.Status(ctx, sha)
		mediatest.Code(t, err, "")
		if st.State != media.UploadPartial || st.Received != 400_000 {
			t.Fatalf("second process sees %+v, want partial at 400000", st)
		}
		u := sendAll(t, second, sha, data, 100_000)
		if u.State != media.UploadComplete {
			t.Fatalf("%+v", u)
		}
		equalBytes(t, stored(t, e.blobs, sha), data)
	})
}

// TestRefused checks the uploads that must leave nothing behind: a wrong
// sha256, bytes that are not an image, a photo over the size limit.
func TestRefused(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	photo := fakeJPEG(rng, 300_000)
	other := fakeJPEG(rng, 300_000)
	text := []byte(strings.Repeat("This is a text file, not a photo of a hazard.\n", 4000))
	big := fakeJPEG(rng, 1<<20+1)
	tests := []struct {
		name string
		data []byte
		sha  string // the sha256 the phone claims
		code string
	}{
		{"WrongSHA256", photo, mediatest.SHA256(other), syncproto.EINVALID},
		{"TextPosingAsJPEG", text, mediatest.SHA256(text), syncproto.EUNSUPPORTED},
		{"TooLarge", big, mediatest.SHA256(big), syncproto.ETOOLARGE},
	}
	forEachBackend(t, media.Config{MaxBlobSize: 1 << 20}, func(t *testing.T, e *env) {
		svc := e.service()
		for _, tt := range tests {
			t.Run(tt.name+"/Chunked", func(t *testing.T) {
				ctx := t.Context()
				const chunk = 128 << 10
				var err error
				for off := 0; off < len(tt.data) && err == nil; off += chunk {
					_, err = svc.PutChunk(ctx, tt.sha, int64(off), tt.data[off:min(off+chunk, len(tt.data))])
				}
				if err == nil {
					_, err = svc.Finish(ctx, tt.sha, int64(len(tt.data)), "image/jpeg")
				}
				mediatest.Code(t, err, tt.code)
				if tt.code == syncproto.ETOOLARGE {
					// The chunk past the limit was refused; the phone
					// finishes anyway, declaring the size.
					_, err := svc.Finish(ctx, tt.sha, int64(len(tt.data)), "image/jpeg")
					mediatest.Code(t, err, syncproto.ETOOLARGE)
				}
				nothingLeft(t, e.blobs, tt.sha)
				st, err := svc.Status(ctx, tt.sha)
				mediatest.Code(t, err, "")
				if st.State != media.UploadMissing || st.Received != 0 {
					t.Fatalf("Status after refusal = %+v", st)
				}
			})
			t.Run(tt.name+"/Whole", func(t *testing.T) {
				_, err := svc.Put(t.Context(), tt.sha, tt.data, "image/jpeg")
				mediatest.Code(t, err, tt.code)
				nothingLeft(t, e.blobs, tt.sha)
			})
		}
	})
}

// TestAlreadyStored checks that a photo already stored is not uploaded
// again, whichever way the phone asks.
func TestAlreadyStored(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		data := fakeJPEG(rand.New(rand.NewPCG(5, 6)), 200_000)
		sha := mediatest.SHA256(data)
		u, err := svc.Put(ctx, sha, data, "image/jpeg")
		mediatest.Code(t, err, "")
		want := media.Upload{SHA256: sha, State: media.UploadComplete, Received: 200_000, Size: 200_000, ContentType: media.TypeJPEG, ChunkBytes: media.DefaultChunkBytes}
		if u != want {
			t.Fatalf("Put = %+v, want %+v", u, want)
		}
		calls := []struct {
			name string
			call func() (media.Upload, error)
		}{
			{"Status", func() (media.Upload, error) { return svc.Status(ctx, sha) }},
			{"PutChunk", func() (media.Upload, error) { return svc.PutChunk(ctx, sha, 0, data[:1000]) }},
			{"Finish", func() (media.Upload, error) { return svc.Finish(ctx, sha, 200_000, "") }},
			{"PutAgain", func() (media.Upload, error) { return svc.Put(ctx, sha, data, "image/jpeg") }},
		}
		for _, c := range calls {
			u, err := c.call()
			mediatest.Code(t, err, "")
			if u != want {
				t.Fatalf("%s = %+v, want %+v", c.name, u, want)
			}
			if keys := keysUnder(t, e.blobs, "staging/"); len(keys) != 0 {
				t.Fatalf("%s staged %v", c.name, keys)
			}
		}
		ph, err := e.meta.Photo(ctx, sha)
		mediatest.Code(t, err, "")
		if ph.State != media.StateComplete || ph.Size != 200_000 {
			t.Fatalf("photo = %+v", ph)
		}
	})
}

// TestChunkRules checks which offsets a chunk is accepted at.
func TestChunkRules(t *testing.T) {
	forEachBackend(t, media.Config{ChunkBytes: 100_000, MaxChunkBytes: 250_000}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		data := fakeJPEG(rand.New(rand.NewPCG(7, 8)), 500_000)
		sha := mediatest.SHA256(data)
		steps := []struct {
			name     string
			off, end int
			code     string
			received int64
		}{
			{"FirstChunk", 0, 100_000, "", 100_000},
			{"Gap", 200_000, 300_000, syncproto.ECONFLICT, 0},
			{"InsideAChunk", 50_000, 150_000, syncproto.ECONFLICT, 0},
			{"Next", 100_000, 200_000, "", 200_000},
			{"SameAgain", 100_000, 200_000, "", 200_000},
			{"ReplaceLastWithLonger", 100_000, 250_000, "", 250_000},
			{"Empty", 250_000, 250_000, syncproto.EINVALID, 0},
			{"TooBig", 250_000, 500_000 + 1, syncproto.ETOOLARGE, 0},
			{"Rest", 250_000, 500_000, "", 500_000},
		}
		payload := append(slices.Clone(data), 0)
		for _, s := range steps {
			u, err := svc.PutChunk(ctx, sha, int64(s.off), payload[s.off:s.end])
			mediatest.Code(t, err, s.code)
			if s.code == "" && u.Received != s.received {
				t.Fatalf("%s: received %d, want %d", s.name, u.Received, s.received)
			}
		}
		_, err := svc.PutChunk(ctx, "NOTAHASH", 0, data[:10])
		mediatest.Code(t, err, syncproto.EINVALID)
		_, err = svc.PutChunk(ctx, sha, -1, data[:10])
		mediatest.Code(t, err, syncproto.EINVALID)

		u, err := svc.Finish(ctx, sha, int64(len(data)), "image/jpeg")
		mediatest.Code(t, err, "")
		if u.State != media.UploadComplete {
			t.Fatalf("%+v", u)
		}
		equalBytes(t, stored(t, e.blobs, sha), data)
	})
}

// TestOverlappingChunks checks an upload sent by two phones with different
// chunk sizes: the chunks overlap, and the photo is still assembled right.
func TestOverlappingChunks(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		data := fakeJPEG(rand.New(rand.NewPCG(9, 10)), 400_000)
		sha := mediatest.SHA256(data)
		put := func(off, end int) {
			t.Helper()
			_, err := svc.PutChunk(ctx, sha, int64(off), data[off:end])
			mediatest.Code(t, err, "")
		}
		put(0, 100_000)       // phone A
		put(100_000, 200_000) // phone A
		put(0, 150_000)       // phone B, which started before it saw A's chunks
		put(200_000, 300_000) // phone A
		put(100_000, 400_000) // phone B resends from a chunk start it knows
		u, err := svc.Finish(ctx, sha, int64(len(data)), "")
		mediatest.Code(t, err, "")
		if u.State != media.UploadComplete {
			t.Fatalf("%+v", u)
		}
		equalBytes(t, stored(t, e.blobs, sha), data)
	})
}

// TestFinishEarly checks that finishing before every byte arrived keeps
// the chunks, and says where to go on.
func TestFinishEarly(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		data := fakeJPEG(rand.New(rand.NewPCG(11, 12)), 300_000)
		sha := mediatest.SHA256(data)
		_, err := svc.PutChunk(ctx, sha, 0, data[:100_000])
		mediatest.Code(t, err, "")
		_, err = svc.Finish(ctx, sha, 300_000, "image/jpeg")
		mediatest.Code(t, err, syncproto.ECONFLICT)
		if msg := syncproto.ErrorMessage(err); !strings.Contains(msg, "offset 100000") {
			t.Errorf("message %q does not say where to go on", msg)
		}
		_, err = svc.Finish(ctx, sha, 0, "image/jpeg")
		mediatest.Code(t, err, syncproto.EINVALID)
		u := sendAll(t, svc, sha, data, 100_000)
		if u.State != media.UploadComplete {
			t.Fatalf("%+v", u)
		}
		// A size smaller than what arrived is a phone's mistake: the
		// chunks go, and the phone starts over.
		data2 := fakeJPEG(rand.New(rand.NewPCG(13, 14)), 200_000)
		sha2 := mediatest.SHA256(data2)
		_, err = svc.PutChunk(ctx, sha2, 0, data2)
		mediatest.Code(t, err, "")
		_, err = svc.Finish(ctx, sha2, 100_000, "image/jpeg")
		mediatest.Code(t, err, syncproto.EINVALID)
		nothingLeft(t, e.blobs, sha2)
	})
}

// TestStoreDown checks that with the object store unreachable every photo
// call fails with EUNAVAILABLE (503 with Retry-After in the API) and
// record bookkeeping goes on; once the store is back the same upload
// completes.
func TestStoreDown(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		up := e.service()
		data := fakeJPEG(rand.New(rand.NewPCG(15, 16)), 300_000)
		sha := mediatest.SHA256(data)
		_, err := up.PutChunk(ctx, sha, 0, data[:100_000])
		mediatest.Code(t, err, "")

		down := e.down()
		calls := []struct {
			name string
			call func() error
		}{
			{"Status", func() error { _, err := down.Status(ctx, sha); return err }},
			{"PutChunk", func() error { _, err := down.PutChunk(ctx, sha, 100_000, data[100_000:200_000]); return err }},
			{"Finish", func() error { _, err := down.Finish(ctx, sha, 300_000, ""); return err }},
			{"Put", func() error { _, err := down.Put(ctx, sha, data, ""); return err }},
		}
		for _, c := range calls {
			mediatest.Code(t, c.call(), syncproto.EUNAVAILABLE)
		}
		rec := record(t, "school-1", 1, sha)
		mediatest.Code(t, down.Expect(ctx, rec), "")
		e.access["office"] = []string{"school-1"}
		rp, err := down.RecordPhotos(ctx, principal("office"), rec.ID.String(), "")
		mediatest.Code(t, err, "")
		if rp.Complete || !slices.Equal(rp.Missing, []string{sha}) {
			t.Fatalf("RecordPhotos = %+v", rp)
		}

		u := sendAll(t, up, sha, data, 100_000)
		if u.State != media.UploadComplete {
			t.Fatalf("%+v", u)
		}
		equalBytes(t, stored(t, e.blobs, sha), data)
	})
}

// TestSweep checks that the chunks of an upload nobody finishes are
// removed after the staging TTL, and not before.
func TestSweep(t *testing.T) {
	forEachBackend(t, media.Config{StagingTTL: 48 * time.Hour}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		data := fakeJPEG(rand.New(rand.NewPCG(17, 18)), 1000)
		_, err := svc.PutChunk(ctx, mediatest.SHA256(data), 0, data[:500])
		mediatest.Code(t, err, "")
		e.clock.Advance(47 * time.Hour)
		mediatest.Code(t, svc.Sweep(ctx), "")
		if n := len(keysUnder(t, e.blobs, "staging/")); n != 1 {
			t.Fatalf("%d chunks after a sweep within the TTL, want 1", n)
		}
		e.clock.Advance(2 * time.Hour)
		mediatest.Code(t, svc.Sweep(ctx), "")
		if keys := keysUnder(t, e.blobs, "staging/"); len(keys) != 0 {
			t.Fatalf("chunks after the TTL: %v", keys)
		}
	})
}

// flakyMeta fails PhotoStored while fail is set, like a database that
// goes away between the object store's answer and the bookkeeping.
type flakyMeta struct {
	media.MetaStore
	fail atomic.Bool
}

func (f *flakyMeta) PhotoStored(ctx context.Context, sha string, st media.Stored) error {
	if f.fail.Load() {
		return syncproto.Errorf(syncproto.EUNAVAILABLE, "The database is unavailable; try again later.")
	}
	return f.MetaStore.PhotoStored(ctx, sha, st)
}

// TestStoredButNotRecorded checks the repair of a photo stored in MinIO
// whose bookkeeping failed: the phone got an error, asks again, hears
// "complete", and by then the photo is complete in the MetaStore too.
func TestStoredButNotRecorded(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		meta := &flakyMeta{MetaStore: e.meta}
		svc := media.New(e.blobs, meta, e.access, e.cfg, nil)
		data := fakeJPEG(rand.New(rand.NewPCG(51, 52)), 20_000)
		sha := mediatest.SHA256(data)
		mediatest.Code(t, svc.Expect(ctx, record(t, "school-1", 1, sha)), "")

		meta.fail.Store(true)
		_, err := svc.Put(ctx, sha, data, "image/jpeg")
		mediatest.Code(t, err, syncproto.EUNAVAILABLE)
		_, err = svc.Status(ctx, sha)
		mediatest.Code(t, err, syncproto.EUNAVAILABLE) // no "complete" while it cannot be recorded
		meta.fail.Store(false)

		u, err := svc.Status(ctx, sha)
		mediatest.Code(t, err, "")
		if u.State != media.UploadComplete {
			t.Fatalf("Status = %+v", u)
		}
		ph, err := e.meta.Photo(ctx, sha)
		mediatest.Code(t, err, "")
		if ph.State != media.StateComplete || ph.ThumbState != media.ThumbsPending {
			t.Fatalf("photo after the repair = %+v", ph)
		}
		if worked, err := svc.ThumbOnce(ctx); !worked {
			t.Fatalf("no thumbnail job after the repair (%v)", err)
		}
	})
}
