package media_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// jpegWithTIFF returns img as a JPEG whose APP1 segment holds tiff.
func jpegWithTIFF(t testing.TB, img image.Image, tiff []byte) []byte {
	t.Helper()
	var enc bytes.Buffer
	if err := jpeg.Encode(&enc, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	app1 := append([]byte("Exif\x00\x00"), tiff...)
	out := []byte{0xFF, 0xD8, 0xFF, 0xE1}
	out = binary.BigEndian.AppendUint16(out, uint16(len(app1)+2))
	out = append(out, app1...)
	return append(out, enc.Bytes()[2:]...)
}

// hugeOrientation is the EXIF block of the 642-byte photo that made
// goexif allocate 17 GB: an Orientation tag with count 0x80000001.
func hugeOrientation() []byte {
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08")
	return appendIFD(tiff, 8, []exifEntry{
		{tag: 0x0112, typ: 3, count: 0x80000001, value: binary.BigEndian.AppendUint32(nil, 8)},
		tagged(0x0132, ascii("2026:10:08 09:30:00")),
	})
}

// cyclicIFDs is an EXIF block whose IFD0 and IFD1 point at each other
// (goexif followed them for ever).
func cyclicIFDs() []byte {
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08")
	tiff = appendIFD(tiff, 8, []exifEntry{tagged(0x0112, short(3))}) // IFD0: 8…26
	ifd1 := len(tiff)
	tiff = appendIFD(tiff, ifd1, []exifEntry{tagged(0x0201, long(0))})
	binary.BigEndian.PutUint32(tiff[ifd1-4:], uint32(ifd1))   // IFD0 → IFD1
	binary.BigEndian.PutUint32(tiff[len(tiff)-4:], uint32(8)) // IFD1 → IFD0
	return tiff
}

// TestHostileEXIF stores the two photos whose EXIF blocks took fieldsyncd
// down through goexif, and checks that their thumbnails are made and the
// EXIF fields that can be read are kept: the Orientation with its absurd
// count is ignored, the cycle is cut.
func TestHostileEXIF(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		for _, tc := range []struct {
			name        string
			tiff        []byte
			orientation int
			raw         string
		}{
			{"orientation count 0x80000001", hugeOrientation(), 0, "2026:10:08 09:30:00"},
			{"IFDs pointing at each other", cyclicIFDs(), 3, ""},
		} {
			data := jpegWithTIFF(t, sideways(), tc.tiff)
			sha := mediatest.SHA256(data)
			_, err := svc.Put(ctx, sha, data, "image/jpeg")
			mediatest.Code(t, err, "")
			if worked, err := svc.ThumbOnce(ctx); !worked || err != nil {
				t.Fatalf("%s: ThumbOnce = %v, %v", tc.name, worked, err)
			}
			ph, err := e.meta.Photo(ctx, sha)
			mediatest.Code(t, err, "")
			if ph.ThumbState != media.ThumbsDone || ph.EXIF.Orientation != tc.orientation || ph.EXIF.Raw != tc.raw {
				t.Fatalf("%s: thumbnails %q (%s), EXIF %+v", tc.name, ph.ThumbState, ph.ThumbError, ph.EXIF)
			}
		}
	})
}

