package media_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// phone is an enrolled device of an inspector: the context its requests
// run in, as the API makes it.
type phone struct {
	p   server.Principal
	ctx context.Context
}

func newPhone(t *testing.T, user string) phone {
	p := server.Principal{DeviceID: uuid.New(), UserID: user, InspectorID: user}
	return phone{p: p, ctx: server.WithPrincipal(t.Context(), p)}
}

// TestUploadsBelongToUploaders checks that an upload is its uploader's:
// a device of another school that knows the sha256 sees nothing of it,
// cannot overwrite its chunks or finish it with a wrong size, and the
// owner's upload completes as if nothing happened; and that two devices
// sending the same photo both succeed.
func TestUploadsBelongToUploaders(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		svc := e.service()
		e.access["alice"] = []string{"school-1"}
		e.access["mallory"] = []string{"school-2"}
		alice, mallory := newPhone(t, "alice"), newPhone(t, "mallory")
		data := fakeJPEG(rand.New(rand.NewPCG(61, 62)), 9000)
		sha := mediatest.SHA256(data)

		u, err := svc.PutChunk(alice.ctx, sha, 0, data[:4000])
		mediatest.Code(t, err, "")
		if u.Received != 4000 {
			t.Fatalf("alice's first chunk: %+v", u)
		}
		// Mallory sees no upload, and her chunk 0 and finish touch only
		// her own.
		if u, err := svc.Status(mallory.ctx, sha); err != nil || u.State != media.UploadMissing {
			t.Fatalf("mallory's status: %+v, %v", u, err)
		}
		_, err = svc.PutChunk(mallory.ctx, sha, 0, []byte("\xff\xd8\xffjunk"))
		mediatest.Code(t, err, "")
		_, err = svc.Finish(mallory.ctx, sha, 1, "image/jpeg")
		mediatest.Code(t, err, syncproto.EINVALID) // her 7 bytes are more than 1
		if u, err := svc.Status(alice.ctx, sha); err != nil || u.State != media.UploadPartial || u.Received != 4000 {
			t.Fatalf("alice's status after mallory: %+v, %v", u, err)
		}
		u, err = svc.PutChunk(alice.ctx, sha, 4000, data[4000:])
		mediatest.Code(t, err, "")
		u, err = svc.Finish(alice.ctx, sha, int64(len(data)), "image/jpeg")
		mediatest.Code(t, err, "")
		if u.State != media.UploadComplete {
			t.Fatalf("alice's finish: %+v", u)
		}

		// Stored: still nothing for Mallory, who must send the bytes.
		if u, err := svc.Status(mallory.ctx, sha); err != nil || u.State != media.UploadMissing {
			t.Fatalf("mallory's status of a stored photo: %+v, %v", u, err)
		}
		// Bob, alice's colleague, has the same photo and sends it too:
		// whole, or in chunks; both complete.
		bob, carol := newPhone(t, "bob"), newPhone(t, "carol")
		e.access["bob"], e.access["carol"] = []string{"school-1"}, []string{"school-1"}
		if u, err := svc.Put(bob.ctx, sha, data, "image/jpeg"); err != nil || u.State != media.UploadComplete {
			t.Fatalf("bob's put: %+v, %v", u, err)
		}
		_, err = svc.PutChunk(carol.ctx, sha, 0, data[:5000])
		mediatest.Code(t, err, "")
		_, err = svc.PutChunk(carol.ctx, sha, 5000, data[5000:])
		mediatest.Code(t, err, "")
		if u, err := svc.Finish(carol.ctx, sha, int64(len(data)), "image/jpeg"); err != nil || u.State != media.UploadComplete {
			t.Fatalf("carol's finish: %+v, %v", u, err)
		}
		// And now each of them holds it.
		for _, who := range []phone{alice, bob, carol} {
			if u, err := svc.Status(who.ctx, sha); err != nil || u.State != media.UploadComplete {
				t.Fatalf("%s's status: %+v, %v", who.p.UserID, u, err)
			}
		}
		// The admin token sees the photo as stored, without sending it.
		admin := server.WithPrincipal(t.Context(), server.Principal{UserID: "admin", Automation: true, Roles: []string{"admin"}})
		if u, err := svc.Status(admin, sha); err != nil || u.State != media.UploadComplete {
			t.Fatalf("the admin's status: %+v, %v", u, err)
		}
		ph, err := e.meta.Photo(t.Context(), sha)
		mediatest.Code(t, err, "")
		if len(ph.Holders) != 3 {
			t.Fatalf("holders %v", ph.Holders)
		}
	})
}

