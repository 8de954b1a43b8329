package main

import (
	"archive/zip"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPublishAndExportXLSForm checks what the command sends and writes:
// the workbook and its files in one multipart form, the preview route for
// --dry-run, every problem of a refused workbook, and an export's files.
// The server side of these routes is tested in server/api.
func TestPublishAndExportXLSForm(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	wb := write("canteen.xlsx", "PK fake workbook")
	csv := write("towns.csv", "name,label\nt1,城关镇\n")

	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	for name, body := range map[string]string{"canteen-v2.xlsx": "workbook bytes", "codes.csv": "town,code\n"} {
		w, _ := zw.Create(name)
		w.Write([]byte(body))
	}
	zw.Close()

	type seen struct {
		path  string
		parts map[string]string // form field/file name → content
	}
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := seen{path: r.URL.Path, parts: map[string]string{}}
		if err := r.ParseMultipartForm(1 << 20); err == nil {
			for field, hs := range r.MultipartForm.File {
				for _, h := range hs {
					f, _ := h.Open()
					b, _ := io.ReadAll(f)
					s.parts[field+"/"+h.Filename] = string(b)
				}
			}
		}
		got = append(got, s)
		switch r.URL.Path {
		case "/v1/admin/forms/xlsform/preview":
			w.Write([]byte(`{"id":"canteen","version":2,"outcome":"preview","version_derived":true,"warnings":[]}`))
		case "/v1/admin/forms/xlsform":
			w.WriteHeader(400)
			w.Write([]byte(`{"error":{"code":"invalid","message":"XLSForm 表格有 1 处问题 / the XLSForm workbook has 1 problem(s)","fields":{"survey[3].type":"x"}},
				"problems":[{"sheet":"survey","row":3,"column":"type","message":{"zh":"fieldsync 不支持 OpenStreetMap 题（osm）","en":"fieldsync does not have OpenStreetMap questions (osm)"}}],
				"warnings":[{"sheet":"survey","row":1,"column":"$kuid","message":{"zh":"已忽略","en":"ignored"}}]}`))
		case "/v1/admin/forms/canteen/2/xlsform":
			w.Header().Set("Content-Type", "application/zip")
			w.Write(zipped.Bytes())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	env := func(k string) string {
		return map[string]string{"FIELDSYNC_URL": srv.URL, "FIELDSYNC_ADMIN_TOKEN": "test-token-0123456789"}[k]
	}

	var out bytes.Buffer
	if err := run(t.Context(), []string{"publish", "--dry-run", wb, csv}, &out, env); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"outcome": "preview"`) {
		t.Errorf("dry run printed %s", out.String())
	}
	want := map[string]string{"workbook/canteen.xlsx": "PK fake workbook", "files/towns.csv": "name,label\nt1,城关镇\n"}
	if len(got) != 1 || got[0].path != "/v1/admin/forms/xlsform/preview" || len(got[0].parts) != 2 ||
		got[0].parts["workbook/canteen.xlsx"] != want["workbook/canteen.xlsx"] || got[0].parts["files/towns.csv"] != want["files/towns.csv"] {
		t.Errorf("dry run sent %+v", got)
	}

	err := run(t.Context(), []string{"publish", wb}, &out, env)
	if err == nil || !strings.Contains(err.Error(), "survey 第 3 行 row 3, type: fieldsync 不支持 OpenStreetMap 题（osm） / fieldsync does not have OpenStreetMap questions (osm)") ||
		!strings.Contains(err.Error(), "warnings / 提醒 (1)") {
		t.Errorf("refused publish: %v", err)
	}

	out.Reset()
	dest := filepath.Join(dir, "export", "canteen.xlsx")
	os.MkdirAll(filepath.Dir(dest), 0o755)
	if err := run(t.Context(), []string{"export", "canteen", "2", dest}, &out, env); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"canteen.xlsx": "workbook bytes", "codes.csv": "town,code\n"} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(dest), name))
		if err != nil || string(b) != body {
			t.Errorf("%s = %q, %v; want %q", name, b, err, body)
		}
	}
}
