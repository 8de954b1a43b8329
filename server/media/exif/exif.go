// Package exif reads the few EXIF fields the server keeps from a photo —
// Orientation, DateTimeOriginal (or DateTime) and the GPS position — and
// nothing else. Photos come from any device, so every byte is hostile: the
// reader never allocates by a count or an offset read from the data
// (values are sliced out of the segment, and only the few fixed-size ones
// it needs are read), bounds every offset and count against the segment,
// reads at most MaxIFDs IFDs of at most MaxEntries entries, and refuses an
// IFD offset it has visited (two IFDs that point at each other). Its cost
// is linear in the segment's size, whatever the bytes say.
//
// It is pure: it imports only the standard library (no I/O, no clock) and
// no package of this module.
package exif

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
)

// Limits of the reader. A camera writes IFD0, IFD1 (the thumbnail), the
// Exif, GPS and Interoperability IFDs, each with tens of entries.
const (
	MaxIFDs    = 8   // IFDs read in all, the chain of next-IFD links included
	MaxEntries = 512 // entries of one IFD; an IFD claiming more is refused
	maxASCII   = 64  // longest date string read (EXIF dates have 20 bytes)
)

// Errors. ErrNoEXIF is not a fault of the photo: most PNG and WebP images
// and many JPEGs have no EXIF block.
var (
	ErrNoEXIF    = errors.New("exif: no EXIF block")
	ErrMalformed = errors.New("exif: malformed EXIF block")
)

// Info is what the reader keeps. Zero values mean absent or unreadable.
type Info struct {
	// Orientation is the EXIF orientation, 1–8; 0 if absent or out of range.
	Orientation int
	// DateTimeOriginal and DateTime are the raw EXIF strings
	// ("2024:10:08 09:30:00"), trailing NULs and spaces removed.
	DateTimeOriginal string
	DateTime         string
	// Lat and Lon are the GPS position in degrees, valid when HasGPS.
	Lat, Lon float64
	HasGPS   bool
}

// Tags read.
const (
	tagOrientation      = 0x0112
	tagDateTime         = 0x0132
	tagExifIFD          = 0x8769
	tagGPSIFD           = 0x8825
	tagDateTimeOriginal = 0x9003
	tagGPSLatitudeRef   = 0x0001
	tagGPSLatitude      = 0x0002
	tagGPSLongitudeRef  = 0x0003
	tagGPSLongitude     = 0x0004
)

// TIFF field types used, and the size of one value of each type.
const (
	typeASCII    = 2
	typeShort    = 3
	typeLong     = 4
	typeRational = 5
)

var typeSize = [...]uint64{1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}

// maxSegments bounds the JPEG markers FromJPEG walks before giving up.
const maxSegments = 256

// FromJPEG finds the EXIF block (the APP1 segment starting "Exif\0\0") of
// a JPEG among the segments before its image data, and parses it. It
// returns ErrNoEXIF if there is none.
func FromJPEG(data []byte) (Info, error) {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return Info{}, ErrNoEXIF
	}
	pos := 2
	for range maxSegments {
		// Markers may be preceded by fill bytes 0xFF.
		for pos < len(data) && data[pos] == 0xFF && pos+1 < len(data) && data[pos+1] == 0xFF {
			pos++
		}
		if pos+4 > len(data) || data[pos] != 0xFF {
			return Info{}, ErrNoEXIF
		}
		marker := data[pos+1]
		switch {
		case marker == 0xD9 || marker == 0xDA: // end of image, start of scan
			return Info{}, ErrNoEXIF
		case marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7): // no length
			pos += 2
			continue
		}
		n := int(binary.BigEndian.Uint16(data[pos+2:]))
		if n < 2 || pos+2+n > len(data) {
			return Info{}, ErrNoEXIF
		}
		seg := data[pos+4 : pos+2+n]
		if marker == 0xE1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return Parse(seg[6:])
		}
		pos += 2 + n
	}
	return Info{}, ErrNoEXIF
}

// reader reads a TIFF structure held wholly in b.
type reader struct {
	b       []byte
	order   binary.ByteOrder
	visited []uint32 // IFD offsets read, at most MaxIFDs
}

// entry is one IFD entry, its value not yet read.
type entry struct {
	tag, typ uint16
	count    uint32
	raw      [4]byte // the value, or its offset
}

// Parse reads the fields of Info from a TIFF structure (the EXIF block
// without its "Exif\0\0" header). It returns ErrMalformed if the header or
// IFD0 cannot be read; a bad sub-IFD or value only leaves its fields zero.
func Parse(tiff []byte) (Info, error) {
	if len(tiff) < 8 {
		return Info{}, ErrMalformed
	}
	r := &reader{b: tiff}
	switch string(tiff[:2]) {
	case "II":
		r.order = binary.LittleEndian
	case "MM":
		r.order = binary.BigEndian
	default:
		return Info{}, ErrMalformed
	}
	if r.order.Uint16(tiff[2:]) != 42 {
		return Info{}, ErrMalformed
	}
	var info Info
	ifd0, next, err := r.ifd(r.order.Uint32(tiff[4:]))
	if err != nil {
		return Info{}, err
	}
	var exifOff, gpsOff uint32
	for _, e := range ifd0 {
		switch e.tag {
		case tagOrientation:
			if v, ok := r.uint(e); ok && v >= 1 && v <= 8 {
				info.Orientation = int(v)
			}
		case tagDateTime:
			info.DateTime = r.ascii(e)
		case tagExifIFD:
			exifOff, _ = r.uint(e)
		case tagGPSIFD:
			gpsOff, _ = r.uint(e)
		}
	}
	// The chain of IFDs after IFD0 (IFD1, the thumbnail's) holds nothing
	// read here; it is followed only to see that it ends, within bounds.
	for next != 0 {
		if _, next, err = r.ifd(next); err != nil {
			break
		}
	}
	if exifOff != 0 {
		if es, _, err := r.ifd(exifOff); err == nil {
			for _, e := range es {
				if e.tag == tagDateTimeOriginal {
					info.DateTimeOriginal = r.ascii(e)
				}
			}
		}
	}
	if gpsOff != 0 {
		if es, _, err := r.ifd(gpsOff); err == nil {
			info.Lat, info.Lon, info.HasGPS = r.gps(es)
		}
	}
	return info, nil
}

