package media

import (
	"bytes"
	"fmt"
	"image"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fieldsync/fieldsync/syncproto"
)

// The content types the server accepts for photos.
const (
	TypeJPEG         = "image/jpeg"
	TypePNG          = "image/png"
	TypeWebP         = "image/webp"
	TypeHEIC         = "image/heic"
	TypeHEICSequence = "image/heic-sequence"
	TypeHEIF         = "image/heif"
	TypeHEIFSequence = "image/heif-sequence"
)

// SniffLen is how many leading bytes Sniff needs to recognise every
// accepted format.
const SniffLen = 12

// heifBrands maps the major brands of an ISO-BMFF "ftyp" box that Sniff
// accepts to their content type. AVIF ("avif") and video brands are not
// photos the office can use, so they are refused.
var heifBrands = map[string]string{
	"heic": TypeHEIC,
	"heix": TypeHEIC,
	"heim": TypeHEIC,
	"heis": TypeHEIC,
	"hevc": TypeHEICSequence,
	"hevx": TypeHEICSequence,
	"mif1": TypeHEIF,
	"msf1": TypeHEIFSequence,
}

// Sniff returns the content type of a photo from its first bytes (at least
// SniffLen of them), judged by magic numbers only: JPEG (FF D8 FF), PNG (the
// 8-byte signature), WebP ("RIFF", a size, "WEBP") and HEIC/HEIF (an "ftyp"
// box at offset 4 with one of the brands above). It returns "" for anything
// else. A declared content type is never trusted: the bytes decide.
func Sniff(head []byte) string {
	switch {
	case len(head) >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF:
		return TypeJPEG
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return TypePNG
	case len(head) >= 12 && string(head[0:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return TypeWebP
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		return heifBrands[string(head[8:12])]
	}
	return ""
}

// Decodable reports whether the server can decode a photo of this content
// type to make thumbnails. HEIC and HEIF need a HEVC decoder, which pure Go
// does not have: their originals are kept and served, without thumbnails.
func Decodable(contentType string) bool {
	switch contentType {
	case TypeJPEG, TypePNG, TypeWebP:
		return true
	}
	return false
}

// HeadLen is how many leading bytes of an upload Identify reads: enough
// for the header of every decodable format, EXIF and color profiles
// included.
const HeadLen = 512 << 10

// Identify decides whether the first bytes of an upload (its whole
// content, or its first HeadLen bytes) are a photo the server accepts,
// and returns its content type. The magic numbers must match (Sniff), and
// a JPEG, PNG or WebP must also decode as one: its header must parse and
// give a size (image.DecodeConfig), so that an HTML page behind FF D8 FF
// is refused. HEIC and HEIF, which pure Go cannot decode, are judged by
// their "ftyp" box. Anything else is EUNSUPPORTED, naming declared, the
// type the phone gave.
func Identify(head []byte, declared string) (string, error) {
	ct := Sniff(head[:min(len(head), SniffLen)])
	if ct == "" {
		return "", unsupported(declared)
	}
	if !Decodable(ct) {
		return ct, nil
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(head))
	if err != nil || cfg.Width <= 0 || cfg.Height <= 0 {
		return "", syncproto.Errorf(syncproto.EUNSUPPORTED,
			"The bytes start like %s but do not decode as one%s.", ct, reason(err))
	}
	return ct, nil
}

func reason(err error) string {
	if err == nil {
		return ": the image has no pixels"
	}
	return fmt.Sprintf(" (%s)", clip(err.Error(), 80))
}

// maxDeclaredType is the longest content type a phone may declare.
const maxDeclaredType = 100

// checkDeclaredType refuses a declared content type that no phone sends
// (EINVALID naming content_type): invalid UTF-8, control characters (U+0000
// above all), or longer than maxDeclaredType bytes. It is only ever quoted
// back, but it is checked before anything else so that nothing is done
// for such a request.
func checkDeclaredType(declared string) error {
	var msg string
	switch {
	case !utf8.ValidString(declared):
		msg = "must be valid UTF-8 text"
	case strings.IndexFunc(declared, unicode.IsControl) >= 0:
		msg = "must not contain control characters"
	case len(declared) > maxDeclaredType:
		msg = fmt.Sprintf("must be at most %d bytes", maxDeclaredType)
	default:
		return nil
	}
	return syncproto.FieldError("The content type is not a media type.", map[string]string{"content_type": msg})
}
