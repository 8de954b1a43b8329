package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/fieldsync/fieldsync/webapp"
)

// TestApp checks how /app/ is served: the redirect, types, ETags and
// revalidation, and the core sent gzipped once (not compressed again by
// the compression middleware) or plain to a client without gzip.
func TestApp(t *testing.T) {
	app := webapp.Load()
	s := NewServer(Config{}, Deps{App: app}, nil)
	tests := []struct {
		name, path, accept, ifNoneMatch string
		status                          int
		typ, encoding                   string
		magic                           string // the first bytes after decoding Content-Encoding
	}{
		{"Redirect", "/app", "", "", http.StatusMovedPermanently, "", "", ""},
		{"StartPage", "/app/", "gzip", "", http.StatusOK, "text/html; charset=utf-8", "gzip", "<!doctype html>"},
		{"Script", "/app/js/engine.js", "", "", http.StatusOK, "text/javascript; charset=utf-8", "", "//"},
		{"CoreGzipped", "/app/core.wasm", "gzip, deflate, br", "", http.StatusOK, "application/wasm", "gzip", "\x00asm"},
		{"CorePlain", "/app/core.wasm", "", "", http.StatusOK, "application/wasm", "", "\x00asm"},
		{"Manifest", "/app/manifest.webmanifest", "", "", http.StatusOK, "application/manifest+json", "", "{"},
		{"NotFound", "/app/nope.js", "", "", http.StatusNotFound, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path == "/app/core.wasm" && !app.HasCore() {
				// The core is a build product (make app); make test builds it.
				if os.Getenv("FIELDSYNC_REQUIRE_INTEGRATION") != "" {
					t.Fatal("the web app's core is not built: make test runs make app first")
				}
				t.Skip("the web app's core is not built: run make app")
			}
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.accept != "" {
				req.Header.Set("Accept-Encoding", tt.accept)
			}
			resp, err := s.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusMovedPermanently {
				if loc := resp.Header.Get("Location"); loc != "/app/" {
					t.Errorf("Location %q", loc)
				}
				return
			}
			if tt.status != http.StatusOK {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tt.typ {
				t.Errorf("Content-Type %q, want %q", got, tt.typ)
			}
			if got := resp.Header.Get("Content-Encoding"); got != tt.encoding {
				t.Errorf("Content-Encoding %q, want %q", got, tt.encoding)
			}
			body, _ := io.ReadAll(resp.Body)
			if tt.encoding == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("gzip: %v", err)
				}
				body, _ = io.ReadAll(zr)
			}
			if !bytes.HasPrefix(body, []byte(tt.magic)) {
				t.Errorf("body starts %q, want %q", body[:min(16, len(body))], tt.magic)
			}
			// The same file again with its ETag: 304, no body.
			etag := resp.Header.Get("ETag")
			req = httptest.NewRequest(http.MethodGet, tt.path, nil)
			req.Header.Set("If-None-Match", etag)
			resp2, err := s.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			resp2.Body.Close()
			if etag == "" || resp2.StatusCode != http.StatusNotModified {
				t.Errorf("revalidation with ETag %q: %d, want 304", etag, resp2.StatusCode)
			}
		})
	}
}
