package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/media"
	"github.com/fieldsync/fieldsync/server/media/mediatest"
	"github.com/fieldsync/fieldsync/syncproto"
)

const mediaAdminToken = "media-test-admin-token"

// schoolAccess lets every principal see the listed schools.
type schoolAccess []string

func (a schoolAccess) CanSeeSchool(ctx context.Context, p server.Principal, school string) (bool, error) {
	return slices.Contains(a, school), nil
}

type mediaFixture struct {
	srv   *Server
	blobs *mediatest.Blobs
	svc   *media.Service
}

func newMediaFixture(t *testing.T) *mediaFixture {
	t.Helper()
	blobs := mediatest.NewBlobs()
	svc := media.New(blobs, mediatest.NewMeta(), schoolAccess{"school-1"}, media.Config{MaxBlobSize: 1 << 20}, nil)
	srv, _ := newTestServer(t, Config{AdminToken: mediaAdminToken}, Deps{Media: svc})
	return &mediaFixture{srv: srv, blobs: blobs, svc: svc}
}

// call sends a request as the admin and decodes a JSON answer into out,
// if out is not nil.
func (f *mediaFixture) call(t *testing.T, method, path string, body []byte, out any) (int, http.Header, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+mediaAdminToken)
	switch method {
	case http.MethodPost:
		req.Header.Set("Content-Type", "application/json")
	case http.MethodPut: // as the phone sends photo bytes
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	status, hdr, text := do(t, f.srv, req)
	if out != nil && status == http.StatusOK {
		if err := json.Unmarshal([]byte(text), out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, text)
		}
	}
	return status, hdr, text
}

// errorCode returns the code of an error body.
func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e syncproto.ErrorResponse
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil {
		t.Fatalf("not an error body: %s", body)
	}
	return e.Error.Code
}

// fakePhoto returns n bytes that pass the upload's checks: a JPEG
// signature, a JFIF segment and a frame header (16×16 pixels), then
// filler no decoder would take.
func fakePhoto(n int) []byte {
	b := bytes.Repeat([]byte("hazard photo "), n/13+1)[:n]
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
		0xFF, 0xC0, 0, 17, 8, 0, 16, 0, 16, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1})
	return b
}

// TestMediaUploadFlow goes through a chunked upload the way a phone does,
// then asks for a link and the record's photo status.
func TestMediaUploadFlow(t *testing.T) {
	f := newMediaFixture(t)
	photo := fakePhoto(250_000)
	sha := mediatest.SHA256(photo)
	blob := "/v1/blobs/" + sha

	var u media.Upload
	if status, _, body := f.call(t, "GET", blob, nil, &u); status != 200 || u.State != media.UploadMissing || u.ChunkBytes != media.DefaultChunkBytes {
		t.Fatalf("GET status = %d %s", status, body)
	}
	for off := 0; off < 200_000; off += 100_000 {
		if status, _, body := f.call(t, "PUT", fmt.Sprintf("%s/chunks/%d", blob, off), photo[off:off+100_000], &u); status != 200 {
			t.Fatalf("PUT chunk %d = %d %s", off, status, body)
		}
	}
	if status, _, body := f.call(t, "GET", blob, nil, &u); status != 200 || u.State != media.UploadPartial || u.Received != 200_000 {
		t.Fatalf("GET status after 2 chunks = %d %s", status, body)
	}
	status, _, body := f.call(t, "PUT", blob+"/chunks/300000", photo[200_000:], nil)
	if status != http.StatusConflict || errorCode(t, body) != syncproto.ECONFLICT {
		t.Fatalf("PUT chunk past the received bytes = %d %s", status, body)
	}
	if status, _, body := f.call(t, "PUT", blob+"/chunks/200000", photo[200_000:], &u); status != 200 || u.Received != 250_000 {
		t.Fatalf("PUT last chunk = %d %s", status, body)
	}
	fin, _ := json.Marshal(map[string]any{"size": len(photo), "content_type": "image/jpeg"})
	if status, _, body := f.call(t, "POST", blob+"/finish", fin, &u); status != 200 || u.State != media.UploadComplete || u.ContentType != "image/jpeg" {
		t.Fatalf("POST finish = %d %s", status, body)
	}

	rec := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "hazard", SchoolID: "school-1", CreatedAt: time.Now().UTC()}
	w := &syncproto.Writer{Replica: syncproto.ReplicaID(uuid.New()), Now: time.Now()}
	rec, _ = syncproto.Set(rec, "photo", []byte(fmt.Sprintf(`{"sha256":%q}`, sha)), w)
	rec.Rev = 1
	if err := f.svc.Expect(t.Context(), rec); err != nil {
		t.Fatal(err)
	}
	var link media.SignedURL
	if status, _, body := f.call(t, "GET", blob+"/url?variant=original", nil, &link); status != 200 || !strings.HasPrefix(link.URL, "mem:") || link.ExpiresAt.IsZero() {
		t.Fatalf("GET url = %d %s", status, body)
	}
	var rp media.RecordPhotos
	if status, _, body := f.call(t, "GET", "/v1/records/"+rec.ID.String()+"/photos", nil, &rp); status != 200 || !rp.Complete || rp.Received != 1 {
		t.Fatalf("GET record photos = %d %s", status, body)
	}
}