// pngHeader returns the signature and IHDR chunk of a PNG of w×h pixels
// of the given bit depth and color type, then an empty IDAT and IEND: what
// a hostile phone sends to make the server decode a huge image from a
// small file. The header parses; the pixels are missing.
func pngHeader(w, h uint32, depth, colorType byte) []byte {
	out := []byte("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
		body := append([]byte(typ), data...)
		out = append(out, body...)
		out = binary.BigEndian.AppendUint32(out, crc32.ChecksumIEEE(body))
	}
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, depth, colorType, 0, 0, 0)
	chunk("IHDR", ihdr)
	chunk("IDAT", nil)
	chunk("IEND", nil)
	return out
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestThumbnailDecodeBudget checks that decoding is budgeted by the
// decoded bytes, bit depth included: the 8192×8192 16-bit PNG (768 MiB to
// decode) is refused under the default budget without being decoded, and
// of two images of the same size, the 16-bit one is refused under a budget
// the 8-bit one fits in.
func TestThumbnailDecodeBudget(t *testing.T) {
	big := pngHeader(8192, 8192, 16, 6) // RGBA, 16 bits a sample
	if c, _, err := image.DecodeConfig(bytes.NewReader(big)); err != nil || media.DecodeCost(c) < 512<<20 {
		t.Fatalf("the 16-bit PNG header: %v, cost %d", err, media.DecodeCost(c))
	}
	rgba8 := image.NewNRGBA(image.Rect(0, 0, 300, 200))
	rgba16 := image.NewNRGBA64(image.Rect(0, 0, 300, 200))
	for i := range rgba16.Pix {
		rgba16.Pix[i] = byte(i * 7) // not one colour: PNG keeps 16 bits
	}
	for i := range rgba8.Pix {
		rgba8.Pix[i] = byte(i * 7)
	}
	// 300×200: 8 bits 4+4 bytes a pixel (480 000), 16 bits 8+4 (720 000).
	for _, tc := range []struct {
		name   string
		budget int64
		data   []byte
		want   string
	}{
		{"8192×8192 16-bit PNG, default budget", 0, big, media.ThumbsFailed},
		{"300×200 8-bit PNG, budget 600 000", 600_000, encodePNG(t, rgba8), media.ThumbsDone},
		{"300×200 16-bit PNG, budget 600 000", 600_000, encodePNG(t, rgba16), media.ThumbsFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, media.Config{ThumbMaxDecodeBytes: tc.budget}, func(t *testing.T, e *env) {
				ctx := t.Context()
				svc := e.service()
				sha := mediatest.SHA256(tc.data)
				_, err := svc.Put(ctx, sha, tc.data, "image/png")
				mediatest.Code(t, err, "")
				if worked, err := svc.ThumbOnce(ctx); !worked || err != nil {
					t.Fatalf("ThumbOnce = %v, %v", worked, err)
				}
				ph, err := e.meta.Photo(ctx, sha)
				mediatest.Code(t, err, "")
				if ph.ThumbState != tc.want {
					t.Fatalf("thumbnails %q (%s), want %q", ph.ThumbState, ph.ThumbError, tc.want)
				}
				if tc.want == media.ThumbsFailed && !strings.Contains(ph.ThumbError, "MiB") {
					t.Fatalf("the error does not say why: %q", ph.ThumbError)
				}
			})
		})
	}
}

// hostileBlobs is an object store whose Get misbehaves: it panics while
// the photo is read, or hangs until the caller gives up.
type hostileBlobs struct {
	media.BlobStore
	panics, hangs bool
}

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("a decoder bug") }
func (panicReader) Close() error             { return nil }

func (h hostileBlobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	switch {
	case h.panics && strings.HasPrefix(key, "photos/"):
		return panicReader{}, nil
	case h.hangs:
		<-ctx.Done()
		return nil, syncproto.Errorf(syncproto.EUNAVAILABLE, "The object store did not answer in time.")
	}
	return h.BlobStore.Get(ctx, key)
}

// TestThumbnailPanicQuarantined checks that a job that panics does not
// take the worker down: the panic counts as a failed attempt, and after
// ThumbAttempts of them the job is quarantined and never runs again.
func TestThumbnailPanicQuarantined(t *testing.T) {
	e := openMem(t, media.Config{ThumbAttempts: 2, ThumbBackoff: time.Minute})
	ctx := t.Context()
	data := encodePNG(t, sideways())
	sha := mediatest.SHA256(data)
	_, err := e.service().Put(ctx, sha, data, "image/png")
	mediatest.Code(t, err, "")
	svc := media.New(hostileBlobs{BlobStore: e.blobs, panics: true}, e.meta, e.access, e.cfg, testenv.Logger(t))
	for attempt := 1; attempt <= 2; attempt++ {
		worked, err := svc.ThumbOnce(ctx)
		if !worked || err == nil || !strings.Contains(err.Error(), "panic: a decoder bug") {
			t.Fatalf("attempt %d: ThumbOnce = %v, %v", attempt, worked, err)
		}
		e.clock.Advance(time.Hour)
	}
	ph, err := e.meta.Photo(ctx, sha)
	mediatest.Code(t, err, "")
	if ph.ThumbState != media.ThumbsQuarantined || !strings.Contains(ph.ThumbError, "panic") {
		t.Fatalf("after 2 panics: %q %q", ph.ThumbState, ph.ThumbError)
	}
	if worked, _ := svc.ThumbOnce(ctx); worked {
		t.Fatal("a quarantined job ran again")
	}
}

// TestThumbnailJobTimeout checks that a job that does not finish within
// ThumbJobTimeout is given up as a failed attempt (not waited on as an
// unreachable store would be), and retried later.
func TestThumbnailJobTimeout(t *testing.T) {
	e := openMem(t, media.Config{ThumbJobTimeout: time.Millisecond, ThumbBackoff: time.Minute})
	ctx := t.Context()
	data := encodePNG(t, sideways())
	sha := mediatest.SHA256(data)
	_, err := e.service().Put(ctx, sha, data, "image/png")
	mediatest.Code(t, err, "")
	svc := media.New(hostileBlobs{BlobStore: e.blobs, hangs: true}, e.meta, e.access, e.cfg, testenv.Logger(t))
	worked, err := svc.ThumbOnce(ctx)
	if !worked || err == nil || !strings.Contains(err.Error(), "took longer than 1ms") {
		t.Fatalf("ThumbOnce = %v, %v", worked, err)
	}
	e.clock.Advance(time.Minute)
	patient := media.New(e.blobs, e.meta, e.access, media.Config{Now: e.clock.Now}, testenv.Logger(t))
	if worked, err := patient.ThumbOnce(ctx); !worked || err != nil {
		t.Fatalf("the retry: ThumbOnce = %v, %v", worked, err)
	}
}

