// Command buildcore builds the web app's WebAssembly core and writes it,
// gzipped, to webapp/static/core.wasm.gz (a build product, not committed),
// with the Go runtime's loader (wasm_exec.js of the same Go) next to the
// app's scripts. "make app" runs it when syncproto, forms or the core's
// sources changed, and make build, run and test run make app first, so
// the app never ships a core older than syncproto and forms.
//
// The build is reproducible: -trimpath, no build id, and a fixed gzip
// level, so the same sources and Go version give the same bytes.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "buildcore:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return fmt.Errorf("go list -m: %w", err)
	}
	dir := strings.TrimSpace(string(root))
	tmp, err := os.MkdirTemp("", "buildcore")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	wasm := filepath.Join(tmp, "core.wasm")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", wasm, "./webapp/cmd/corewasm")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build corewasm: %w", err)
	}
	raw, err := os.ReadFile(wasm)
	if err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Write(raw)
	if err := zw.Close(); err != nil {
		return err
	}
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return fmt.Errorf("go env GOROOT: %w", err)
	}
	goroot := strings.TrimSpace(string(out))
	loader, err := os.ReadFile(filepath.Join(goroot, "lib", "wasm", "wasm_exec.js"))
	if err != nil {
		return fmt.Errorf("the Go loader: %w", err)
	}
	want := map[string][]byte{
		filepath.Join(dir, "webapp", "static", "core.wasm.gz"):       gz.Bytes(),
		filepath.Join(dir, "webapp", "static", "js", "wasm_exec.js"): loader,
	}
	for path, b := range want {
		if old, _ := os.ReadFile(path); bytes.Equal(old, b) {
			continue
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("core.wasm: %d bytes, %d gzipped\n", len(raw), gz.Len())
	return nil
}
