package exif

import (
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"
)

// order is a byte order that appends too.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// ent is one IFD entry as a test writes it: the value bytes are placed
// after the IFD when they do not fit in the entry, unless off is set.
type ent struct {
	tag, typ uint16
	count    uint32
	value    []byte
	off      uint32 // if not 0, written as the value's offset as is
}

// tiffBuilder writes TIFF data in one byte order.
type tiffBuilder struct {
	order order
	b     []byte
}

func newTIFF(order order) *tiffBuilder {
	t := &tiffBuilder{order: order}
	if order == binary.LittleEndian {
		t.b = []byte("II")
	} else {
		t.b = []byte("MM")
	}
	t.b = order.AppendUint16(t.b, 42)
	t.b = order.AppendUint32(t.b, 8)
	return t
}

// ifdLen is the length of an IFD of n entries and its values.
func ifdLen(es []ent) int {
	n := 2 + 12*len(es) + 4
	for _, e := range es {
		if len(e.value) > 4 && e.off == 0 {
			n += len(e.value)
		}
	}
	return n
}

// ifd appends an IFD (at the current end) and returns its offset.
func (t *tiffBuilder) ifd(es []ent, next uint32) uint32 {
	at := uint32(len(t.b))
	o := t.order
	t.b = o.AppendUint16(t.b, uint16(len(es)))
	extra := int(at) + 2 + 12*len(es) + 4
	var vals []byte
	for _, e := range es {
		t.b = o.AppendUint16(t.b, e.tag)
		t.b = o.AppendUint16(t.b, e.typ)
		t.b = o.AppendUint32(t.b, e.count)
		switch {
		case e.off != 0:
			t.b = o.AppendUint32(t.b, e.off)
		case len(e.value) <= 4:
			v := make([]byte, 4)
			copy(v, e.value)
			t.b = append(t.b, v...)
		default:
			t.b = o.AppendUint32(t.b, uint32(extra+len(vals)))
			vals = append(vals, e.value...)
		}
	}
	t.b = o.AppendUint32(t.b, next)
	t.b = append(t.b, vals...)
	return at
}

func (t *tiffBuilder) short(tag, v uint16) ent {
	return ent{tag: tag, typ: typeShort, count: 1, value: t.order.AppendUint16(nil, v)}
}

func (t *tiffBuilder) long(tag uint16, v uint32) ent {
	return ent{tag: tag, typ: typeLong, count: 1, value: t.order.AppendUint32(nil, v)}
}

func ascii(tag uint16, s string) ent {
	return ent{tag: tag, typ: typeASCII, count: uint32(len(s) + 1), value: append([]byte(s), 0)}
}

func (t *tiffBuilder) rationals(tag uint16, vs ...uint32) ent {
	var b []byte
	for _, v := range vs {
		b = t.order.AppendUint32(b, v)
	}
	return ent{tag: tag, typ: typeRational, count: uint32(len(vs) / 2), value: b}
}

// camera returns the TIFF data of a photo as a camera writes it:
// orientation 6, a DateTimeOriginal in the Exif IFD, a GPS position
// (31°14'5.25"N 121°28'30"E) and an IFD1.
func camera(order order) []byte {
	t := newTIFF(order)
	ifd0 := []ent{t.short(tagOrientation, 6), ascii(tagDateTime, "2026:10:08 10:00:00"), t.long(tagExifIFD, 0), t.long(tagGPSIFD, 0)}
	exifIFD := []ent{ascii(tagDateTimeOriginal, "2026:10:08 09:30:00")}
	gps := []ent{ascii(tagGPSLatitudeRef, "N"), t.rationals(tagGPSLatitude, 31, 1, 14, 1, 525, 100),
		ascii(tagGPSLongitudeRef, "E"), t.rationals(tagGPSLongitude, 121, 1, 28, 1, 30, 1)}
	exifOff := 8 + ifdLen(ifd0)
	gpsOff := exifOff + ifdLen(exifIFD)
	ifd1Off := gpsOff + ifdLen(gps)
	ifd0[2].value = order.AppendUint32(nil, uint32(exifOff))
	ifd0[3].value = order.AppendUint32(nil, uint32(gpsOff))
	t.ifd(ifd0, uint32(ifd1Off))
	t.ifd(exifIFD, 0)
	t.ifd(gps, 0)
	t.ifd([]ent{t.long(0x0201, 0)}, 0)
	return t.b
}

