// Command fieldsyncctl is the office's command-line client of fieldsyncd's
// admin API: it creates inspectors and assignments, makes enrollment
// codes, lists and resolves conflicts, publishes forms, and seeds the
// domain brief's sample county for a demo.
//
//	fieldsyncctl demo                                  seed the sample county, print an enrollment code
//	fieldsyncctl inspector ID USER_ID NAME             create or replace an inspector
//	fieldsyncctl assign ID INSPECTOR_ID SCHOOL_ID START [END]
//	fieldsyncctl code INSPECTOR_ID                     make a one-time enrollment code
//	fieldsyncctl revoke DEVICE_ID
//	fieldsyncctl conflicts [open|resolved]
//	fieldsyncctl resolve CONFLICT_ID JSON_VALUE
//	fieldsyncctl publish [--dry-run] FILE.json|FILE.xlsx [FILE…]
//	                                                   publish a form version; an XLSForm workbook
//	                                                   with the CSV, XML and media files it names;
//	                                                   --dry-run shows what would be published
//	fieldsyncctl export FORM_ID VERSION [OUT.xlsx]     a questionnaire version as an XLSForm workbook
//	fieldsyncctl retire FORM_ID VERSION
//
// It talks HTTP only: it imports no server package. The server and the
// token come from -server (FIELDSYNC_URL, default http://127.0.0.1:8080)
// and FIELDSYNC_ADMIN_TOKEN, or data/admin-token as make run writes it.
package main

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/syncproto"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "fieldsyncctl:", err)
		os.Exit(1)
	}
}

type client struct {
	url, token string
	http       *http.Client
}

