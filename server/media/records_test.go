package media_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

func principal(user string) server.Principal { return server.Principal{UserID: user} }

// base is the phone that writes the test records; each write works on its
// own copy, since parallel subtests share it (syncproto.Writer advances
// its clock in place).
var base = syncproto.Writer{Replica: syncproto.ReplicaID(uuid.New()), Author: "inspector-1", Now: time.Now()}

func writer() *syncproto.Writer { w := base; return &w }

// record returns a hazard record of school at revision rev whose "photos"
// field refers to the given photos, as a phone writes it.
func record(t *testing.T, school string, rev int64, shas ...string) *syncproto.Record {
	t.Helper()
	var refs []string
	for _, s := range shas {
		refs = append(refs, fmt.Sprintf(`{"sha256":%q,"size":1234,"content_type":"image/jpeg","taken_at":"2026-10-08T09:30:00+08:00"}`, s))
	}
	r := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "hazard", SchoolID: school, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	r, _ = syncproto.Set(r, "photos", []byte("["+strings.Join(refs, ",")+"]"), writer())
	r.Rev = rev
	return r
}

// withPhotos returns the next revision of r, referring to shas instead.
func withPhotos(t *testing.T, r *syncproto.Record, rev int64, shas ...string) *syncproto.Record {
	t.Helper()
	var refs []string
	for _, s := range shas {
		refs = append(refs, fmt.Sprintf(`{"sha256":%q}`, s))
	}
	next, _ := syncproto.Set(r, "photos", []byte("["+strings.Join(refs, ",")+"]"), writer())
	next.Rev = rev
	return next
}

// TestExpectAndMissing follows a record whose photos arrive after it: the
// review shows what is missing until everything has arrived.
func TestExpectAndMissing(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		e.access["reviewer"] = []string{"school-1"}
		e.access["stranger"] = []string{"school-2"}
		rng := rand.New(rand.NewPCG(21, 22))
		p1, p2, p3 := fakeJPEG(rng, 5000), fakeJPEG(rng, 6000), fakeJPEG(rng, 7000)
		s1, s2, s3 := mediatest.SHA256(p1), mediatest.SHA256(p2), mediatest.SHA256(p3)
		sorted := func(s ...string) []string { slices.Sort(s); return s }

		rec := record(t, "school-1", 1, s1, s2)
		id := rec.ID.String()
		check := func(name string, wantMissing []string, wantReceived int) {
			t.Helper()
			rp, err := svc.RecordPhotos(ctx, principal("reviewer"), id, "")
			mediatest.Code(t, err, "")
			if !slices.Equal(rp.Missing, wantMissing) || rp.Received != wantReceived ||
				rp.Expected != len(wantMissing)+wantReceived || rp.Complete != (len(wantMissing) == 0) || rp.SchoolID != "school-1" {
				t.Fatalf("%s: RecordPhotos = %+v, want missing %v and %d received", name, rp, wantMissing, wantReceived)
			}
		}

		mediatest.Code(t, svc.Expect(ctx, rec), "")
		mediatest.Code(t, svc.Expect(ctx, rec), "") // a duplicate push
		check("NothingArrived", sorted(s1, s2), 0)

		_, err := svc.Put(ctx, s2, p2, "image/jpeg")
		mediatest.Code(t, err, "")
		check("OneArrived", []string{s1}, 1)

		// The inspector replaces photo 1 by photo 3; a late copy of the
		// old revision changes nothing.
		rec2 := withPhotos(t, rec, 2, s2, s3)
		mediatest.Code(t, svc.Expect(ctx, rec2), "")
		mediatest.Code(t, svc.Expect(ctx, rec), "")
		check("Replaced", []string{s3}, 1)

		sendAll(t, svc, s3, p3, 2000)
		check("AllArrived", []string{}, 2)
		rp, err := svc.RecordPhotos(ctx, principal("reviewer"), id, "")
		mediatest.Code(t, err, "")
		for _, p := range rp.Photos {
			if !p.Received || p.StoredAt == nil || p.Thumbs != media.ThumbsPending || p.ContentType != media.TypeJPEG {
				t.Fatalf("photo status %+v", p)
			}
		}

		// Someone of another school learns nothing: the record's school
		// answers as a school without the record would, and without a
		// scope the record is one without photos.
		_, err = svc.RecordPhotos(ctx, principal("stranger"), id, "school-1")
		mediatest.Code(t, err, syncproto.ENOTFOUND)
		_, err = svc.RecordPhotos(ctx, principal("stranger"), uuid.NewString(), "school-1")
		mediatest.Code(t, err, syncproto.ENOTFOUND)
		if rp, err := svc.RecordPhotos(ctx, principal("stranger"), id, ""); err != nil || rp.Expected != 0 || rp.SchoolID != "" {
			t.Fatalf("a stranger without a scope: %+v, %v", rp, err)
		}
		if rp, err := svc.RecordPhotos(ctx, principal("reviewer"), id, "school-1"); err != nil || rp.Expected != 2 {
			t.Fatalf("the reviewer with the scope: %+v, %v", rp, err)
		}
		_, err = svc.RecordPhotos(ctx, principal("reviewer"), "not-an-id", "")
		mediatest.Code(t, err, syncproto.EINVALID)

		// A record the service never heard of has nothing missing.
		rp, err = svc.RecordPhotos(ctx, principal("stranger"), uuid.NewString(), "")
		mediatest.Code(t, err, "")
		if !rp.Complete || rp.Expected != 0 {
			t.Fatalf("unknown record: %+v", rp)
		}

		// A deleted record expects nothing.
		del, _ := syncproto.Delete(rec2, writer())
		del.Rev = 3
		mediatest.Code(t, svc.Expect(ctx, del), "")
		check("Deleted", []string{}, 0)
	})
}

