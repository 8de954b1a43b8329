package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/xuri/excelize/v2"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/syncproto"
)

var demoSchools = []string{"0192b000-0000-7000-8000-000000000101", "0192b000-0000-7000-8000-000000000102", "0192b000-0000-7000-8000-000000000103"}

type genHazard struct {
	id, school, severity, found, deadline string
	noticed                               bool
}

// TestReportOnRealServers runs fieldsyncd on the real servers, seeds the
// sample county with fieldsyncctl demo, pushes a generated November of
// visits and hazards through the API (seeded RNG), and checks what
// fieldsyncctl report prints and saves against counts made here.
func TestReportOnRealServers(t *testing.T) {
	srv := testenv.Fieldsyncd(t, 1)[0]
	env := func(k string) string {
		return map[string]string{"FIELDSYNC_URL": srv.URL, "FIELDSYNC_ADMIN_TOKEN": srv.AdminToken}[k]
	}
	ctl := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(t.Context(), args, &out, env); err != nil {
			t.Fatalf("fieldsyncctl %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	ctl("demo")

	// November 2024: visits by the sample inspector (some not counted),
	// hazards reported, some with a notice.
	r := rand.New(rand.NewPCG(2024, 11))
	w := &syncproto.Writer{Replica: uuid.MustParse("0192b000-0000-7000-8000-00000000f0aa"), Author: "0192b000-0000-7000-8000-000000000211", Now: time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC)}
	set := func(rec *syncproto.Record, fields map[string]any) *syncproto.Record {
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b, _ := json.Marshal(fields[k])
			rec, _ = syncproto.Set(rec, k, b, w)
		}
		return rec
	}
	newID := func() uuid.UUID {
		var b [16]byte
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		b[6], b[8] = (b[6]&0x0f)|0x70, (b[8]&0x3f)|0x80
		return uuid.UUID(b)
	}
	var recs []*syncproto.Record
	counted := map[string]int{}
	for range 12 {
		school := demoSchools[r.IntN(2)] // not …0103: it stays without a November visit
		kind := []string{"routine", "follow_up", "special"}[r.IntN(3)]
		date := fmt.Sprintf("2024-11-%02d", 1+r.IntN(30))
		rec := set(&syncproto.Record{ID: newID(), Kind: "visit", SchoolID: school, CreatedAt: w.Now, CreatedBy: w.Author},
			map[string]any{"kind": kind, "status": "completed", "visit_date": date, "lead_inspector_id": "0192b000-0000-7000-8000-000000000201"})
		recs = append(recs, rec)
		if kind != "special" {
			counted[school]++
		}
	}
	var hazards []genHazard
	for i := range 15 {
		h := genHazard{id: newID().String(), school: demoSchools[r.IntN(3)], severity: []string{"low", "medium", "high"}[r.IntN(3)],
			found: fmt.Sprintf("2024-11-%02d", 1+r.IntN(28)), noticed: r.IntN(2) == 0}
		rec := set(&syncproto.Record{ID: uuid.MustParse(h.id), Kind: "hazard", SchoolID: h.school, CreatedAt: w.Now, CreatedBy: w.Author},
			map[string]any{"title": fmt.Sprintf("生成隐患%d", i+1), "category": "fire", "location_desc": "教学楼"})
		at, _ := time.ParseInLocation(time.DateOnly, h.found, syncproto.ChinaTime)
		events := []syncproto.Event{{Type: syncproto.EventReported, ActorID: w.Author, ActorRole: syncproto.RoleInspector, OccurredAt: at.Add(9 * time.Hour), Payload: &syncproto.EventPayload{Severity: h.severity}}}
		if h.noticed {
			h.deadline = at.AddDate(0, 0, 5+r.IntN(20)).Format(time.DateOnly)
			events = append(events,
				syncproto.Event{Type: syncproto.EventConfirmed, ActorID: "0192b000-0000-7000-8000-000000000202", ActorRole: syncproto.RoleOfficeReviewer, OccurredAt: at.Add(10 * time.Hour)},
				syncproto.Event{Type: syncproto.EventNoticeIssued, ActorID: "0192b000-0000-7000-8000-000000000202", ActorRole: syncproto.RoleOfficeReviewer, OccurredAt: at.Add(11 * time.Hour),
					Payload: &syncproto.EventPayload{Deadline: h.deadline, Responsible: json.RawMessage(`{"name":"何志远","role":"校长","phone":"13800000103"}`)}})
		} else {
			h.deadline = at.AddDate(0, 0, map[string]int{"high": 3, "medium": 15, "low": 30}[h.severity]).Format(time.DateOnly)
		}
		for j, e := range events {
			data, err := e.Data()
			if err != nil {
				t.Fatal(err)
			}
			rec, _ = syncproto.Append(rec, "events", fmt.Sprintf("%s-%d", h.id, j), data, w)
		}
		recs = append(recs, rec)
		hazards = append(hazards, h)
	}
	c := client.New(srv.URL, srv.AdminToken)
	req := syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: w.Replica, BatchID: uuid.Must(uuid.NewV7())}
	for _, rec := range recs {
		req.Changes = append(req.Changes, syncproto.Change{OpID: uuid.Must(uuid.NewV7()), Record: rec})
	}
	resp, err := c.Push(t.Context(), &req)
	if err != nil {
		t.Fatal(err)
	}
	for i, res := range resp.Results {
		if res.Status == syncproto.StatusRejected {
			t.Fatalf("change %d rejected: %v", i, res.Error)
		}
	}

	// Quotas, as JSON.
	var rep struct {
		Schools []struct {
			SchoolID string `json:"school_id"`
			Visits   struct {
				Done, Required, Missing float64
				IDs                     []string
			}
			HazardsFound struct{ Done float64 } `json:"hazards_found"`
		}
		Inspectors []struct {
			InspectorID string `json:"inspector_id"`
			Visits      struct{ Done, Required, Missing float64 }
		}
	}
	if err := json.Unmarshal([]byte(ctl("report", "quotas", "2024-11", "-json")), &rep); err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	for _, h := range hazards {
		found[h.school]++
	}
	if len(rep.Schools) != 3 {
		t.Fatalf("%d schools, want the sample county's 3", len(rep.Schools))
	}
	for _, s := range rep.Schools {
		miss := 0.0
		if counted[s.SchoolID] == 0 {
			miss = 1
		}
		if s.Visits.Done != float64(counted[s.SchoolID]) || s.Visits.Required != 1 || s.Visits.Missing != miss || int(s.HazardsFound.Done) != found[s.SchoolID] {
			t.Errorf("school %s: visits %+v, hazards found %v; want %d visits of 1 (missing %v), %d hazards", s.SchoolID, s.Visits, s.HazardsFound.Done, counted[s.SchoolID], miss, found[s.SchoolID])
		}
	}
	if len(rep.Inspectors) != 1 || rep.Inspectors[0].Visits.Required != 3 || rep.Inspectors[0].Visits.Missing != 1 {
		t.Errorf("inspectors %+v, want 陈立群 with 3 school-months required, 1 missing", rep.Inspectors)
	}
	if table := ctl("report", "quotas", "2024-11"); !strings.Contains(table, "陈立群") || !strings.Contains(table, "东河县第二初级中学") {
		t.Errorf("the table does not name the inspector and the schools:\n%s", table)
	}

	// The month's feedback form of the sample: 陈立群 at …0103 in October.
	var fb struct {
		Forms []struct {
			SchoolID   string              `json:"school_id"`
			Sources    map[string][]string `json:"sources"`
			ExistingID string              `json:"existing_id"`
		}
	}
	if err := json.Unmarshal([]byte(ctl("report", "feedback", "2024-10", "-school", demoSchools[2])), &fb); err != nil {
		t.Fatal(err)
	}
	if len(fb.Forms) != 1 || fb.Forms[0].ExistingID != "0192b000-0000-7000-8000-000000000901" ||
		!slices.Equal(fb.Forms[0].Sources["visit_ids"], []string{"0192b000-0000-7000-8000-000000000401"}) ||
		len(fb.Forms[0].Sources["counters.observations"]) != 1 || len(fb.Forms[0].Sources["counters.questionnaires"]) != 1 ||
		!slices.Equal(fb.Forms[0].Sources["counters.hazards_opened"], []string{"0192b000-0000-7000-8000-000000000701"}) {
		t.Errorf("the October form of …0103: %+v", fb.Forms)
	}

	// The hazard ledger of October and November, saved and opened.
	out := filepath.Join(t.TempDir(), "ledger.xlsx")
	ctl("report", "export", "hazards", "2024-10-01..2024-11-30", "-o", out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := excelize.OpenReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := f.GetRows("隐患台账")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+len(hazards)+1 {
		t.Fatalf("%d rows, want the header, %d generated hazards and the sample's", len(rows), len(hazards))
	}
	today := time.Now().In(syncproto.ChinaTime).Format(time.DateOnly)
	byID := map[string][]string{}
	for _, row := range rows[1:] {
		byID[row[15]] = row
	}
	if s := byID["0192b000-0000-7000-8000-000000000701"]; s == nil || s[7] != "已消号" || s[12] != "2024-11-15" || s[10] != "" {
		t.Errorf("the sample hazard's row: %q", s)
	}
	for _, h := range hazards {
		row := byID[h.id]
		if row == nil {
			t.Errorf("no row for %s", h.id)
			continue
		}
		d0, _ := time.Parse(time.DateOnly, h.deadline)
		d1, _ := time.Parse(time.DateOnly, today)
		want := int(d1.Sub(d0).Hours() / 24)
		got, _ := strconv.Atoi(row[10])
		if row[5] != h.found || row[8] != h.deadline || row[6] != map[string]string{"low": "一般", "medium": "较大", "high": "重大"}[h.severity] || got < want-1 || got > want {
			t.Errorf("row %q, want found %s, deadline %s, severity %s, %d days overdue", row, h.found, h.deadline, h.severity, want)
		}
	}

	// A photo of one hazard at …0103, uploaded; its ledger with the photo
	// appendix embeds the thumbnail the server made.
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for x := range 640 {
		img.Set(x, x%480, color.RGBA{200, 30, 30, 255})
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, img, nil); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(jb.Bytes())
	sha := hex.EncodeToString(sum[:])
	var with *genHazard
	for i := range hazards {
		if hazards[i].school == demoSchools[2] {
			with = &hazards[i]
			break
		}
	}
	if with == nil {
		t.Fatal("no generated hazard at …0103")
	}
	cur, _ := syncproto.ParseID(with.id)
	photoRec := &syncproto.Record{ID: cur, Kind: "hazard", SchoolID: with.school, CreatedAt: w.Now, CreatedBy: w.Author}
	photoRec = set(photoRec, map[string]any{"photos": []map[string]any{{"sha256": sha, "size": jb.Len(), "content_type": "image/jpeg", "phase": "before"}}})
	req = syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: w.Replica, BatchID: uuid.Must(uuid.NewV7()),
		Changes: []syncproto.Change{{OpID: uuid.Must(uuid.NewV7()), Record: photoRec}}}
	if resp, err := c.Push(t.Context(), &req); err != nil || resp.Results[0].Status == syncproto.StatusRejected {
		t.Fatalf("push the photo's record: %v %+v", err, resp)
	}
	if _, err := c.PutBlob(t.Context(), sha, "image/jpeg", jb.Bytes()); err != nil {
		t.Fatal(err)
	}
	// The thumbnail worker runs in the background: wait for it (up to a
	// minute), as a reviewer would.
	for i := 0; ; i++ {
		b, _, err := c.Raw(t.Context(), "GET", "/v1/records/"+with.id+"/photos", "", nil)
		if err == nil && strings.Contains(string(b), `"thumbs":"done"`) {
			break
		}
		if i == 600 {
			t.Fatalf("no thumbnail after a minute: %s %v", b, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out = filepath.Join(t.TempDir(), "ledger-photos.xlsx")
	ctl("report", "export", "hazards", "2024-11", "-school", demoSchools[2], "-photos", "-o", out)
	f, err = excelize.OpenFile(out)
	if err != nil {
		t.Fatal(err)
	}
	appendix, err := f.GetRows("照片附录")
	if err != nil {
		t.Fatal(err)
	}
	embedded := 0
	for i, row := range appendix[1:] {
		pics, err := f.GetPictures("照片附录", "D"+strconv.Itoa(i+2))
		if err != nil {
			t.Fatal(err)
		}
		if row[0] == with.id {
			if len(pics) != 1 {
				t.Errorf("the hazard with a photo has %d pictures in the appendix: %q", len(pics), row)
			} else if cfg, _, err := image.DecodeConfig(bytes.NewReader(pics[0].File)); err != nil || max(cfg.Width, cfg.Height) != 320 {
				t.Errorf("the embedded picture is %dx%d (%v), want the 320 px thumbnail", cfg.Width, cfg.Height, err)
			}
		}
		embedded += len(pics)
	}
	if embedded != 1 {
		t.Errorf("%d pictures embedded, want 1", embedded)
	}

	// The visits of November as CSV, streamed through the compressing
	// middleware to a client that accepts gzip.
	csvPath := filepath.Join(t.TempDir(), "visits.csv")
	ctl("report", "export", "visits", "2024-11", "-format", "csv", "-o", csvPath)
	if b, err := os.ReadFile(csvPath); err != nil || !bytes.HasPrefix(b, []byte("\xef\xbb\xbf日期,学校,督学")) || bytes.Count(b, []byte("\n")) != 1+12 {
		t.Errorf("visits CSV (%v): %d lines\n%.300s", err, bytes.Count(b, []byte("\n")), b)
	}

	// A chart of the dashboard, saved.
	svgPath := filepath.Join(t.TempDir(), "visits.svg")
	ctl("report", "chart", "visits", "2024-09-01..2024-11-30", "-o", svgPath)
	if svg, err := os.ReadFile(svgPath); err != nil || !bytes.Contains(svg, []byte(`data-label="2024-11"`)) {
		t.Errorf("the visits chart: %v %.300s", err, svg)
	}

	// The quotas, changed from a file.
	qf := filepath.Join(t.TempDir(), "quotas.json")
	os.WriteFile(qf, []byte(`{"visits_per_school_per_month": 2}`), 0o644)
	if s := ctl("report", "settings", qf); !strings.Contains(s, `"visits_per_school_per_month": 2`) {
		t.Errorf("settings answer: %s", s)
	}
	if err := json.Unmarshal([]byte(ctl("report", "quotas", "2024-11", "-json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Inspectors[0].Visits.Required != 6 {
		t.Errorf("after the change, %v visits required, want 6", rep.Inspectors[0].Visits.Required)
	}
}