// ifd reads the IFD at off: its entries and the offset of the next IFD.
// It refuses an offset outside the data, one read before, an IFD beyond
// MaxIFDs and one with more than MaxEntries entries or more than fit.
func (r *reader) ifd(off uint32) ([]entry, uint32, error) {
	if len(r.visited) >= MaxIFDs {
		return nil, 0, ErrMalformed
	}
	for _, v := range r.visited {
		if v == off {
			return nil, 0, ErrMalformed // a cycle
		}
	}
	r.visited = append(r.visited, off)
	o := uint64(off)
	if o < 8 || o+2 > uint64(len(r.b)) {
		return nil, 0, ErrMalformed
	}
	n := uint64(r.order.Uint16(r.b[o:]))
	end := o + 2 + 12*n + 4
	if n > MaxEntries || end > uint64(len(r.b)) {
		return nil, 0, ErrMalformed
	}
	// n ≤ MaxEntries and the entries lie within the data: the slice is
	// bounded by both.
	es := make([]entry, n)
	for i := range es {
		p := r.b[o+2+12*uint64(i):]
		es[i] = entry{tag: r.order.Uint16(p), typ: r.order.Uint16(p[2:]), count: r.order.Uint32(p[4:])}
		copy(es[i].raw[:], p[8:12])
	}
	return es, r.order.Uint32(r.b[end-4:]), nil
}

// value returns the bytes of the first count values of e (count ≤
// e.count), sliced out of the data, or false if e's type is unknown or the
// values lie outside the data. It never allocates.
func (r *reader) value(e entry, count uint32) ([]byte, bool) {
	if int(e.typ) >= len(typeSize) || typeSize[e.typ] == 0 || count > e.count {
		return nil, false
	}
	total := typeSize[e.typ] * uint64(e.count) // ≤ 8 × (2^32−1): no overflow
	want := typeSize[e.typ] * uint64(count)
	if total <= 4 {
		return e.raw[:want], true
	}
	off := uint64(r.order.Uint32(e.raw[:]))
	if off+total > uint64(len(r.b)) {
		return nil, false
	}
	return r.b[off : off+want], true
}

// uint returns the first value of a SHORT or LONG entry.
func (r *reader) uint(e entry) (uint32, bool) {
	if e.count < 1 {
		return 0, false
	}
	v, ok := r.value(e, 1)
	switch {
	case !ok:
		return 0, false
	case e.typ == typeShort:
		return uint32(r.order.Uint16(v)), true
	case e.typ == typeLong:
		return r.order.Uint32(v), true
	}
	return 0, false
}

// ascii returns an ASCII entry's string (at most maxASCII bytes),
// trailing NULs and spaces removed, or "" if it is not printable ASCII.
func (r *reader) ascii(e entry) string {
	if e.typ != typeASCII || e.count == 0 {
		return ""
	}
	v, ok := r.value(e, min(e.count, maxASCII))
	if !ok {
		return ""
	}
	s := strings.TrimRight(string(v), "\x00 ")
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7E {
			return ""
		}
	}
	return s
}

// gps returns the position in a GPS IFD, if it has a whole one in range.
func (r *reader) gps(es []entry) (lat, lon float64, ok bool) {
	var latRef, lonRef string
	var latOK, lonOK bool
	for _, e := range es {
		switch e.tag {
		case tagGPSLatitudeRef:
			latRef = r.ascii(e)
		case tagGPSLongitudeRef:
			lonRef = r.ascii(e)
		case tagGPSLatitude:
			lat, latOK = r.degrees(e)
		case tagGPSLongitude:
			lon, lonOK = r.degrees(e)
		}
	}
	if !latOK || !lonOK {
		return 0, 0, false
	}
	switch latRef {
	case "S":
		lat = -lat
	case "N":
	default:
		return 0, 0, false
	}
	switch lonRef {
	case "W":
		lon = -lon
	case "E":
	default:
		return 0, 0, false
	}
	if lat < -90 || lat > 90 || lon < -180 || lon > 180 || math.IsNaN(lat) || math.IsNaN(lon) {
		return 0, 0, false
	}
	return lat, lon, true
}

// degrees reads three RATIONALs (degrees, minutes, seconds) as degrees.
func (r *reader) degrees(e entry) (float64, bool) {
	if e.typ != typeRational || e.count < 3 {
		return 0, false
	}
	v, ok := r.value(e, 3)
	if !ok {
		return 0, false
	}
	var dms [3]float64
	for i := range dms {
		num, den := r.order.Uint32(v[8*i:]), r.order.Uint32(v[8*i+4:])
		if den == 0 {
			return 0, false
		}
		dms[i] = float64(num) / float64(den)
	}
	return dms[0] + dms[1]/60 + dms[2]/3600, true
}