// jpegWith wraps TIFF data in the APP1 segment of a minimal JPEG.
func jpegWith(tiff []byte) []byte {
	tiff = tiff[:min(len(tiff), 65000)]
	app1 := append([]byte("Exif\x00\x00"), tiff...)
	out := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0} // an APP0 before it
	out = append(out, 0xFF, 0xE1)
	out = binary.BigEndian.AppendUint16(out, uint16(len(app1)+2))
	out = append(out, app1...)
	return append(out, 0xFF, 0xDA, 0, 2, 0xFF, 0xD9)
}

// hugeCount is the Orientation tag of the photo that made goexif
// allocate 17 GB: count 0x80000001.
func hugeCount() []byte {
	t := newTIFF(binary.BigEndian)
	t.ifd([]ent{{tag: tagOrientation, typ: typeShort, count: 0x80000001, off: 8}, ascii(tagDateTime, "2026:10:08 10:00:00")}, 0)
	return t.b
}

// cycle returns TIFF data whose IFD0 and IFD1 point at each other.
func cycle() []byte {
	t := newTIFF(binary.LittleEndian)
	ifd0 := []ent{t.short(tagOrientation, 3)}
	ifd1At := 8 + ifdLen(ifd0)
	t.ifd(ifd0, uint32(ifd1At))
	t.ifd([]ent{t.long(0x0201, 0)}, 8)
	return t.b
}

// selfExif returns TIFF data whose Exif IFD pointer points at IFD0, and
// whose GPS IFD pointer points at the Exif IFD pointer's own entry.
func selfExif() []byte {
	t := newTIFF(binary.BigEndian)
	t.ifd([]ent{t.long(tagExifIFD, 8), t.long(tagGPSIFD, 10), t.short(tagOrientation, 8)}, 8)
	return t.b
}

