package webapp_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/fieldsync/fieldsync/internal/browsertest"
	"github.com/fieldsync/fieldsync/mobile/mobiletest"
)

// The sample county (internal/samples): the boarding junior school and
// the inspector the tests enroll.
const (
	schoolJunior = "0192b000-0000-7000-8000-000000000103"
	inspector1   = "0192b000-0000-7000-8000-0000000002a1"
	user1        = "0192b000-0000-7000-8000-0000000002b1"
)

// photo writes a camera-like JPEG: w×h noisy pixels with an EXIF block
// holding orientation 6 (rotate 90°), the time it was taken and a GPS
// position, as a phone camera writes them.
func photo(t *testing.T, seed uint64, w, h int) string {
	t.Helper()
	img, err := mobiletest.JPEG(rand.New(rand.NewPCG(seed, 7)), w, h, 92)
	if err != nil {
		t.Fatal(err)
	}
	out := append([]byte{0xff, 0xd8}, exifSegment()...)
	out = append(out, img[2:]...)
	path := filepath.Join(t.TempDir(), "camera.jpg")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// exifSegment builds an APP1 Exif segment (little-endian TIFF).
func exifSegment() []byte {
	le := binary.LittleEndian
	var t bytes.Buffer
	t.WriteString("II*\x00")
	binary.Write(&t, le, uint32(8))
	entry := func(b *bytes.Buffer, tag, typ uint16, count, value uint32) {
		binary.Write(b, le, tag)
		binary.Write(b, le, typ)
		binary.Write(b, le, count)
		binary.Write(b, le, value)
	}
	// Layout: IFD0 at 8 (3 entries), Exif IFD at 50 (1 entry), GPS IFD
	// at 68 (4 entries), then the data.
	const ifd0, exifIFD, gpsIFD = 8, 50, 68
	const dateAt = gpsIFD + 2 + 4*12 + 4
	const latAt, lngAt = dateAt + 20, dateAt + 20 + 24
	binary.Write(&t, le, uint16(3))
	entry(&t, 0x0112, 3, 1, 6)
	entry(&t, 0x8769, 4, 1, exifIFD)
	entry(&t, 0x8825, 4, 1, gpsIFD)
	binary.Write(&t, le, uint32(0))
	binary.Write(&t, le, uint16(1))
	entry(&t, 0x9003, 2, 20, dateAt)
	binary.Write(&t, le, uint32(0))
	binary.Write(&t, le, uint16(4))
	entry(&t, 1, 2, 2, uint32('N'))
	entry(&t, 2, 5, 3, latAt)
	entry(&t, 3, 2, 2, uint32('E'))
	entry(&t, 4, 5, 3, lngAt)
	binary.Write(&t, le, uint32(0))
	t.WriteString("2026:11:20 09:15:30\x00")
	for _, r := range [][2]uint32{{30, 1}, {49, 1}, {3540, 100}, {115, 1}, {26, 1}, {5208, 100}} {
		binary.Write(&t, le, r[0])
		binary.Write(&t, le, r[1])
	}
	_ = ifd0
	body := append([]byte("Exif\x00\x00"), t.Bytes()...)
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(body)+2))
	return append(seg, body...)
}

