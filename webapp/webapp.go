// Package webapp holds the inspector's offline web app, served by
// fieldsyncd at /app/ from files embedded in the binary (static/): plain
// ES modules with no bundler, a service worker, a web manifest and the
// WebAssembly core (core.wasm.gz, built from webapp/cmd/corewasm by
// "make app", which make build, run and test run first; a binary built
// without it serves the app without its core, and HasCore says so).
//
// Assets answers a path with the bytes, type, ETag and encoding to send;
// server/api maps that to HTTP. The package does no I/O beyond its
// embedded files and must not import Fiber or any server package.
package webapp

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"mime"
	"path"
	"sort"
	"strings"
	"sync"
)

//go:embed static
var static embed.FS

// Asset is one file of the app, ready to send.
type Asset struct {
	Body        []byte
	ContentType string
	// Encoding is "gzip" when Body is gzip-compressed (the core).
	Encoding string
	// ETag is a strong validator of the file's content.
	ETag string
}

// Assets are the app's files by path under /app/.
type Assets struct {
	files   map[string]Asset
	version string
}

var (
	once   sync.Once
	loaded *Assets
)

// HasCore reports whether the app's WebAssembly core is embedded.
func (a *Assets) HasCore() bool {
	_, ok := a.files["core.wasm"]
	return ok
}

// Load returns the embedded app. The service worker (sw.js) gets the
// app's version, a hash of every file, and the list of files to keep
// offline, so a new server version replaces the cached app as a whole.
func Load() *Assets {
	once.Do(func() {
		a, err := New(static)
		if err != nil {
			panic("webapp: " + err.Error()) // the embedded files are fixed at build time
		}
		loaded = a
	})
	return loaded
}

// New builds Assets from a file system whose "static" folder holds the
// app (for tests; fieldsyncd uses Load).
func New(fsys fs.FS) (*Assets, error) {
	a := &Assets{files: map[string]Asset{}}
	var names []string
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	all := sha256.New()
	var shell []string
	for _, n := range names {
		body, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, err
		}
		rel := strings.TrimPrefix(n, "static/")
		enc := ""
		if strings.HasSuffix(rel, ".gz") {
			rel, enc = strings.TrimSuffix(rel, ".gz"), "gzip"
		}
		sum := sha256.Sum256(body)
		all.Write([]byte(rel))
		all.Write(sum[:])
		a.files[rel] = Asset{Body: body, ContentType: contentType(rel), Encoding: enc, ETag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if rel != "sw.js" && !strings.HasPrefix(rel, "test/") {
			shell = append(shell, rel)
		}
	}
	a.version = hex.EncodeToString(all.Sum(nil)[:8])
	if sw, ok := a.files["sw.js"]; ok {
		list, _ := json.Marshal(append([]string{"./"}, shell...))
		body := bytes.Replace(sw.Body, []byte(`"__VERSION__"`), []byte(`"`+a.version+`"`), 1)
		body = bytes.Replace(body, []byte(`["__SHELL__"]`), list, 1)
		sum := sha256.Sum256(body)
		a.files["sw.js"] = Asset{Body: body, ContentType: sw.ContentType, ETag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return a, nil
}

// Version is a hash of the app's files.
func (a *Assets) Version() string { return a.version }

// Lookup returns the file at p (a path under /app/, "" or "/" for the
// start page). A compressed file is decompressed for a client that does
// not accept gzip.
func (a *Assets) Lookup(p string, acceptGzip bool) (Asset, bool) {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" || p == "." {
		p = "index.html"
	}
	f, ok := a.files[p]
	if !ok {
		return Asset{}, false
	}
	if f.Encoding == "gzip" && !acceptGzip {
		zr, err := gzip.NewReader(bytes.NewReader(f.Body))
		if err != nil {
			return Asset{}, false
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			return Asset{}, false
		}
		f.Body, f.Encoding = body, ""
	}
	return f, true
}

// Paths lists the app's files.
func (a *Assets) Paths() []string {
	out := make([]string, 0, len(a.files))
	for p := range a.files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// ShellSize returns the bytes the phone downloads for the whole app on
// its first visit, as sent (compressed files compressed, the others
// gzipped as the server's compression sends them), and uncompressed.
func (a *Assets) ShellSize() (sent, raw int64) {
	for _, p := range a.Paths() {
		f := a.files[p]
		if strings.HasPrefix(p, "test/") {
			continue
		}
		if f.Encoding == "gzip" {
			sent += int64(len(f.Body))
			full, _ := a.Lookup(p, false)
			raw += int64(len(full.Body))
			continue
		}
		raw += int64(len(f.Body))
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(f.Body)
		zw.Close()
		sent += int64(min(buf.Len(), len(f.Body)))
	}
	return sent, raw
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".webmanifest":
		return "application/manifest+json"
	case ".wasm":
		return "application/wasm"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}