// TestMediaErrors checks the statuses photo calls answer with.
func TestMediaErrors(t *testing.T) {
	photo := fakePhoto(10_000)
	sha := mediatest.SHA256(photo)
	text := []byte(strings.Repeat("not a photo ", 1000))
	big := fakePhoto(1<<20 + 1)
	tests := []struct {
		name, method, path string
		body               []byte
		noAuth             bool
		status             int
		code               string
	}{
		{"NoToken", "GET", "/v1/blobs/" + sha, nil, true, 401, syncproto.EUNAUTHORIZED},
		{"BadHash", "GET", "/v1/blobs/XYZ", nil, false, 400, syncproto.EINVALID},
		{"NegativeOffset", "PUT", "/v1/blobs/" + sha + "/chunks/-1", photo, false, 400, syncproto.EINVALID},
		{"PaddedOffset", "PUT", "/v1/blobs/" + sha + "/chunks/00", photo, false, 400, syncproto.EINVALID},
		{"WrongHash", "PUT", "/v1/blobs/" + mediatest.SHA256(text), photo, false, 400, syncproto.EINVALID},
		{"TextPosingAsJPEG", "PUT", "/v1/blobs/" + mediatest.SHA256(text), text, false, 415, syncproto.EUNSUPPORTED},
		{"TooLarge", "PUT", "/v1/blobs/" + mediatest.SHA256(big), big, false, 413, syncproto.ETOOLARGE},
		{"FinishNotJSON", "POST", "/v1/blobs/" + sha + "/finish", []byte("size=3"), false, 400, syncproto.EINVALID},
		{"FinishNothing", "POST", "/v1/blobs/" + sha + "/finish", []byte(`{"size":10000}`), false, 409, syncproto.ECONFLICT},
		{"URLUnknownPhoto", "GET", "/v1/blobs/" + sha + "/url", nil, false, 404, syncproto.ENOTFOUND},
		{"RecordBadID", "GET", "/v1/records/nope/photos", nil, false, 400, syncproto.EINVALID},
	}
	f := newMediaFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, bytes.NewReader(tt.body))
			if !tt.noAuth {
				req.Header.Set("Authorization", "Bearer "+mediaAdminToken)
			}
			if tt.method == "POST" {
				req.Header.Set("Content-Type", "application/json")
			}
			status, _, body := do(t, f.srv, req)
			if status != tt.status || errorCode(t, body) != tt.code {
				t.Fatalf("%s %s = %d %s, want %d %s", tt.method, tt.path, status, body, tt.status, tt.code)
			}
		})
	}
	if keys := f.blobs.Keys(); len(keys) != 0 {
		t.Fatalf("refused uploads left %v", keys)
	}
}

// TestMediaStoreDown checks that photo calls answer 503 with Retry-After
// while MinIO is unreachable, and work again afterwards.
func TestMediaStoreDown(t *testing.T) {
	f := newMediaFixture(t)
	photo := fakePhoto(10_000)
	blob := "/v1/blobs/" + mediatest.SHA256(photo)
	fin := []byte(`{"size":10000}`)
	calls := []struct {
		method, path string
		body         []byte
	}{
		{"GET", blob, nil},
		{"PUT", blob + "/chunks/0", photo},
		{"POST", blob + "/finish", fin},
		{"PUT", blob, photo},
	}
	f.blobs.Down.Store(true)
	for _, c := range calls {
		req := httptest.NewRequest(c.method, c.path, bytes.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+mediaAdminToken)
		req.Header.Set("Content-Type", "application/json")
		status, hdr, body := do(t, f.srv, req)
		if status != 503 || hdr.Get("Retry-After") == "" || errorCode(t, body) != syncproto.EUNAVAILABLE {
			t.Fatalf("%s %s with the store down = %d (Retry-After %q) %s", c.method, c.path, status, hdr.Get("Retry-After"), body)
		}
	}
	f.blobs.Down.Store(false)
	var u media.Upload
	if status, _, body := f.call(t, "PUT", blob, photo, &u); status != 200 || u.State != media.UploadComplete {
		t.Fatalf("PUT after the store came back = %d %s", status, body)
	}
}
