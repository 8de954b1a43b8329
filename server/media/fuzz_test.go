package media_test

import (
	"image"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// FuzzPhotoPath sends bytes through the whole photo path of the server,
// on the in-memory stores: the upload's checks (Put), then a thumbnail
// job (EXIF, header, budget, decoding, resizing). Whatever the bytes, the
// upload is accepted or refused with a code, and the job ends with an
// outcome that is not a recovered panic. The decode budget is small so
// that each run stays cheap; the budget itself is what keeps larger
// images out.
func FuzzPhotoPath(f *testing.F) {
	seeds := [][]byte{
		withEXIF(f, sideways(), 6, "2026:10:08 09:30:00", [3][2]uint32{{28, 1}, {13, 1}, {4152, 100}}, [3][2]uint32{{112, 1}, {56, 1}, {1968, 100}}),
		jpegWithTIFF(f, image.NewGray(image.Rect(0, 0, 8, 8)), hugeOrientation()),
		jpegWithTIFF(f, image.NewGray(image.Rect(0, 0, 8, 8)), cyclicIFDs()),
		pngHeader(8192, 8192, 16, 6),
		pngHeader(64, 64, 8, 2),
		encodePNG(f, image.NewNRGBA64(image.Rect(0, 0, 16, 16))),
		fakeJPEG(rand.New(rand.NewPCG(5, 5)), 300),
		[]byte("\xff\xd8\xff<html></html>"),
		[]byte("RIFF\x00\x00\x00\x00WEBPVP8 "),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		e := openMem(t, media.Config{ThumbMaxDecodeBytes: 4 << 20, ThumbAttempts: 1, ThumbJobTimeout: 5 * time.Second})
		ctx := t.Context()
		svc := e.service()
		sha := mediatest.SHA256(data)
		if _, err := svc.Put(ctx, sha, data, "image/jpeg"); err != nil {
			if code := syncproto.ErrorCode(err); code != syncproto.EUNSUPPORTED && code != syncproto.EINVALID {
				t.Fatalf("Put: %v", err)
			}
			return
		}
		_, err := svc.ThumbOnce(ctx)
		if err != nil && strings.Contains(err.Error(), "panic") {
			t.Fatalf("ThumbOnce: %v", err)
		}
		ph, perr := e.meta.Photo(ctx, sha)
		if perr != nil || ph.ThumbState == media.ThumbsPending {
			t.Fatalf("no outcome: %+v, %v (job: %v)", ph, perr, err)
		}
		if o := ph.EXIF.Orientation; o < 0 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}
