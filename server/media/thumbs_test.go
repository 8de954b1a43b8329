package media_test

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

var (
	red   = color.RGBA{220, 20, 20, 255}
	green = color.RGBA{20, 200, 20, 255}
	blue  = color.RGBA{20, 20, 220, 255}
)

// sideways draws what a phone held sideways stores: 400×200 pixels, the
// top-left quarter red, the top-right green, the bottom half blue. With
// EXIF orientation 6 ("the 0th row is the visual right-hand side, the 0th
// column the visual top") it is shown 200×400: red at the top right, green
// at the bottom right, blue on the left.
func sideways() image.Image {
	img := image.NewRGBA(image.Rect(0, 0, 400, 200))
	for y := range 200 {
		for x := range 400 {
			c := blue
			switch {
			case y < 100 && x < 200:
				c = red
			case y < 100:
				c = green
			}
			img.Set(x, y, c)
		}
	}
	return img
}

// exifEntry is one TIFF tag: its type, count and value bytes (big-endian).
type exifEntry struct {
	tag, typ uint16
	count    uint32
	value    []byte
}

func ascii(s string) exifEntry {
	return exifEntry{typ: 2, count: uint32(len(s) + 1), value: append([]byte(s), 0)}
}

func rationals(vs ...[2]uint32) exifEntry {
	var b []byte
	for _, v := range vs {
		b = binary.BigEndian.AppendUint32(b, v[0])
		b = binary.BigEndian.AppendUint32(b, v[1])
	}
	return exifEntry{typ: 5, count: uint32(len(vs)), value: b}
}

func short(v uint16) exifEntry {
	return exifEntry{typ: 3, count: 1, value: binary.BigEndian.AppendUint16(nil, v)}
}

func long(v uint32) exifEntry {
	return exifEntry{typ: 4, count: 1, value: binary.BigEndian.AppendUint32(nil, v)}
}

func tagged(tag uint16, e exifEntry) exifEntry { e.tag = tag; return e }

// ifdSize is the size of an IFD and the values that do not fit in its
// entries.
func ifdSize(es []exifEntry) int {
	n := 2 + 12*len(es) + 4
	for _, e := range es {
		if len(e.value) > 4 {
			n += len(e.value) + len(e.value)%2
		}
	}
	return n
}

// appendIFD writes an IFD that starts at offset off of the TIFF data.
func appendIFD(b []byte, off int, es []exifEntry) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(es)))
	extra := off + 2 + 12*len(es) + 4
	var values []byte
	for _, e := range es {
		b = binary.BigEndian.AppendUint16(b, e.tag)
		b = binary.BigEndian.AppendUint16(b, e.typ)
		b = binary.BigEndian.AppendUint32(b, e.count)
		if len(e.value) <= 4 {
			v := make([]byte, 4)
			copy(v, e.value)
			b = append(b, v...)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(extra+len(values)))
		values = append(values, e.value...)
		if len(e.value)%2 == 1 {
			values = append(values, 0)
		}
	}
	b = binary.BigEndian.AppendUint32(b, 0) // no next IFD
	return append(b, values...)
}

// withEXIF returns img as a JPEG with an EXIF block holding orientation,
// DateTimeOriginal and a GPS position (degrees, minutes, hundredths of
// seconds) north and east.
func withEXIF(t testing.TB, img image.Image, orientation uint16, taken string, lat, lon [3][2]uint32) []byte {
	t.Helper()
	var enc bytes.Buffer
	if err := jpeg.Encode(&enc, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	exifIFD := []exifEntry{tagged(0x9003, ascii(taken))}
	gpsIFD := []exifEntry{
		tagged(0x0001, ascii("N")), tagged(0x0002, rationals(lat[:]...)),
		tagged(0x0003, ascii("E")), tagged(0x0004, rationals(lon[:]...)),
	}
	ifd0 := []exifEntry{tagged(0x0112, short(orientation)), tagged(0x8769, long(0)), tagged(0x8825, long(0))}
	exifOff := 8 + ifdSize(ifd0)
	gpsOff := exifOff + ifdSize(exifIFD)
	ifd0[1].value = binary.BigEndian.AppendUint32(nil, uint32(exifOff))
	ifd0[2].value = binary.BigEndian.AppendUint32(nil, uint32(gpsOff))

	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08")
	tiff = appendIFD(tiff, 8, ifd0)
	tiff = appendIFD(tiff, exifOff, exifIFD)
	tiff = appendIFD(tiff, gpsOff, gpsIFD)

	app1 := append([]byte("Exif\x00\x00"), tiff...)
	out := []byte{0xFF, 0xD8, 0xFF, 0xE1}
	out = binary.BigEndian.AppendUint16(out, uint16(len(app1)+2))
	out = append(out, app1...)
	return append(out, enc.Bytes()[2:]...) // the encoder's JPEG without its SOI
}

// thumb decodes the thumbnail of a variant.
func thumb(t *testing.T, e *env, svc *media.Service, sha, variant string) image.Image {
	t.Helper()
	e.access["reviewer"] = []string{"school-1"}
	u, err := svc.URL(t.Context(), principal("reviewer"), sha, variant)
	mediatest.Code(t, err, "")
	b, err := e.fetch(t.Context(), e.blobs, u.URL)
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("the %s thumbnail is not a JPEG: %v", variant, err)
	}
	return img
}

