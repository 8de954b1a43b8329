package media_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// memService returns a service on in-memory stores, and its MetaStore,
// whose calls the test counts.
func memService(t *testing.T) (*media.Service, *mediatest.Meta, *env) {
	t.Helper()
	e := openMem(t, media.Config{})
	return e.service(), e.meta.(*mediatest.Meta), e
}

// fakeSHA is the sha256 of photo i of a test batch.
func fakeSHA(i int) string { return mediatest.SHA256(fmt.Appendf(nil, "photo %d", i)) }

// TestExpectRecordsBatchCalls checks that the photo bookkeeping of a push
// batch costs a bounded number of MetaStore calls whatever the number of
// hazards in it (a read of the batch's entries, a write of the photos
// new to their records, a write of the entries that change), and that
// hazards pushed again unchanged, or updated without a change to their
// photos, write nothing.
func TestExpectRecordsBatchCalls(t *testing.T) {
	for _, n := range []int{1, 25, 300} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			svc, meta, e := memService(t)
			e.access["reviewer"] = []string{"school-1"}
			ctx := newPhone(t, "alice").ctx
			var v1, v2, v3 []*syncproto.Record
			for i := range n {
				// 2–6 photos each, some shared between hazards.
				var shas []string
				for j := range 2 + i%5 {
					shas = append(shas, fakeSHA(i+j))
				}
				slices.Sort(shas)
				r := withPhotos(t, record(t, "school-1", 1), 1, shas...)
				v1 = append(v1, r)
				v2 = append(v2, withPhotos(t, r, 2, shas...))
				v3 = append(v3, withPhotos(t, r, 3, append(slices.Clone(shas), fakeSHA(-1-i))...))
			}
			// Records without photos in between cost nothing.
			plain := func(rs []*syncproto.Record) []*syncproto.Record {
				out := slices.Clone(rs)
				for range n {
					out = append(out, record(t, "school-1", 1))
				}
				return out
			}
			steps := []struct {
				name   string
				states []*syncproto.Record
				want   map[string]int
			}{
				{"new hazards", plain(v1), map[string]int{"Records": 1, "NotePhotos": 1, "PutRecords": 1}},
				{"the same batch again", plain(v1), map[string]int{"Records": 1}},
				{"updated, photos unchanged", v2, map[string]int{"Records": 1}},
				{"updated, unchanged, again", v2, map[string]int{"Records": 1}},
				{"a photo added to each", v3, map[string]int{"Records": 1, "NotePhotos": 1, "PutRecords": 1}},
			}
			for _, s := range steps {
				meta.ResetCalls()
				mediatest.Code(t, svc.ExpectRecords(ctx, s.states), "")
				if got := meta.Calls(); !maps.Equal(got, s.want) {
					t.Fatalf("%s: calls %v, want %v", s.name, got, s.want)
				}
			}
			// What a reviewer sees is what the records name.
			for i, r := range v3 {
				rp, err := svc.RecordPhotos(ctx, principal("reviewer"), r.ID.String(), "school-1")
				mediatest.Code(t, err, "")
				if rp.Expected != 3+i%5 || len(rp.Missing) != rp.Expected || !slices.Contains(rp.Missing, fakeSHA(-1-i)) {
					t.Fatalf("hazard %d: %+v", i, rp)
				}
			}
		})
	}
}

// TestExpectRecordsAsExpect checks that a batch leaves the MetaStore as
// Expect called for each state in turn does: the same records, photos,
// schools and vouching (a pusher that holds a photo vouches for its
// school, one that does not vouches for nothing), with stale states,
// duplicates and the same record twice in a batch.
func TestExpectRecordsAsExpect(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, allEnv *env) {
		expectRecordsAsExpect(t, allEnv)
	})
}