// TestPhotosBelongToRecords checks that a photo is read only through a
// record of a school the reader sees, whose photo was sent by someone
// allowed there: a record that names another school's sha256 yields no
// link and no metadata, with the same answer as for a photo that does
// not exist; and that a record id reused in another school does not take
// over the first record's photos.
func TestPhotosBelongToRecords(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		svc := e.service()
		e.access["alice"] = []string{"school-1"}
		e.access["mallory"] = []string{"school-2"}
		alice, mallory := newPhone(t, "alice"), newPhone(t, "mallory")
		data := fakeJPEG(rand.New(rand.NewPCG(63, 64)), 7000)
		sha := mediatest.SHA256(data)
		nosuch := mediatest.SHA256([]byte("no such photo"))

		rec := record(t, "school-1", 1, sha)
		mediatest.Code(t, svc.Expect(alice.ctx, rec), "")
		_, err := svc.Put(alice.ctx, sha, data, "image/jpeg")
		mediatest.Code(t, err, "")
		if _, err := svc.URL(alice.ctx, alice.p, sha, ""); err != nil {
			t.Fatalf("alice's link: %v", err)
		}

		// Mallory pushes a record of her school naming alice's photo,
		// reusing the record's id too.
		forged := record(t, "school-2", 1, sha)
		forged.ID = rec.ID
		mediatest.Code(t, svc.Expect(mallory.ctx, forged), "")
		_, errTheirs := svc.URL(mallory.ctx, mallory.p, sha, "")
		_, errNone := svc.URL(mallory.ctx, mallory.p, nosuch, "")
		mediatest.Code(t, errTheirs, syncproto.ENOTFOUND)
		if strings.ReplaceAll(syncproto.ErrorMessage(errTheirs), sha, "X") != strings.ReplaceAll(syncproto.ErrorMessage(errNone), nosuch, "X") {
			t.Fatalf("the answers differ: %q and %q", syncproto.ErrorMessage(errTheirs), syncproto.ErrorMessage(errNone))
		}
		rp, err := svc.RecordPhotos(mallory.ctx, mallory.p, rec.ID.String(), "school-2")
		mediatest.Code(t, err, "")
		if rp.Received != 0 || len(rp.Missing) != 1 || rp.Photos[0].TakenAt != nil || rp.Photos[0].StoredAt != nil {
			t.Fatalf("mallory's record shows alice's photo: %+v", rp)
		}
		// Alice's record keeps its photo, whatever the other school's
		// record of the same id says.
		rp, err = svc.RecordPhotos(alice.ctx, alice.p, rec.ID.String(), "school-1")
		mediatest.Code(t, err, "")
		if rp.SchoolID != "school-1" || rp.Received != 1 || !rp.Complete {
			t.Fatalf("alice's record: %+v", rp)
		}
		rp, err = svc.RecordPhotos(alice.ctx, alice.p, rec.ID.String(), "")
		mediatest.Code(t, err, "")
		if rp.SchoolID != "school-1" || rp.Received != 1 {
			t.Fatalf("alice's record without a scope: %+v", rp)
		}

		// A colleague of alice's sees it through the record; once
		// mallory sends the bytes herself, her record shows them.
		e.access["bob"] = []string{"school-1"}
		bob := newPhone(t, "bob")
		if _, err := svc.URL(bob.ctx, bob.p, sha, ""); err != nil {
			t.Fatalf("bob's link: %v", err)
		}
		_, err = svc.Put(mallory.ctx, sha, data, "image/jpeg")
		mediatest.Code(t, err, "")
		if _, err := svc.URL(mallory.ctx, mallory.p, sha, ""); err != nil {
			t.Fatalf("mallory's link after sending the photo: %v", err)
		}
	})
}

// TestDeviceQuota checks that a device holds at most DeviceQuota bytes in
// unfinished uploads and unreferenced photos, and that a record referring
// to its photos frees its quota; other devices are not affected.
func TestDeviceQuota(t *testing.T) {
	forEachBackend(t, media.Config{DeviceQuota: 10_000}, func(t *testing.T, e *env) {
		svc := e.service()
		e.access["alice"] = []string{"school-1"}
		alice, bob := newPhone(t, "alice"), newPhone(t, "bob")
		rng := rand.New(rand.NewPCG(65, 66))
		p1, p2, p3 := fakeJPEG(rng, 6000), fakeJPEG(rng, 6000), fakeJPEG(rng, 3000)
		s1, s2, s3 := mediatest.SHA256(p1), mediatest.SHA256(p2), mediatest.SHA256(p3)

		_, err := svc.Put(alice.ctx, s1, p1, "image/jpeg")
		mediatest.Code(t, err, "")
		_, err = svc.Put(alice.ctx, s2, p2, "image/jpeg")
		mediatest.Code(t, err, syncproto.ETOOLARGE)
		_, err = svc.PutChunk(alice.ctx, s2, 0, p2[:3000])
		mediatest.Code(t, err, "")
		_, err = svc.PutChunk(alice.ctx, s2, 3000, p2[3000:])
		mediatest.Code(t, err, syncproto.ETOOLARGE) // 6000 + 3000 + 3000
		_, err = svc.Put(bob.ctx, s3, p3, "image/jpeg")
		mediatest.Code(t, err, "") // bob's quota is his own

		mediatest.Code(t, svc.Expect(alice.ctx, record(t, "school-1", 1, s1)), "")
		_, err = svc.PutChunk(alice.ctx, s2, 3000, p2[3000:])
		mediatest.Code(t, err, "")
		if u, err := svc.Finish(alice.ctx, s2, int64(len(p2)), "image/jpeg"); err != nil || u.State != media.UploadComplete {
			t.Fatalf("finish after the record came: %+v, %v", u, err)
		}
	})
}