// near reports whether c is close to want (JPEG is lossy).
func near(c color.Color, want color.RGBA) bool {
	r, g, b, _ := c.RGBA()
	d := func(x uint32, y uint8) float64 { return math.Abs(float64(x>>8) - float64(y)) }
	return d(r, want.R) < 40 && d(g, want.G) < 40 && d(b, want.B) < 40
}

// TestThumbnailsUpright stores a photo taken with the phone held sideways
// (EXIF orientation 6), and checks that both thumbnails come out upright,
// and that the EXIF time and GPS position are kept.
func TestThumbnailsUpright(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		data := withEXIF(t, sideways(), 6, "2026:10:08 09:30:00",
			[3][2]uint32{{28, 1}, {13, 1}, {4152, 100}}, [3][2]uint32{{112, 1}, {56, 1}, {1968, 100}})
		sha := mediatest.SHA256(data)
		mediatest.Code(t, svc.Expect(ctx, record(t, "school-1", 1, sha)), "")
		_, err := svc.Put(ctx, sha, data, "image/jpeg")
		mediatest.Code(t, err, "")

		worked, err := svc.ThumbOnce(ctx)
		mediatest.Code(t, err, "")
		if !worked {
			t.Fatal("no thumbnail job after an upload")
		}
		if worked, _ := svc.ThumbOnce(ctx); worked {
			t.Fatal("a second job for the same photo")
		}

		sizes := []struct {
			variant string
			w, h    int
		}{
			{media.Variant320, 160, 320},  // fitted into 320×320
			{media.Variant1280, 200, 400}, // never enlarged
		}
		for _, s := range sizes {
			img := thumb(t, e, svc, sha, s.variant)
			b := img.Bounds()
			if b.Dx() != s.w || b.Dy() != s.h {
				t.Fatalf("%s px thumbnail is %dx%d, want %dx%d (upright)", s.variant, b.Dx(), b.Dy(), s.w, s.h)
			}
			corners := []struct {
				name string
				x, y int
				want color.RGBA
			}{
				{"top right", b.Dx() - 5, 5, red},
				{"bottom right", b.Dx() - 5, b.Dy() - 5, green},
				{"top left", 5, 5, blue},
				{"bottom left", 5, b.Dy() - 5, blue},
			}
			for _, c := range corners {
				if got := img.At(c.x, c.y); !near(got, c.want) {
					t.Errorf("%s px thumbnail: %s is %v, want %v", s.variant, c.name, got, c.want)
				}
			}
		}

		ph, err := e.meta.Photo(ctx, sha)
		mediatest.Code(t, err, "")
		wantTaken := time.Date(2026, 10, 8, 1, 30, 0, 0, time.UTC) // 09:30 China Standard Time
		if ph.ThumbState != media.ThumbsDone || ph.EXIF.TakenAt == nil || !ph.EXIF.TakenAt.Equal(wantTaken) ||
			ph.EXIF.Raw != "2026:10:08 09:30:00" || ph.EXIF.Orientation != 6 {
			t.Fatalf("photo after thumbnails = %+v, EXIF %+v", ph, ph.EXIF)
		}
		if ph.EXIF.Lat == nil || ph.EXIF.Lon == nil || math.Abs(*ph.EXIF.Lat-28.2282) > 1e-4 || math.Abs(*ph.EXIF.Lon-112.9388) > 1e-4 {
			t.Fatalf("GPS = %v, %v; want 28.2282, 112.9388", ph.EXIF.Lat, ph.EXIF.Lon)
		}
	})
}

// TestThumbnailFormats checks a PNG (no EXIF) and a HEIC photo, which is
// kept without thumbnails.
func TestThumbnailFormats(t *testing.T) {
	forEachBackend(t, media.Config{}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		var pngBuf bytes.Buffer
		if err := png.Encode(&pngBuf, sideways()); err != nil {
			t.Fatal(err)
		}
		heic := append([]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), fakeJPEG(rand.New(rand.NewPCG(1, 1)), 5000)...)
		photos := []struct {
			name   string
			data   []byte
			typ    string
			thumbs string
		}{
			{"PNG", pngBuf.Bytes(), media.TypePNG, media.ThumbsDone},
			{"HEIC", heic, media.TypeHEIC, media.ThumbsUnsupported},
		}
		for _, p := range photos {
			sha := mediatest.SHA256(p.data)
			mediatest.Code(t, svc.Expect(ctx, record(t, "school-1", 1, sha)), "")
			u, err := svc.Put(ctx, sha, p.data, "")
			mediatest.Code(t, err, "")
			if u.ContentType != p.typ {
				t.Fatalf("%s stored as %s", p.name, u.ContentType)
			}
			if worked, err := svc.ThumbOnce(ctx); !worked || err != nil {
				t.Fatalf("%s: ThumbOnce = %v, %v", p.name, worked, err)
			}
			ph, err := e.meta.Photo(ctx, sha)
			mediatest.Code(t, err, "")
			if ph.ThumbState != p.thumbs {
				t.Fatalf("%s: thumbnails %q, want %q", p.name, ph.ThumbState, p.thumbs)
			}
			if p.thumbs == media.ThumbsDone {
				if b := thumb(t, e, svc, sha, media.Variant320).Bounds(); b.Dx() != 320 || b.Dy() != 160 {
					t.Fatalf("%s thumbnail %v", p.name, b)
				}
			} else {
				_, err := svc.URL(ctx, principal("reviewer"), sha, media.Variant320)
				mediatest.Code(t, err, syncproto.ENOTFOUND)
				_, err = svc.URL(ctx, principal("reviewer"), sha, media.VariantOriginal)
				mediatest.Code(t, err, "")
			}
		}
	})
}