// TestURL checks who gets links to a photo, and that the links work.
func TestURL(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		e.access["reviewer"] = []string{"school-1"}
		e.access["other-school"] = []string{"school-2"}
		data := fakeJPEG(rand.New(rand.NewPCG(23, 24)), 8000)
		sha := mediatest.SHA256(data)

		_, err := svc.URL(ctx, principal("reviewer"), sha, "original")
		mediatest.Code(t, err, syncproto.ENOTFOUND) // nobody refers to it

		_, err = svc.Put(ctx, sha, data, "image/jpeg")
		mediatest.Code(t, err, "")
		_, err = svc.URL(ctx, principal("reviewer"), sha, "original")
		mediatest.Code(t, err, syncproto.ENOTFOUND) // stored, but no record refers to it

		mediatest.Code(t, svc.Expect(ctx, record(t, "school-1", 1, sha)), "")
		u, err := svc.URL(ctx, principal("reviewer"), sha, "")
		mediatest.Code(t, err, "")
		if want := e.clock.Now().Add(media.DefaultURLLifetime); !u.ExpiresAt.Equal(want) {
			t.Errorf("expires at %v, want %v", u.ExpiresAt, want)
		}
		got, err := e.fetch(ctx, e.blobs, u.URL)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("fetch %s: %v (%d bytes)", u.URL, err, len(got))
		}

		tests := []struct {
			name, user, sha, variant, code string
		}{
			{"OtherSchool", "other-school", sha, "original", syncproto.ENOTFOUND},
			{"Nobody", "", sha, "original", syncproto.ENOTFOUND},
			{"BadVariant", "reviewer", sha, "640", syncproto.EINVALID},
			{"BadHash", "reviewer", "abc", "original", syncproto.EINVALID},
			{"ThumbnailNotMadeYet", "reviewer", sha, "320", syncproto.ENOTFOUND},
		}
		for _, tt := range tests {
			_, err := svc.URL(ctx, principal(tt.user), tt.sha, tt.variant)
			if got := syncproto.ErrorCode(err); got != tt.code {
				t.Errorf("%s: code %q (%v), want %q", tt.name, got, err, tt.code)
			}
		}

		// A second school's record referring to the same photo, pushed by
		// a holder of the photo (here the server itself), lets that
		// school's people see it too. (Records of devices that never sent
		// the photo do not: TestPhotosBelongToRecords.)
		mediatest.Code(t, svc.Expect(ctx, record(t, "school-2", 1, sha)), "")
		_, err = svc.URL(ctx, principal("other-school"), sha, "original")
		mediatest.Code(t, err, "")
	})
}

// TestExpectRecords checks the batch form the sync service calls after a
// push: records with and without photos, new and updated.
func TestExpectRecords(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		e.access["reviewer"] = []string{"school-1"}
		rng := rand.New(rand.NewPCG(25, 26))
		a, b := mediatest.SHA256(fakeJPEG(rng, 100)), mediatest.SHA256(fakeJPEG(rng, 100))
		plain, withA := record(t, "school-1", 1), record(t, "school-1", 1, a)
		mediatest.Code(t, svc.ExpectRecords(ctx, []*syncproto.Record{plain, withA}), "")
		missing := func(r *syncproto.Record) []string {
			t.Helper()
			rp, err := svc.RecordPhotos(ctx, principal("reviewer"), r.ID.String(), "")
			mediatest.Code(t, err, "")
			return rp.Missing
		}
		if got := missing(plain); len(got) != 0 {
			t.Fatalf("a record without photos misses %v", got)
		}
		if got := missing(withA); !slices.Equal(got, []string{a}) {
			t.Fatalf("missing %v, want [a]", got)
		}
		// The next revisions: photo b added to the first, every photo
		// removed from the second.
		plain2, withA2 := withPhotos(t, plain, 2, b), withPhotos(t, withA, 2)
		mediatest.Code(t, svc.ExpectRecords(ctx, []*syncproto.Record{plain2, withA2}), "")
		if got := missing(plain2); !slices.Equal(got, []string{b}) {
			t.Fatalf("missing %v, want [b]", got)
		}
		if got := missing(withA2); len(got) != 0 {
			t.Fatalf("a record whose photos were removed misses %v", got)
		}
	})
}
