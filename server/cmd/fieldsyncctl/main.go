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
//	fieldsyncctl user add LOGIN NAME ROLE[,ROLE…] [ZONE_OR_SCHOOL…]
//	                                                   create an office account (the first admin too);
//	                                                   the password from FIELDSYNC_USER_PASSWORD or stdin;
//	                                                   roles inspector, office_reviewer, office_head, admin;
//	                                                   zone:ID or school:ID scope it (none: the county)
//	fieldsyncctl audit verify                          walk the audit log's hash chain; name the first broken link
//	fieldsyncctl readmodel rebuild                     rebuild the console's read model from the change log
//	fieldsyncctl report quotas|feedback|export|settings …  quota completion, the month's feedback
//	                                                   forms, ledgers as XLSX/CSV, the quotas
//
// It talks HTTP only: it imports no server package. The server and the
// token come from -server (FIELDSYNC_URL, default http://127.0.0.1:8080)
// and FIELDSYNC_ADMIN_TOKEN, or data/admin-token as make run writes it.
package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/syncproto"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "fieldsyncctl:", err)
		os.Exit(1)
	}
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
	c := client.New(*server, tok)
	a := fs.Args()
	if len(a) == 0 {
		return errors.New("usage: fieldsyncctl [-server URL] demo|inspector|assign|code|revoke|conflicts|resolve|publish|export|retire|report …")
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
		return demo(ctx, c, out)
	case "user":
		if len(a) < 5 || a[1] != "add" {
			return errors.New("usage: fieldsyncctl user add LOGIN NAME ROLE[,ROLE…] [zone:ID|school:ID…]")
		}
		resp, err = userAdd(ctx, c, a[2:], getenv)
	case "readmodel":
		if len(a) < 2 || a[1] != "rebuild" {
			return errors.New("usage: fieldsyncctl readmodel rebuild")
		}
		resp, err = c.RebuildReadModel(ctx)
	case "audit":
		if len(a) < 2 || a[1] != "verify" {
			return errors.New("usage: fieldsyncctl audit verify")
		}
		rep, err := c.VerifyAudit(ctx)
		if err != nil {
			return err
		}
		if !rep.OK {
			fmt.Fprintf(out, "audit log BROKEN at entry %d: %s (%d entries checked before it)\n", rep.Broken, rep.Reason, rep.Checked)
			return fmt.Errorf("the audit log is broken at entry %d", rep.Broken)
		}
		fmt.Fprintf(out, "audit log intact: %d entries, last hash %s\n", rep.Checked, rep.Last)
		return nil
	case "inspector":
		if err = need(3); err == nil {
			resp, err = c.PutInspector(ctx, a[1], client.Inspector{UserID: a[2], Name: a[3], Active: true})
		}
	case "assign":
		if err = need(4); err == nil {
			as := client.Assignment{InspectorID: a[2], SchoolID: a[3], Start: a[4]}
			if len(a) > 5 {
				as.End = a[5]
			}
			resp, err = c.PutAssignment(ctx, a[1], as)
		}
	case "code":
		if err = need(1); err == nil {
			resp, err = c.EnrollmentCode(ctx, a[1])
		}
	case "revoke":
		if err = need(1); err == nil {
			resp, err = c.Revoke(ctx, a[1])
		}
	case "conflicts":
		status := ""
		if len(a) > 1 {
			status = a[1]
		}
		resp, err = c.Conflicts(ctx, status)
	case "resolve":
		if err = need(2); err == nil {
			resp, err = c.Resolve(ctx, a[1], json.RawMessage(a[2]))
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
		resp, err = publish(ctx, c, files[0], files[1:], dry)
	case "export":
		if err = need(2); err == nil {
			dest := ""
			if len(a) > 3 {
				dest = a[3]
			}
			return export(ctx, c, a[1], a[2], dest, out)
		}
	case "report":
		return report(ctx, c, a[1:], out)
	case "retire":
		if err = need(2); err == nil {
			resp, err = c.RetireForm(ctx, a[1], a[2])
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

// publish sends a form: JSON as it is, an XLSForm workbook with the files
// published with it. A dry run asks the preview route, which writes
// nothing.
func publish(ctx context.Context, c *client.Client, file string, files []string, dryRun bool) (json.RawMessage, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(strings.ToLower(file), ".xlsx") {
		if dryRun || len(files) > 0 {
			return nil, errors.New("--dry-run and extra files are for XLSForm workbooks (.xlsx)")
		}
		return c.PublishForm(ctx, b)
	}
	parts := []client.File{{Name: filepath.Base(file), Data: b}}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		parts = append(parts, client.File{Name: filepath.Base(name), Data: data})
	}
	return c.PublishXLSForm(ctx, parts, dryRun)
}

// export saves a questionnaire version as an XLSForm workbook (out, or
// FORM_ID-vVERSION.xlsx); a form whose pulldata() reads CSV files comes as
// a zip archive, whose files are written next to the workbook.
func export(ctx context.Context, c *client.Client, id, version, out string, stdout io.Writer) error {
	b, contentType, err := c.ExportXLSForm(ctx, id, version)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if out == "" {
		out = fmt.Sprintf("%s-v%s.xlsx", id, version)
	}
	files := map[string][]byte{filepath.Base(out): b}
	if contentType == "application/zip" {
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
func demo(ctx context.Context, c *client.Client, out io.Writer) error {
	if _, err := c.PutInspector(ctx, demoInspector, client.Inspector{UserID: demoUser, Name: "陈立群", Phone: "13800001234", Active: true}); err != nil {
		return err
	}
	for i, school := range []string{"0192b000-0000-7000-8000-000000000101", "0192b000-0000-7000-8000-000000000102", "0192b000-0000-7000-8000-000000000103"} {
		id := fmt.Sprintf("0192b000-0000-7000-8000-00000000030%d", i+1)
		if _, err := c.PutAssignment(ctx, id, client.Assignment{InspectorID: demoInspector, SchoolID: school, Start: "2024-03-01"}); err != nil {
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
	resp, err := c.Push(ctx, &req)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for i, res := range resp.Results {
		counts[res.Status]++
		if res.Status == syncproto.StatusRejected {
			fmt.Fprintf(out, "rejected %s %s: %v\n", recs[i].Kind, recs[i].ID, res.Error)
		}
	}
	code, err := c.EnrollmentCode(ctx, demoInspector)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "seeded the sample county: %d records %v\n", len(recs), counts)
	fmt.Fprintf(out, "inspector 陈立群 (%s) is assigned to 3 schools\n", demoInspector)
	fmt.Fprintf(out, "enrollment code %s (valid until %s); enroll a phone with:\n", code.Code, code.ExpiresAt.Format(time.RFC3339))
	fmt.Fprintf(out, "  go run ./mobile/cmd/fieldphone --data data/phone.db enroll --server %s --code %s\n", c.BaseURL, code.Code)
	return nil
}

// userAdd creates an office account: LOGIN NAME ROLES [zone:ID|school:ID…].
func userAdd(ctx context.Context, c *client.Client, a []string, getenv func(string) string) (client.Account, error) {
	acc := client.Account{Login: a[0], Name: a[1], Roles: strings.Split(a[2], ",")}
	for _, s := range a[3:] {
		switch kind, id, _ := strings.Cut(s, ":"); kind {
		case "zone":
			acc.Zones = append(acc.Zones, id)
		case "school":
			acc.Schools = append(acc.Schools, id)
		default:
			return client.Account{}, fmt.Errorf("%q: write zone:ID or school:ID", s)
		}
	}
	acc.Password = getenv("FIELDSYNC_USER_PASSWORD")
	if acc.Password == "" {
		fmt.Fprint(os.Stderr, "password (at least 10 characters): ")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return client.Account{}, fmt.Errorf("reading the password: %w", err)
		}
		acc.Password = strings.TrimRight(line, "\r\n")
	}
	return c.CreateAccount(ctx, acc)
}
