package media_test

import (
	"fmt"
	"image"
	"image/color"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// attachment returns the attachment record id of school for a photo, as
// a phone writes it (mobile.Engine.NewAttachment).
func attachment(t *testing.T, id, school string, data []byte) *syncproto.Record {
	t.Helper()
	r := &syncproto.Record{ID: uuid.MustParse(id), Kind: "attachment", SchoolID: school, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	file := fmt.Sprintf(`{"sha256":%q,"size":%d,"content_type":"image/png"}`, mediatest.SHA256(data), len(data))
	for k, v := range map[string]string{"owner_type": `"hazard"`, "kind": `"photo"`, "sha256": fmt.Sprintf("%q", mediatest.SHA256(data)), "file": file} {
		r, _ = syncproto.Set(r, k, []byte(v), writer())
	}
	r.Rev = 1
	return r
}

// TestHazardPhotosThroughAttachments checks the photo status of the
// sample hazard (东河县, 学生宿舍楼灭火器过期), whose photos are attachment
// records named by its photo_ids and by its events: before they arrive
// it is incomplete and names them, then it counts their photos, and it
// is complete when all have arrived. (It used to answer complete with
// none expected.)
func TestHazardPhotosThroughAttachments(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		s, err := samples.Get("09_hazard_with_history")
		if err != nil {
			t.Fatal(err)
		}
		hazard, err := s.Record(writer())
		if err != nil {
			t.Fatal(err)
		}
		hazard.Rev = 10
		school := hazard.SchoolID
		e.access["reviewer"] = []string{school}
		var ids []string
		for i := 801; i <= 808; i++ {
			ids = append(ids, fmt.Sprintf("0192b000-0000-7000-8000-%012d", i))
		}
		photo := func(i int) []byte {
			img := image.NewGray(image.Rect(0, 0, 8, 8))
			img.Set(0, 0, color.Gray{Y: uint8(i)})
			return encodePNG(t, img)
		}
		status := func(name string) media.RecordPhotos {
			t.Helper()
			rp, err := svc.RecordPhotos(ctx, principal("reviewer"), hazard.ID.String(), school)
			mediatest.Code(t, err, "")
			if rp.Expected != rp.Received+len(rp.Missing) || rp.Complete != (len(rp.Missing) == 0 && len(rp.MissingRecords) == 0) {
				t.Fatalf("%s: inconsistent %+v", name, rp)
			}
			return rp
		}

		mediatest.Code(t, svc.Expect(ctx, hazard), "")
		if rp := status("hazard only"); rp.Complete || !slices.Equal(rp.MissingRecords, ids) || rp.Expected != 0 {
			t.Fatalf("before its attachments: %+v", rp)
		}
		for i, id := range ids {
			mediatest.Code(t, svc.Expect(ctx, attachment(t, id, school, photo(i))), "")
		}
		if rp := status("attachments"); rp.Complete || len(rp.MissingRecords) != 0 || rp.Expected != 8 || rp.Received != 0 {
			t.Fatalf("with its attachments: %+v", rp)
		}
		for i := range ids {
			data := photo(i)
			_, err := svc.Put(ctx, mediatest.SHA256(data), data, "image/png")
			mediatest.Code(t, err, "")
		}
		if rp := status("photos"); !rp.Complete || rp.Received != 8 {
			t.Fatalf("with every photo: %+v", rp)
		}
	})
}