func TestParse(t *testing.T) {
	lat := 31 + 14.0/60 + 5.25/3600
	lon := 121 + 28.0/60 + 30.0/3600
	full := Info{Orientation: 6, DateTimeOriginal: "2026:10:08 09:30:00", DateTime: "2026:10:08 10:00:00", Lat: lat, Lon: lon, HasGPS: true}
	tooMany := newTIFF(binary.BigEndian)
	tooMany.b = binary.BigEndian.AppendUint16(tooMany.b, MaxEntries+1)
	tooMany.b = append(tooMany.b, make([]byte, 12*(MaxEntries+1)+4)...)
	chain := newTIFF(binary.BigEndian)
	for i := range MaxIFDs + 4 { // a chain longer than MaxIFDs: IFD0 still counts
		e := []ent{chain.short(tagOrientation, 2)}
		chain.ifd(e, uint32(8+(i+1)*ifdLen(e)))
	}
	chain.b = append(chain.b, 0, 0, 0, 0, 0, 0)
	for _, tc := range []struct {
		name string
		tiff []byte
		want Info
		err  error
	}{
		{"big-endian camera", camera(binary.BigEndian), full, nil},
		{"little-endian camera", camera(binary.LittleEndian), full, nil},
		{"orientation count 0x80000001", hugeCount(), Info{DateTime: "2026:10:08 10:00:00"}, nil},
		{"IFD0 and IFD1 point at each other", cycle(), Info{Orientation: 3}, nil},
		{"Exif IFD is IFD0", selfExif(), Info{Orientation: 8}, nil},
		{"a chain of IFDs longer than the limit", chain.b, Info{Orientation: 2}, nil},
		{"too many entries", tooMany.b, Info{}, ErrMalformed},
		{"empty", nil, Info{}, ErrMalformed},
		{"not TIFF", []byte("XX\x00\x2a\x00\x00\x00\x08"), Info{}, ErrMalformed},
		{"IFD0 beyond the end", []byte("MM\x00\x2a\xff\xff\xff\xf0"), Info{}, ErrMalformed},
		{"IFD0 cut short", camera(binary.BigEndian)[:20], Info{}, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.tiff)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if math.Abs(got.Lat-tc.want.Lat) > 1e-9 || math.Abs(got.Lon-tc.want.Lon) > 1e-9 {
				t.Fatalf("position %v,%v, want %v,%v", got.Lat, got.Lon, tc.want.Lat, tc.want.Lon)
			}
			got.Lat, got.Lon, tc.want.Lat, tc.want.Lon = 0, 0, 0, 0
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestHostileEXIFBoundedMemory reads the two EXIF blocks that took the
// server down with goexif — an Orientation of count 0x80000001, and IFDs
// that point at each other — inside whole JPEGs, and checks that reading
// them allocates no more than a small constant: the counts and offsets
// the bytes claim decide nothing.
func TestHostileEXIFBoundedMemory(t *testing.T) {
	for _, tc := range []struct {
		name string
		jpeg []byte
		want Info
	}{
		{"orientation count 0x80000001", jpegWith(hugeCount()), Info{DateTime: "2026:10:08 10:00:00"}},
		{"IFDs pointing at each other", jpegWith(cycle()), Info{Orientation: 3}},
		{"Exif IFD pointing at IFD0", jpegWith(selfExif()), Info{Orientation: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Info
			var err error
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for range 100 {
				got, err = FromJPEG(tc.jpeg)
			}
			runtime.ReadMemStats(&after)
			if err != nil || got != tc.want {
				t.Fatalf("FromJPEG = %+v, %v; want %+v", got, err, tc.want)
			}
			// 100 reads: the entries of at most MaxIFDs small IFDs each.
			if b := after.TotalAlloc - before.TotalAlloc; b > 100*4096 {
				t.Fatalf("100 reads allocated %d bytes", b)
			}
		})
	}
}

func TestFromJPEG(t *testing.T) {
	cam := jpegWith(camera(binary.LittleEndian))
	for _, tc := range []struct {
		name string
		data []byte
		want int // orientation
		err  error
	}{
		{"camera", cam, 6, nil},
		{"fill bytes before the marker", append([]byte{0xFF, 0xD8, 0xFF, 0xFF}, cam[2:]...), 6, nil},
		{"no EXIF", []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0, 0xFF, 0xDA, 0, 2}, 0, ErrNoEXIF},
		{"segment longer than the file", []byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 'E', 'x'}, 0, ErrNoEXIF},
		{"not a JPEG", []byte("<html><body>"), 0, ErrNoEXIF},
		{"segment length below 2", []byte{0xFF, 0xD8, 0xFF, 0xE1, 0, 1, 0, 0}, 0, ErrNoEXIF},
		{"cut inside the EXIF block", cam[:40], 0, ErrNoEXIF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromJPEG(tc.data)
			if !errors.Is(err, tc.err) || got.Orientation != tc.want {
				t.Fatalf("FromJPEG = orientation %d, %v; want %d, %v", got.Orientation, err, tc.want, tc.err)
			}
		})
	}
}

// FuzzParseEXIF checks that no TIFF data makes Parse or FromJPEG panic,
// and that what they return is in range.
func FuzzParseEXIF(f *testing.F) {
	for _, seed := range [][]byte{
		camera(binary.BigEndian), camera(binary.LittleEndian), hugeCount(), cycle(), selfExif(),
		[]byte("MM\x00\x2a\x00\x00\x00\x08"), []byte("II\x2a\x00\x08\x00\x00\x00\x00\x00"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tiff []byte) {
		for _, read := range []func() (Info, error){
			func() (Info, error) { return Parse(tiff) },
			func() (Info, error) { return FromJPEG(jpegWith(tiff)) },
		} {
			info, err := read()
			if err != nil && info != (Info{}) {
				t.Fatalf("an error with a result: %+v, %v", info, err)
			}
			if info.Orientation < 0 || info.Orientation > 8 {
				t.Fatalf("orientation %d", info.Orientation)
			}
			if len(info.DateTimeOriginal) > maxASCII || len(info.DateTime) > maxASCII {
				t.Fatalf("a date of %d bytes", len(info.DateTimeOriginal))
			}
			if info.HasGPS && (math.Abs(info.Lat) > 90 || math.Abs(info.Lon) > 180) {
				t.Fatalf("position %v,%v", info.Lat, info.Lon)
			}
		}
	})
}