func run(ctx context.Context, args []string, out io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("fieldsyncctl", flag.ContinueOnError)
	def := getenv("FIELDSYNC_URL")
	if def == "" {
		def = "http://127.0.0.1:8080"
	}
	server := fs.String("server", def, "fieldsyncd base URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tok := getenv("FIELDSYNC_ADMIN_TOKEN")
	if tok == "" {
		if b, err := os.ReadFile(filepath.Join("data", "admin-token")); err == nil {
			tok = strings.TrimSpace(string(b))
		}
	}
	if tok == "" {
		return errors.New("no admin token: set FIELDSYNC_ADMIN_TOKEN (make run keeps it in data/admin-token)")
	}
	c := &client{url: strings.TrimRight(*server, "/"), token: tok, http: &http.Client{Timeout: 60 * time.Second}}
	a := fs.Args()
	if len(a) == 0 {
		return errors.New("usage: fieldsyncctl [-server URL] demo|inspector|assign|code|revoke|conflicts|resolve|publish|export|retire …")
	}
	need := func(n int) error {
		if len(a)-1 < n {
			return fmt.Errorf("%s needs %d arguments", a[0], n)
		}
		return nil
	}
	var resp any
	var err error
	switch a[0] {
	case "demo":
		return c.demo(ctx, out)
	case "inspector":
		if err = need(3); err == nil {
			err = c.do(ctx, "PUT", "/v1/admin/inspectors/"+a[1], map[string]any{"user_id": a[2], "name": a[3], "active": true}, &resp)
		}
	case "assign":
		if err = need(4); err == nil {
			body := map[string]any{"inspector_id": a[2], "school_id": a[3], "start_date": a[4]}
			if len(a) > 5 {
				body["end_date"] = a[5]
			}
			err = c.do(ctx, "PUT", "/v1/admin/assignments/"+a[1], body, &resp)
		}
	case "code":
		if err = need(1); err == nil {
			err = c.do(ctx, "POST", "/v1/admin/inspectors/"+a[1]+"/enrollment-codes", nil, &resp)
		}
	case "revoke":
		if err = need(1); err == nil {
			err = c.do(ctx, "POST", "/v1/admin/devices/"+a[1]+"/revoke", nil, &resp)
		}
	case "conflicts":
		q := ""
		if len(a) > 1 {
			q = "?status=" + a[1]
		}
		err = c.do(ctx, "GET", "/v1/conflicts"+q, nil, &resp)
	case "resolve":
		if err = need(2); err == nil {
			err = c.do(ctx, "POST", "/v1/conflicts/"+a[1]+"/resolve", map[string]any{"value": json.RawMessage(a[2])}, &resp)
		}
	case "publish":
		dry := len(a) > 1 && (a[1] == "--dry-run" || a[1] == "-dry-run" || a[1] == "-n")
		files := a[1:]
		if dry {
			files = a[2:]
		}
		if len(files) == 0 {
			return errors.New("publish needs a file: fieldsyncctl publish [--dry-run] FILE.json|FILE.xlsx [FILE…]")
		}
		err = c.publish(ctx, files[0], files[1:], dry, &resp)
	case "export":
		if err = need(2); err == nil {
			dest := ""
			if len(a) > 3 {
				dest = a[3]
			}
			return c.export(ctx, a[1], a[2], dest, out)
		}
	case "retire":
		if err = need(2); err == nil {
			err = c.do(ctx, "POST", "/v1/admin/forms/"+a[1]+"/"+a[2]+"/retire", nil, &resp)
		}
	default:
		return fmt.Errorf("unknown command %q", a[0])
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(resp)
}

// do sends a JSON request and decodes a JSON answer; an error answer
// becomes a *syncproto.Error.
func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	return c.send(ctx, method, path, "application/json", r, out)
}

func (c *client) send(ctx context.Context, method, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var re refusal
		if json.Unmarshal(b, &re) == nil && len(re.Problems) > 0 {
			return &re
		}
		var e syncproto.ErrorResponse
		if json.Unmarshal(b, &e) == nil && e.Error != nil {
			return fmt.Errorf("%s %s: %d: %w", method, path, resp.StatusCode, e.Error)
		}
		return fmt.Errorf("%s %s: %d: %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// publish sends a form: JSON as it is, an XLSForm workbook in a
// multipart form with the files published with it. A dry run asks the
// preview route, which writes nothing.
func (c *client) publish(ctx context.Context, file string, files []string, dryRun bool, out any) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(strings.ToLower(file), ".xlsx") {
		if dryRun || len(files) > 0 {
			return errors.New("--dry-run and extra files are for XLSForm workbooks (.xlsx)")
		}
		return c.send(ctx, "POST", "/v1/admin/forms", "application/json", bytes.NewReader(b), out)
	}
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	parts := append([]string{file}, files...)
	for i, name := range parts {
		data := b
		if i > 0 {
			if data, err = os.ReadFile(name); err != nil {
				return err
			}
		}
		field := "files"
		if i == 0 {
			field = "workbook"
		}
		part, err := w.CreateFormFile(field, filepath.Base(name))
		if err != nil {
			return err
		}
		if _, err := part.Write(data); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	path := "/v1/admin/forms/xlsform"
	if dryRun {
		path += "/preview"
	}
	err = c.send(ctx, "POST", path, w.FormDataContentType(), &body, out)
	var re *refusal
	if errors.As(err, &re) {
		return re
	}
	return err
}

// refusal is a workbook the server refused: every problem with its place.
type refusal struct {
	Problems []problem `json:"problems"`
	Warnings []problem `json:"warnings"`
}

type problem struct {
	Sheet   string `json:"sheet"`
	Row     int    `json:"row"`
	Column  string `json:"column"`
	Message struct {
		ZH string `json:"zh"`
		EN string `json:"en"`
	} `json:"message"`
}

func (p problem) String() string {
	where := cmpOr(p.Sheet, "workbook")
	if p.Row > 0 {
		where += fmt.Sprintf(" 第 %d 行 row %d", p.Row, p.Row)
	}
	if p.Column != "" {
		where += ", " + p.Column
	}
	return where + ": " + p.Message.ZH + " / " + p.Message.EN
}

func (r *refusal) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the workbook has %d problem(s) / 表格有 %d 处问题:", len(r.Problems), len(r.Problems))
	for _, p := range r.Problems {
		b.WriteString("\n  " + p.String())
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintf(&b, "\nwarnings / 提醒 (%d):", len(r.Warnings))
		for _, p := range r.Warnings {
			b.WriteString("\n  " + p.String())
		}
	}
	return b.String()
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// export saves a questionnaire version as an XLSForm workbook (out, or
// FORM_ID-vVERSION.xlsx); a form whose pulldata() reads CSV files comes as
// a zip archive, whose files are written next to the workbook.
func (c *client) export(ctx context.Context, id, version, out string, stdout io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.url+"/v1/admin/forms/"+id+"/"+version+"/xlsform", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e syncproto.ErrorResponse
		if json.Unmarshal(b, &e) == nil && e.Error != nil {
			return fmt.Errorf("export: %d: %w", resp.StatusCode, e.Error)
		}
		return fmt.Errorf("export: %d: %s", resp.StatusCode, b)
	}
	if out == "" {
		out = fmt.Sprintf("%s-v%s.xlsx", id, version)
	}
	files := map[string][]byte{filepath.Base(out): b}
	if resp.Header.Get("Content-Type") == "application/zip" {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return err
		}
		files = map[string][]byte{}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				return err
			}
			data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
			rc.Close()
			if err != nil {
				return err
			}
			name := filepath.Base(f.Name)
			if strings.HasSuffix(name, ".xlsx") {
				name = filepath.Base(out)
			}
			files[name] = data
		}
	}
	dir := filepath.Dir(out)
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %s (%d bytes)\n", filepath.Join(dir, name), len(data))
	}
	return nil
}

