package media

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fieldsync/fieldsync/syncproto"
)

// Object keys, relative to the blob store's own prefix. Originals and
// thumbnails are content-addressed; the two hex digits after "photos/" and
// "thumbs/" spread the keys over 256 prefixes, which keeps listings short.
//
//	photos/<sha[0:2]>/<sha>                  the original, exactly as uploaded
//	thumbs/<sha[0:2]>/<sha>/<variant>.jpg    the 320 and 1280 px thumbnails
//	staging/<uploader>/<sha>/<offset>        one received chunk of an upload (offset: 16 digits)
//
// An upload belongs to its uploader (see holderID): another device cannot
// see, extend, finish or abort it, and two devices sending the same photo
// each have their own. Listing staging/<uploader>/ gives what one device
// holds in unfinished uploads (its quota).
const (
	photosDir  = "photos/"
	thumbsDir  = "thumbs/"
	stagingDir = "staging/"
)

// offsetDigits is the width of the offset in a staged chunk's key: zero
// padding makes the store list chunks in offset order.
const offsetDigits = 16

// maxOffset is the largest offset a chunk key can hold.
const maxOffset = 1e16 - 1

func photoKey(sha string) string { return photosDir + sha[:2] + "/" + sha }

func thumbKey(sha, variant string) string {
	return thumbsDir + sha[:2] + "/" + sha + "/" + variant + ".jpg"
}

// uploaderPrefix is where one uploader's chunks are staged.
func uploaderPrefix(uploader string) string { return stagingDir + uploader + "/" }

func stagingPrefix(uploader, sha string) string { return uploaderPrefix(uploader) + sha + "/" }

func chunkKey(uploader, sha string, offset int64) string {
	return fmt.Sprintf("%s%0*d", stagingPrefix(uploader, sha), offsetDigits, offset)
}

// parseChunkName returns the offset of a staged chunk from the last element
// of its key: exactly offsetDigits decimal digits.
func parseChunkName(name string) (int64, bool) {
	if len(name) != offsetDigits {
		return 0, false
	}
	var n int64
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// ValidSHA256 reports whether s is a photo id: 64 lower-case hex digits,
// the spelling syncproto.PhotoRefs recognises in records.
func ValidSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func checkSHA256(s string) error {
	if !ValidSHA256(s) {
		return syncproto.Errorf(syncproto.EINVALID, "%q is not a sha256: expected 64 lower-case hex digits.", clip(s, 80))
	}
	return nil
}

// ParseOffset parses a chunk offset as sent in a request: a decimal
// number without sign, spaces or leading zeros, at most 16 digits.
func ParseOffset(s string) (int64, error) {
	bad := func() (int64, error) {
		return 0, syncproto.Errorf(syncproto.EINVALID, "%q is not a byte offset: expected a decimal number such as 262144.", clip(s, 40))
	}
	if s == "" || len(s) > offsetDigits || (len(s) > 1 && s[0] == '0') {
		return bad()
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != s {
		return bad()
	}
	return n, nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
