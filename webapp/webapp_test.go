package webapp_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/fieldsync/fieldsync/webapp"
)

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestAssetsLookup(t *testing.T) {
	fsys := fstest.MapFS{
		"static/index.html":           {Data: []byte("<!doctype html>")},
		"static/js/app.js":            {Data: []byte("export {}")},
		"static/core.wasm.gz":         {Data: gz("\x00asm core")},
		"static/manifest.webmanifest": {Data: []byte("{}")},
		"static/sw.js":                {Data: []byte(`const VERSION = "__VERSION__"; const SHELL = ["__SHELL__"];`)},
	}
	a, err := webapp.New(fsys)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path       string
		gzip       bool
		found      bool
		typ, enc   string
		bodyPrefix string
	}{
		{"", true, true, "text/html; charset=utf-8", "", "<!doctype"},
		{"/", true, true, "text/html; charset=utf-8", "", "<!doctype"},
		{"js/app.js", true, true, "text/javascript; charset=utf-8", "", "export"},
		{"core.wasm", true, true, "application/wasm", "gzip", "\x1f\x8b"},
		{"core.wasm", false, true, "application/wasm", "", "\x00asm"},
		{"core.wasm.gz", true, false, "", "", ""},
		{"manifest.webmanifest", true, true, "application/manifest+json", "", "{}"},
		{"../static/index.html", true, false, "", "", ""},
		{"nope.js", true, false, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f, ok := a.Lookup(tt.path, tt.gzip)
			if ok != tt.found {
				t.Fatalf("found %v, want %v", ok, tt.found)
			}
			if !ok {
				return
			}
			if f.ContentType != tt.typ || f.Encoding != tt.enc || !bytes.HasPrefix(f.Body, []byte(tt.bodyPrefix)) || f.ETag == "" {
				t.Errorf("got type %q encoding %q etag %q body %q", f.ContentType, f.Encoding, f.ETag, f.Body[:min(8, len(f.Body))])
			}
		})
	}
	sw, _ := a.Lookup("sw.js", true)
	for _, want := range []string{`"` + a.Version() + `"`, `"./"`, `"core.wasm"`, `"js/app.js"`, `"index.html"`} {
		if !strings.Contains(string(sw.Body), want) {
			t.Errorf("sw.js lacks %s: %s", want, sw.Body)
		}
	}
	if strings.Contains(string(sw.Body), "__") || strings.Contains(string(sw.Body), `"sw.js"`) {
		t.Errorf("sw.js: %s", sw.Body)
	}
	if sent, raw := a.ShellSize(); sent <= 0 || raw <= 0 {
		t.Errorf("shell size: sent %d, raw %d", sent, raw)
	}
}

// TestEmbeddedApp checks the app fieldsyncd serves: its start page,
// manifest, service worker and core are there.
func TestEmbeddedApp(t *testing.T) {
	a := webapp.Load()
	if !a.HasCore() {
		if os.Getenv("FIELDSYNC_REQUIRE_INTEGRATION") != "" {
			t.Fatal("the web app's core is not built: make test runs make app first")
		}
		t.Skip("the web app's core is not built: run make app")
	}
	for _, p := range []string{"index.html", "manifest.webmanifest", "sw.js", "core.wasm", "js/app.js", "js/engine.js", "js/upload.js", "js/wasm_exec.js", "icons/icon-192.png", "icons/icon-512.png"} {
		if _, ok := a.Lookup(p, true); !ok {
			t.Errorf("the embedded app has no %s", p)
		}
	}
	if f, _ := a.Lookup("core.wasm", false); !bytes.HasPrefix(f.Body, []byte("\x00asm")) {
		t.Errorf("core.wasm is not WebAssembly")
	}
}