// The sample county's inspector, as in samples 04 and 05.
const (
	demoInspector = "0192b000-0000-7000-8000-000000000201"
	demoUser      = "0192b000-0000-7000-8000-000000000211"
)

// demo seeds the sample county: the inspector 陈立群 assigned to the three
// sample schools, and every sample record (schools, the visit, the lesson
// observation, the questionnaire response, the hazard with its history,
// the monthly form…) pushed as the office. Running it again changes
// nothing: the records merge with themselves.
func (c *client) demo(ctx context.Context, out io.Writer) error {
	var ignore any
	if err := c.do(ctx, "PUT", "/v1/admin/inspectors/"+demoInspector, map[string]any{"user_id": demoUser, "name": "陈立群", "phone": "13800001234", "active": true}, &ignore); err != nil {
		return err
	}
	for i, school := range []string{"0192b000-0000-7000-8000-000000000101", "0192b000-0000-7000-8000-000000000102", "0192b000-0000-7000-8000-000000000103"} {
		id := fmt.Sprintf("0192b000-0000-7000-8000-00000000030%d", i+1)
		if err := c.do(ctx, "PUT", "/v1/admin/assignments/"+id, map[string]any{"inspector_id": demoInspector, "school_id": school, "start_date": "2024-03-01"}, &ignore); err != nil {
			return err
		}
	}
	// A fixed writer and clock, so a second run produces the same states
	// and merges as a no-op.
	w := &syncproto.Writer{Replica: samples.OfficeReplica, Author: "office", Now: time.Date(2024, 11, 15, 9, 30, 0, 0, time.UTC)}
	recs, err := samples.Records(w)
	if err != nil {
		return err
	}
	// Op and batch ids derive from the content, so the same seed sent
	// again is a duplicate, and a changed seed is a new batch.
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: samples.OfficeReplica}
	var all strings.Builder
	for _, r := range recs {
		ch := syncproto.Change{Record: r}
		d := ch.Digest()
		ch.OpID = uuid.NewSHA1(uuid.NameSpaceOID, []byte("fieldsync demo op "+d))
		all.WriteString(d)
		req.Changes = append(req.Changes, ch)
	}
	req.BatchID = uuid.NewSHA1(uuid.NameSpaceOID, []byte("fieldsync demo batch "+all.String()))
	var resp syncproto.PushResponse
	if err := c.do(ctx, "POST", "/v1/sync/push", req, &resp); err != nil {
		return err
	}
	counts := map[string]int{}
	for i, res := range resp.Results {
		counts[res.Status]++
		if res.Status == syncproto.StatusRejected {
			fmt.Fprintf(out, "rejected %s %s: %v\n", recs[i].Kind, recs[i].ID, res.Error)
		}
	}
	var code struct {
		Code      string    `json:"code"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if err := c.do(ctx, "POST", "/v1/admin/inspectors/"+demoInspector+"/enrollment-codes", nil, &code); err != nil {
		return err
	}
	fmt.Fprintf(out, "seeded the sample county: %d records %v\n", len(recs), counts)
	fmt.Fprintf(out, "inspector 陈立群 (%s) is assigned to 3 schools\n", demoInspector)
	fmt.Fprintf(out, "enrollment code %s (valid until %s); enroll a phone with:\n", code.Code, code.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintf(out, "  go run ./mobile/cmd/fieldphone --data data/phone.db enroll --server %s --code %s\n", c.url, code.Code)
	return nil
}