// serverSHA256 downloads a photo the server holds and hashes it.
func serverSHA256(t *testing.T, srv *browsertest.Server, sha string) string {
	t.Helper()
	var st struct {
		State    string `json:"state"`
		Received int64  `json:"received"`
	}
	if _, err := srv.Do(t.Context(), http.MethodGet, "/v1/blobs/"+sha, nil, &st); err != nil {
		t.Fatalf("photo %s: %v", sha, err)
	}
	if st.State != "complete" {
		t.Fatalf("photo %s on the server: %+v, want complete", sha, st)
	}
	var u struct {
		URL string `json:"url"`
	}
	if _, err := srv.Do(t.Context(), http.MethodGet, "/v1/blobs/"+sha+"/url", nil, &u); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func enrollable(t *testing.T) (*browsertest.Server, string) {
	t.Helper()
	srv := browsertest.Start(t)
	if err := srv.SeedSamples(t.Context()); err != nil {
		t.Fatal(err)
	}
	code, err := srv.Inspector(t.Context(), inspector1, user1, "陈立群", schoolJunior)
	if err != nil {
		t.Fatal(err)
	}
	return srv, code
}

// TestInspectorDayOffline runs day.js: enroll, go offline, reload, fill a
// visit, an observation and a hazard with a photo, come back and sync;
// then the server holds the records and the photo with the same sha256
// the phone computed over the bytes it kept.
func TestInspectorDayOffline(t *testing.T) {
	srv, code := enrollable(t)
	var out struct {
		Local struct {
			Records []struct {
				ID       string         `json:"id"`
				Kind     string         `json:"kind"`
				SchoolID string         `json:"school_id"`
				Values   map[string]any `json:"values"`
			} `json:"records"`
			Photos map[string]struct {
				Size   int64  `json:"size"`
				SHA256 string `json:"sha256"`
				Type   string `json:"type"`
			} `json:"photos"`
		} `json:"local"`
		After struct {
			Outbox, Photos, Rejected int
		} `json:"after"`
		Live        string `json:"live"`
		ColdShellMs int    `json:"coldShellMs"`
		Core        struct {
			Start, Fetched, Ready float64
		} `json:"core"`
		Persisted  bool             `json:"persisted"`
		Violations []map[string]any `json:"violations"`
	}
	browsertest.Run(t, "webapp/testdata/browser/day.js", map[string]any{"url": srv.URL, "code": code, "photo": photo(t, 1, 2400, 1800)}, &out)
	kinds := map[string]int{}
	for _, r := range out.Local.Records {
		kinds[r.Kind]++
		var got map[string]any
		if _, err := srv.Do(t.Context(), http.MethodGet, "/v1/records/"+r.ID+"?scope="+r.SchoolID, nil, &got); err != nil {
			t.Errorf("%s %s is not on the server: %v", r.Kind, r.ID, err)
		}
	}
	for _, k := range []string{"visit", "lesson_observation", "hazard", "attachment"} {
		if kinds[k] == 0 {
			t.Errorf("no %s was made offline (made: %v)", k, kinds)
		}
	}
	if len(out.Local.Photos) == 0 {
		t.Fatal("the phone queued no photo")
	}
	for sha, p := range out.Local.Photos {
		if p.SHA256 != sha || p.Type != "image/jpeg" {
			t.Errorf("photo %s: the phone's bytes hash to %s (%s)", sha, p.SHA256, p.Type)
		}
		if got := serverSHA256(t, srv, sha); got != sha {
			t.Errorf("photo %s: the server's copy hashes to %s", sha, got)
		}
	}
	if out.After.Outbox != 0 || out.After.Photos != 0 || out.After.Rejected != 0 {
		t.Errorf("after the sync: %+v, want nothing waiting", out.After)
	}
	if len(out.Violations) > 0 {
		t.Errorf("axe-core found WCAG A/AA violations on the today screen: %v", out.Violations)
	}
	t.Logf("live rubric bar: %s; core ready %.0f ms after it started loading (CPU ×4); persisted storage: %v", out.Live, out.Core.Ready-out.Core.Start, out.Persisted)
}

// TestPhotoUploadResumesAfterClose runs resume.js: the page is closed in
// the middle of a chunked photo upload; the next sync's first chunk starts
// at the offset the server holds (not at zero) and the photo completes
// with the same sha256.
func TestPhotoUploadResumesAfterClose(t *testing.T) {
	srv, code := enrollable(t)
	var out struct {
		SHA256       string  `json:"sha256"`
		Size         int64   `json:"size"`
		ChunksBefore []int64 `json:"chunksBefore"`
		ChunksAfter  []int64 `json:"chunksAfter"`
		StoredOffset int64   `json:"storedOffset"`
	}
	browsertest.Run(t, "webapp/testdata/browser/resume.js", map[string]any{"url": srv.URL, "code": code, "photo": photo(t, 2, 3000, 2250)}, &out)
	if len(out.ChunksBefore) < 3 {
		t.Fatalf("chunks before the close: %v, want at least 3 (the photo was %d bytes)", out.ChunksBefore, out.Size)
	}
	// What the server held when the page closed: the two chunks that got
	// through, i.e. the offset of the third.
	held := out.ChunksBefore[2]
	if len(out.ChunksAfter) == 0 || out.ChunksAfter[0] != held || held == 0 {
		t.Errorf("after reopening, chunks started at %v; want the server's offset %d", out.ChunksAfter, held)
	}
	if got := serverSHA256(t, srv, out.SHA256); got != out.SHA256 {
		t.Errorf("the server's copy hashes to %s, want %s", got, out.SHA256)
	}
}
