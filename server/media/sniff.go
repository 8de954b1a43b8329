package media

import "bytes"

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