// TestThumbnailCrashLoop checks that a photo whose job kills the process
// (the job is claimed and never gets an outcome, again after each
// restart) is quarantined after ThumbMaxUnfinished such claims instead of
// killing the next process too.
func TestThumbnailCrashLoop(t *testing.T) {
	lease := time.Minute
	forEachBackend(t, media.Config{ThumbLease: lease, ThumbMaxUnfinished: 2}, func(t *testing.T, e *env) {
		ctx := t.Context()
		data := encodePNG(t, sideways())
		sha := mediatest.SHA256(data)
		_, err := e.service().Put(ctx, sha, data, "image/png")
		mediatest.Code(t, err, "")
		for crash := 1; crash <= 2; crash++ {
			// A process claims the job and dies: the lease runs out.
			job, err := e.meta.ClaimThumbs(ctx, e.clock.Now(), lease)
			mediatest.Code(t, err, "")
			if job.SHA256 != sha || job.Unfinished != crash-1 {
				t.Fatalf("claim %d: %+v", crash, job)
			}
			e.clock.Advance(lease + time.Second)
		}
		worked, err := e.service().ThumbOnce(ctx)
		if !worked || err == nil || !strings.Contains(err.Error(), "quarantined") {
			t.Fatalf("after 2 crashes: ThumbOnce = %v, %v", worked, err)
		}
		ph, err := e.meta.Photo(ctx, sha)
		mediatest.Code(t, err, "")
		if ph.ThumbState != media.ThumbsQuarantined || !strings.Contains(ph.ThumbError, "never ended") {
			t.Fatalf("thumbnails %q: %q", ph.ThumbState, ph.ThumbError)
		}
		e.clock.Advance(time.Hour)
		if worked, _ := e.service().ThumbOnce(ctx); worked {
			t.Fatal("a quarantined job ran again")
		}
	})
}

// TestUploadMustDecode checks that an upload is stored as a photo only if
// it decodes as the image its first bytes announce: an HTML page behind
// FF D8 FF is refused (415), whole or in chunks, and nothing is stored.
func TestUploadMustDecode(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		good := encodePNG(t, image.NewGray(image.Rect(0, 0, 4, 4)))
		for _, tc := range []struct {
			name string
			data []byte
			code string
		}{
			{"HTML behind a JPEG signature", []byte("\xff\xd8\xff<html><script>alert(1)</script></html>"), syncproto.EUNSUPPORTED},
			{"PNG signature, no header", []byte("\x89PNG\r\n\x1a\n<html></html>"), syncproto.EUNSUPPORTED},
			{"PNG of 0×0 pixels", pngHeader(0, 0, 8, 0), syncproto.EUNSUPPORTED},
			{"a real PNG", good, ""},
		} {
			sha := mediatest.SHA256(tc.data)
			_, err := svc.Put(ctx, sha, tc.data, "image/jpeg")
			mediatest.Code(t, err, tc.code)
			_, err = svc.PutChunk(ctx, sha, 0, tc.data)
			mediatest.Code(t, err, "")
			u, err := svc.Finish(ctx, sha, int64(len(tc.data)), "image/jpeg")
			mediatest.Code(t, err, tc.code)
			if want := map[string]string{"": media.UploadComplete}[tc.code]; u.State != want {
				t.Fatalf("%s: state %q", tc.name, u.State)
			}
		}
	})
}

// TestDeclaredTypeControlCharacters checks that a content type holding a
// control character (U+0000 above all) is refused with 400 naming
// content_type, before anything is stored.
func TestDeclaredTypeControlCharacters(t *testing.T) {
	e := openMem(t, media.Config{})
	ctx := t.Context()
	svc := e.service()
	data := encodePNG(t, sideways())
	sha := mediatest.SHA256(data)
	for _, declared := range []string{"image/jpeg\x00", "image/\x1bpng", "image/png\n", "\xff\xfe", strings.Repeat("a", 101)} {
		_, err := svc.Put(ctx, sha, data, declared)
		mediatest.Code(t, err, syncproto.EINVALID)
		var se *syncproto.Error
		if !errors.As(err, &se) || se.Fields["content_type"] == "" {
			t.Fatalf("%q: %v", declared, err)
		}
		_, err = svc.Finish(ctx, sha, int64(len(data)), declared)
		mediatest.Code(t, err, syncproto.EINVALID)
	}
	if keys := e.blobs.(*mediatest.Blobs).Keys(); len(keys) != 0 {
		t.Fatalf("stored %v", keys)
	}
}
