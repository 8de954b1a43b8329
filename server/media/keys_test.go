package media

import (
	"bytes"
	"go/build"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/syncproto"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		head string
		want string
	}{
		{"JPEG", "\xFF\xD8\xFF\xE0\x00\x10JFIF\x00\x01", TypeJPEG},
		{"JPEGExif", "\xFF\xD8\xFF\xE1\x12\x34Exif\x00\x00", TypeJPEG},
		{"PNG", "\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", TypePNG},
		{"WebP", "RIFF\x24\x00\x00\x00WEBPVP8 ", TypeWebP},
		{"HEIC", "\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", TypeHEIC},
		{"HEIF", "\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00", TypeHEIF},
		{"HEICSequence", "\x00\x00\x00\x1cftyphevc\x00\x00\x00\x00", TypeHEICSequence},
		{"AVIF", "\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", ""},
		{"MP4", "\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", ""},
		{"Text", "This is a text file posing as a JPEG", ""},
		{"GIF", "GIF89a\x01\x00\x01\x00\x00\x00", ""},
		{"WAV", "RIFF\x24\x00\x00\x00WAVEfmt ", ""},
		{"TruncatedJPEG", "\xFF\xD8", ""},
		{"TruncatedPNG", "\x89PNG\r\n", ""},
		{"Empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sniff([]byte(tt.head)); got != tt.want {
				t.Fatalf("Sniff(%q) = %q, want %q", tt.head, got, tt.want)
			}
		})
	}
}

// FuzzSniff checks that Sniff never panics, answers only accepted types,
// needs no more than SniffLen bytes, and that what it accepts starts with
// the right magic number.
func FuzzSniff(f *testing.F) {
	for _, s := range []string{"\xFF\xD8\xFF", "\x89PNG\r\n\x1a\n", "RIFF\x00\x00\x00\x00WEBP", "\x00\x00\x00\x18ftypheic", "text"} {
		f.Add([]byte(s))
	}
	accepted := []string{"", TypeJPEG, TypePNG, TypeWebP, TypeHEIC, TypeHEICSequence, TypeHEIF, TypeHEIFSequence}
	magic := map[string]func([]byte) bool{
		TypeJPEG: func(b []byte) bool { return bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}) },
		TypePNG:  func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) },
		TypeWebP: func(b []byte) bool { return bytes.HasPrefix(b, []byte("RIFF")) && string(b[8:12]) == "WEBP" },
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := Sniff(b)
		if !slices.Contains(accepted, got) {
			t.Fatalf("Sniff = %q", got)
		}
		if len(b) > SniffLen {
			if short := Sniff(b[:SniffLen]); short != got {
				t.Fatalf("Sniff of %d bytes = %q, of the first %d = %q", len(b), got, SniffLen, short)
			}
		}
		if check, ok := magic[got]; ok && !check(b) {
			t.Fatalf("Sniff(%q) = %q without its magic number", b, got)
		}
		if got != "" && Decodable(got) == (got == TypeHEIC || got == TypeHEIF || got == TypeHEICSequence || got == TypeHEIFSequence) {
			t.Fatalf("Decodable(%q) is wrong", got)
		}
	})
}

func TestParseOffset(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"262144", 262144, true},
		{"9999999999999999", 9999999999999999, true},
		{"10000000000000000", 0, false}, // 17 digits
		{"", 0, false},
		{"00", 0, false},
		{"0262144", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{" 1", 0, false},
		{"1e6", 0, false},
		{"0x10", 0, false},
		{"١٢٣", 0, false}, // Arabic-Indic digits
	}
	for _, tt := range tests {
		got, err := ParseOffset(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseOffset(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && syncproto.ErrorCode(err) != syncproto.EINVALID {
			t.Errorf("ParseOffset(%q): code %q", tt.in, syncproto.ErrorCode(err))
		}
	}
}

// FuzzOffsets checks the two offset spellings: what a phone sends
// (ParseOffset, canonical decimal) and a staged chunk's key name
// (parseChunkName, 16 digits). Each parses only its own canonical form,
// never panics, and round-trips.
func FuzzOffsets(f *testing.F) {
	for _, s := range []string{"0", "262144", "0000000000262144", "-1", "99999999999999999", "1_000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseOffset(s); err == nil {
			if n < 0 || n > maxOffset || strconv.FormatInt(n, 10) != s {
				t.Fatalf("ParseOffset(%q) = %d", s, n)
			}
			sha := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
			key := chunkKey("d-1", sha, n)
			back, ok := parseChunkName(key[len(stagingPrefix("d-1", sha)):])
			if !ok || back != n {
				t.Fatalf("chunk key %q parses back to %d, %v; want %d", key, back, ok, n)
			}
		}
		if n, ok := parseChunkName(s); ok {
			if n < 0 || len(s) != offsetDigits {
				t.Fatalf("parseChunkName(%q) = %d", s, n)
			}
			if want := chunkKey("d-1", "x", n)[len("staging/d-1/x/"):]; want != s {
				t.Fatalf("parseChunkName(%q) = %d, which is spelt %q", s, n, want)
			}
		}
	})
}

func TestCovered(t *testing.T) {
	c := func(off, size int64) chunk { return chunk{offset: off, size: size} }
	tests := []struct {
		name   string
		chunks []chunk
		want   int64
	}{
		{"None", nil, 0},
		{"NotFromZero", []chunk{c(10, 10)}, 0},
		{"InOrder", []chunk{c(0, 10), c(10, 10), c(20, 5)}, 25},
		{"Gap", []chunk{c(0, 10), c(11, 10)}, 10},
		{"Overlap", []chunk{c(0, 15), c(10, 10)}, 20},
		{"Inside", []chunk{c(0, 30), c(10, 10)}, 30},
		{"SameStartLongerLast", []chunk{c(0, 10), c(0, 20)}, 20},
	}
	for _, tt := range tests {
		if got := covered(tt.chunks); got != tt.want {
			t.Errorf("%s: covered = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestImports enforces the package rule: the service and mediatest talk to
// storage only through their interfaces, so they import no driver and no
// Fiber.
func TestImports(t *testing.T) {
	forbidden := []string{"go.mongodb.org/", "github.com/minio/", "github.com/gofiber/", "github.com/valyala/"}
	for _, dir := range []string{".", "mediatest"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range pkg.Imports {
			for _, f := range forbidden {
				if strings.HasPrefix(imp, f) {
					t.Errorf("%s imports %s", pkg.ImportPath, imp)
				}
			}
		}
	}
}