func expectRecordsAsExpect(t *testing.T, allEnv *env) {
	rng := rand.New(rand.NewPCG(81, 82))
	var photos [][]byte
	var shas []string
	for range 8 {
		p := fakeJPEG(rng, 3000)
		photos, shas = append(photos, p), append(shas, mediatest.SHA256(p))
	}
	a := record(t, "school-1", 1, shas[0], shas[1])
	b := record(t, "school-2", 1, shas[1], shas[2])
	c := record(t, "school-1", 1)
	batches := []struct {
		name   string
		pusher string
		states []*syncproto.Record
	}{
		{"first", "alice", []*syncproto.Record{a, b, c}},
		{"by one who holds nothing", "mallory", []*syncproto.Record{withPhotos(t, b, 2, shas[2], shas[3])}},
		{"updates, a stale state, a record twice", "alice", []*syncproto.Record{
			withPhotos(t, a, 2, shas[0], shas[1]), withPhotos(t, c, 3, shas[4]), withPhotos(t, c, 2, shas[5]),
			withPhotos(t, b, 3, shas[3], shas[5]), withPhotos(t, b, 1, shas[7]),
		}},
		{"again", "alice", []*syncproto.Record{withPhotos(t, a, 2, shas[0], shas[1]), withPhotos(t, c, 3, shas[4])}},
		{"deleted", "alice", []*syncproto.Record{deleted(t, a, 4)}},
	}
	one, oneMeta, oneEnv := memService(t)
	all, allMeta := allEnv.service(), allEnv.meta
	for _, e := range []*env{oneEnv, allEnv} {
		e.access["alice"] = []string{"school-1", "school-2"}
		e.access["mallory"] = []string{"school-2"}
	}
	alice := newPhone(t, "alice")
	phones := map[string]phone{"alice": alice, "mallory": newPhone(t, "mallory")}
	for _, svc := range []*media.Service{one, all} {
		for i := range 6 { // alice holds photos 0–5
			_, err := svc.Put(alice.ctx, shas[i], photos[i], "image/jpeg")
			mediatest.Code(t, err, "")
		}
	}
	for _, bt := range batches {
		ctx := phones[bt.pusher].ctx
		for _, r := range bt.states {
			mediatest.Code(t, one.Expect(ctx, r), "")
		}
		mediatest.Code(t, all.ExpectRecords(ctx, bt.states), "")
		for _, r := range []*syncproto.Record{a, b, c} {
			want, werr := oneMeta.Record(t.Context(), r.SchoolID, r.ID.String())
			got, gerr := allMeta.Record(t.Context(), r.SchoolID, r.ID.String())
			if syncproto.ErrorCode(werr) != syncproto.ErrorCode(gerr) || !slices.Equal(want.Photos, got.Photos) || !slices.Equal(want.Attachments, got.Attachments) {
				t.Fatalf("%s: record %s: batch %+v (%v), one by one %+v (%v)", bt.name, r.ID, got, gerr, want, werr)
			}
		}
		for i, sha := range shas {
			want, werr := oneMeta.Photo(t.Context(), sha)
			got, gerr := allMeta.Photo(t.Context(), sha)
			slices.Sort(want.Schools)
			slices.Sort(got.Schools)
			slices.Sort(want.Vouched)
			slices.Sort(got.Vouched)
			same := want.State == got.State && slices.Equal(want.Schools, got.Schools) && slices.Equal(want.Vouched, got.Vouched) &&
				want.Size == got.Size && want.ContentType == got.ContentType
			if syncproto.ErrorCode(werr) != syncproto.ErrorCode(gerr) || !same {
				t.Fatalf("%s: photo %d: batch %+v (%v), one by one %+v (%v)", bt.name, i, got, gerr, want, werr)
			}
		}
	}
	// Alice holds photo 0 and named it in school-1; mallory named photo
	// 3 in school-2 without holding it.
	p0, err := allMeta.Photo(t.Context(), shas[0])
	mediatest.Code(t, err, "")
	p3, err := allMeta.Photo(t.Context(), shas[3])
	mediatest.Code(t, err, "")
	if !slices.Contains(p0.Vouched, "school-1") || slices.Contains(p3.Vouched, "school-2") {
		t.Fatalf("vouched: photo 0 %v, photo 3 %v", p0.Vouched, p3.Vouched)
	}
}