// TestUnreferencedExpire checks that photos no record refers to are
// removed after UnreferencedTTL, and referred ones kept.
func TestUnreferencedExpire(t *testing.T) {
	forEachBackend(t, media.Config{UnreferencedTTL: 24 * time.Hour}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		e.access["alice"] = []string{"school-1"}
		alice := newPhone(t, "alice")
		rng := rand.New(rand.NewPCG(67, 68))
		kept, lost := fakeJPEG(rng, 3000), fakeJPEG(rng, 3000)
		sk, sl := mediatest.SHA256(kept), mediatest.SHA256(lost)
		mediatest.Code(t, svc.Expect(alice.ctx, record(t, "school-1", 1, sk)), "")
		for sha, data := range map[string][]byte{sk: kept, sl: lost} {
			_, err := svc.Put(alice.ctx, sha, data, "image/jpeg")
			mediatest.Code(t, err, "")
		}
		if n, err := svc.ExpireUnreferenced(ctx); n != 0 || err != nil {
			t.Fatalf("expired %d (%v) at once", n, err)
		}
		e.clock.Advance(25 * time.Hour)
		if n, err := svc.ExpireUnreferenced(ctx); n != 1 || err != nil {
			t.Fatalf("expired %d (%v), want 1", n, err)
		}
		_, err := e.blobs.Stat(ctx, "photos/"+sl[:2]+"/"+sl)
		mediatest.Code(t, err, syncproto.ENOTFOUND)
		if u, err := svc.Status(alice.ctx, sl); err != nil || u.State != media.UploadMissing {
			t.Fatalf("status of the expired photo: %+v, %v", u, err)
		}
		if u, err := svc.Status(alice.ctx, sk); err != nil || u.State != media.UploadComplete {
			t.Fatalf("status of the kept photo: %+v, %v", u, err)
		}
	})
}

// TestUploadMeetsRecord races an upload's finish against the push of the
// record that names the photo (the phone's retry after a lost answer, or
// two processes): whichever order the store sees, the photo ends up
// visible through the record. A vouch that reads before it writes lost
// this race in the fault suite.
func TestUploadMeetsRecord(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		svc := e.service()
		rng := rand.New(rand.NewPCG(71, 72))
		for i := range 20 {
			user := fmt.Sprintf("insp-%d", i)
			e.access[user] = []string{"school-1"}
			ph := newPhone(t, user)
			data := fakeJPEG(rng, 3000+i)
			sha := mediatest.SHA256(data)
			rec := record(t, "school-1", 1, sha)
			var wg sync.WaitGroup
			var errPut, errExpect error
			wg.Go(func() { _, errPut = svc.Put(ph.ctx, sha, data, "image/jpeg") })
			wg.Go(func() { errExpect = svc.ExpectRecords(ph.ctx, []*syncproto.Record{rec}) })
			wg.Wait()
			mediatest.Code(t, errPut, "")
			mediatest.Code(t, errExpect, "")
			if _, err := svc.URL(ph.ctx, ph.p, sha, ""); err != nil {
				t.Fatalf("round %d: the uploader's link: %v", i, err)
			}
			rp, err := svc.RecordPhotos(ph.ctx, ph.p, rec.ID.String(), "school-1")
			mediatest.Code(t, err, "")
			if !rp.Complete || rp.Received != 1 {
				t.Fatalf("round %d: the record's photos: %+v", i, rp)
			}
		}
	})
}

// TestHolderHealsVouch: a photo its holder sent before any record of the
// school named it, then named by a record of someone who never sent it, is
// not vouched for that school; when the holder asks about it again (as a
// phone does after a failed call, for instance when the process died
// between recording the holder and vouching), the school is vouched for
// and the record shows the photo.
func TestHolderHealsVouch(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		svc := e.service()
		e.access["alice"], e.access["bob"] = []string{"school-1"}, []string{"school-1"}
		alice, bob := newPhone(t, "alice"), newPhone(t, "bob")
		data := fakeJPEG(rand.New(rand.NewPCG(81, 82)), 5000)
		sha := mediatest.SHA256(data)
		if _, err := svc.Put(alice.ctx, sha, data, "image/jpeg"); err != nil {
			t.Fatal(err)
		}
		mediatest.Code(t, svc.ExpectRecords(bob.ctx, []*syncproto.Record{record(t, "school-1", 1, sha)}), "")
		_, err := svc.URL(bob.ctx, bob.p, sha, "")
		mediatest.Code(t, err, syncproto.ENOTFOUND) // nobody who sent it vouched for school-1 yet
		if u, err := svc.Status(alice.ctx, sha); err != nil || u.State != media.UploadComplete {
			t.Fatalf("alice's status: %+v, %v", u, err)
		}
		if _, err := svc.URL(bob.ctx, bob.p, sha, ""); err != nil {
			t.Fatalf("bob's link once alice asked again: %v", err)
		}
	})
}