// TestThumbnailRetries checks the retry policy: a photo that does not
// decode is tried ThumbAttempts times with growing waits, then
// quarantined with its error on the photo and never run again; a store
// that is down is retried without giving up.
func TestThumbnailRetries(t *testing.T) {
	cfg := media.Config{ThumbAttempts: 3, ThumbBackoff: time.Minute, ThumbMaxBackoff: time.Hour}
	forEachBackend(t, cfg, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		broken := fakeJPEG(rand.New(rand.NewPCG(31, 32)), 4000) // a JPEG signature, then noise
		sha := mediatest.SHA256(broken)
		_, err := svc.Put(ctx, sha, broken, "image/jpeg")
		mediatest.Code(t, err, "")

		for attempt := 1; attempt <= 3; attempt++ {
			worked, err := svc.ThumbOnce(ctx)
			if !worked || err == nil {
				t.Fatalf("attempt %d: worked %v, error %v", attempt, worked, err)
			}
			if worked, _ := svc.ThumbOnce(ctx); worked {
				t.Fatalf("attempt %d: the job was due again at once", attempt)
			}
			e.clock.Advance(time.Minute << (attempt - 1))
		}
		ph, err := e.meta.Photo(ctx, sha)
		mediatest.Code(t, err, "")
		if ph.ThumbState != media.ThumbsQuarantined || !strings.Contains(ph.ThumbError, "decode") {
			t.Fatalf("after 3 attempts: %q %q", ph.ThumbState, ph.ThumbError)
		}
		if worked, _ := svc.ThumbOnce(ctx); worked {
			t.Fatal("a given-up job ran again")
		}

		// With the object store down, jobs wait and never give up.
		good := withEXIF(t, sideways(), 1, "2026:10:08 09:30:00", [3][2]uint32{{1, 1}, {0, 1}, {0, 1}}, [3][2]uint32{{1, 1}, {0, 1}, {0, 1}})
		gsha := mediatest.SHA256(good)
		_, err = svc.Put(ctx, gsha, good, "image/jpeg")
		mediatest.Code(t, err, "")
		down := e.down()
		for attempt := 1; attempt <= 5; attempt++ {
			worked, err := down.ThumbOnce(ctx)
			if !worked || syncproto.ErrorCode(err) != syncproto.EUNAVAILABLE {
				t.Fatalf("store down, attempt %d: worked %v, error %v", attempt, worked, err)
			}
			e.clock.Advance(time.Hour)
		}
		worked, err := svc.ThumbOnce(ctx)
		if !worked || err != nil {
			t.Fatalf("store back: worked %v, error %v", worked, err)
		}
		ph, err = e.meta.Photo(ctx, gsha)
		mediatest.Code(t, err, "")
		if ph.ThumbState != media.ThumbsDone {
			t.Fatalf("thumbnails %q after the store came back", ph.ThumbState)
		}
	})
}

// TestThumbnailTooManyPixels checks that an image larger than the decoder
// may take is kept without thumbnails, at once and without retries.
func TestThumbnailTooManyPixels(t *testing.T) {
	forEachBackend(t, media.Config{ThumbMaxPixels: 200 * 200}, func(t *testing.T, e *env) {
		ctx := t.Context()
		svc := e.service()
		var buf bytes.Buffer
		if err := png.Encode(&buf, sideways()); err != nil { // 400×200
			t.Fatal(err)
		}
		sha := mediatest.SHA256(buf.Bytes())
		_, err := svc.Put(ctx, sha, buf.Bytes(), "image/png")
		mediatest.Code(t, err, "")
		if worked, err := svc.ThumbOnce(ctx); !worked || err != nil {
			t.Fatalf("ThumbOnce = %v, %v", worked, err)
		}
		ph, err := e.meta.Photo(ctx, sha)
		mediatest.Code(t, err, "")
		if ph.ThumbState != media.ThumbsFailed || !strings.Contains(ph.ThumbError, "400×200") {
			t.Fatalf("thumbnails %q: %q", ph.ThumbState, ph.ThumbError)
		}
	})
}