// deleted returns revision rev of r, deleted.
func deleted(t *testing.T, r *syncproto.Record, rev int64) *syncproto.Record {
	t.Helper()
	d, _ := syncproto.Delete(r, writer())
	d.Rev = rev
	return d
}

// TestExpectRecordsConcurrent pushes revisions of one hazard in batches
// at once, as phones and retries do: whichever order the batches run
// in, the record ends up expecting the photos of its newest revision.
func TestExpectRecordsConcurrent(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := newPhone(t, "alice").ctx
		r := record(t, "school-1", 1, fakeSHA(0))
		other := record(t, "school-1", 1, fakeSHA(100))
		done := make(chan error)
		const revs = 8
		for rev := int64(2); rev < 2+revs; rev++ {
			svc := e.service()
			go func() {
				states := []*syncproto.Record{withPhotos(t, r, rev, fakeSHA(int(rev))), withPhotos(t, other, rev, fakeSHA(100))}
				done <- svc.ExpectRecords(ctx, states)
			}()
		}
		for range revs {
			mediatest.Code(t, <-done, "")
		}
		got, err := e.meta.Record(t.Context(), "school-1", r.ID.String())
		mediatest.Code(t, err, "")
		if want := fakeSHA(1 + revs); len(got.Photos) != 1 || got.Photos[0].SHA256 != want || got.Rev != 1+revs {
			t.Fatalf("after concurrent batches: %+v, want rev %d with photo %s", got, 1+revs, want)
		}
		if o, err := e.meta.Record(t.Context(), "school-1", other.ID.String()); err != nil || len(o.Photos) != 1 {
			t.Fatalf("the other record: %+v, %v", o, err)
		}
	})
}

// staleMeta answers Records as if no entry existed, as a read that
// raced another writer would: every write the batch then tries loses its
// compare-and-set.
type staleMeta struct{ *mediatest.Meta }

func (staleMeta) Records(context.Context, []media.RecordKey) (map[media.RecordKey]media.RecordRefs, error) {
	return map[media.RecordKey]media.RecordRefs{}, nil
}

// TestExpectRecordsLostRace checks that a batch whose writes lose their
// compare-and-set goes through Expect again and ends as it should: the
// newer state noted, an older one ignored.
func TestExpectRecordsLostRace(t *testing.T) {
	meta := mediatest.NewMeta()
	e := newEnv(media.Config{})
	svc := media.New(mediatest.NewBlobs(), staleMeta{meta}, e.access, e.cfg, testenv.Logger(t))
	ctx := newPhone(t, "alice").ctx
	r := record(t, "school-1", 1, fakeSHA(1))
	mediatest.Code(t, svc.ExpectRecords(ctx, []*syncproto.Record{r}), "")
	cases := []struct {
		name  string
		state *syncproto.Record
		want  string
		rev   int64
	}{
		{"newer", withPhotos(t, r, 3, fakeSHA(3)), fakeSHA(3), 3},
		{"older", withPhotos(t, r, 2, fakeSHA(2)), fakeSHA(3), 3},
	}
	for _, c := range cases {
		meta.ResetCalls()
		mediatest.Code(t, svc.ExpectRecords(ctx, []*syncproto.Record{c.state}), "")
		got, err := meta.Record(t.Context(), "school-1", r.ID.String())
		mediatest.Code(t, err, "")
		if len(got.Photos) != 1 || got.Photos[0].SHA256 != c.want || got.Rev != c.rev {
			t.Fatalf("%s: %+v, want rev %d with %s", c.name, got, c.rev, c.want)
		}
		if calls := meta.Calls(); calls["PutRecords"] != 1 || calls["Record"] == 0 {
			t.Fatalf("%s: calls %v, want a lost PutRecords and Expect's read", c.name, calls)
		}
	}
}
