package consoletest_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/xuri/excelize/v2"

	"github.com/fieldsync/fieldsync/client"
	"github.com/fieldsync/fieldsync/internal/browsertest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// seedMonth pushes, as the office, visits and hazards of this month
// (China) and the two before at the sample county's three schools, from a
// seeded RNG: visits led by the inspector (a few of a kind the quota does
// not count), and hazards of every severity, half with a notice and its
// deadline, none closed. It returns this month's counted visits per
// school and the hazards' ids.
func seedMonth(t *testing.T, c *client.Client, now time.Time) (counted map[string]int, hazards []string) {
	t.Helper()
	schools := []string{"0192b000-0000-7000-8000-000000000101", "0192b000-0000-7000-8000-000000000102", school}
	r := rand.New(rand.NewPCG(2026, 12))
	today := now.In(syncproto.ChinaTime)
	first := time.Date(today.Year(), today.Month(), 1, 12, 0, 0, 0, syncproto.ChinaTime)
	w := &syncproto.Writer{Replica: uuid.MustParse("0192b000-0000-7000-8000-00000000f0bb"), Author: user, Now: now.UTC()}
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
	// day is a day of this month up to today, or of one of the two
	// months before.
	day := func(back int) string {
		if back == 0 {
			return fmt.Sprintf("%s-%02d", first.Format("2006-01"), 1+r.IntN(today.Day()))
		}
		return fmt.Sprintf("%s-%02d", first.AddDate(0, -back, 0).Format("2006-01"), 1+r.IntN(28))
	}
	var recs []*syncproto.Record
	counted = map[string]int{}
	for i := range 24 {
		sc := schools[r.IntN(2)] // not …0103: it stays short of this month's visit
		kind := []string{"routine", "follow_up", "special"}[r.IntN(3)]
		back := i % 3
		rec := set(&syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: "visit", SchoolID: sc, CreatedAt: w.Now, CreatedBy: w.Author},
			map[string]any{"kind": kind, "status": "completed", "visit_date": day(back), "lead_inspector_id": inspector, "theme": "常规督导"})
		recs = append(recs, rec)
		if kind != "special" && back == 0 {
			counted[sc]++
		}
	}
	for i := range 17 {
		id := uuid.Must(uuid.NewV7())
		sc, sev, found := schools[r.IntN(3)], []string{"low", "medium", "high"}[r.IntN(3)], day(i%3)
		rec := set(&syncproto.Record{ID: id, Kind: "hazard", SchoolID: sc, CreatedAt: w.Now, CreatedBy: w.Author},
			map[string]any{"title": fmt.Sprintf("消防通道堆放杂物 %d", i+1), "category": "fire", "location_desc": "教学楼"})
		at, _ := time.ParseInLocation(time.DateOnly, found, syncproto.ChinaTime)
		events := []syncproto.Event{{Type: syncproto.EventReported, ActorID: user, ActorRole: syncproto.RoleInspector, OccurredAt: at.Add(9 * time.Hour), Payload: &syncproto.EventPayload{Severity: sev}}}
		if r.IntN(2) == 0 {
			events = append(events,
				syncproto.Event{Type: syncproto.EventConfirmed, ActorID: "0192b000-0000-7000-8000-000000000202", ActorRole: syncproto.RoleOfficeReviewer, OccurredAt: at.Add(10 * time.Hour)},
				syncproto.Event{Type: syncproto.EventNoticeIssued, ActorID: "0192b000-0000-7000-8000-000000000202", ActorRole: syncproto.RoleOfficeReviewer, OccurredAt: at.Add(11 * time.Hour),
					Payload: &syncproto.EventPayload{Deadline: at.AddDate(0, 0, r.IntN(4)).Format(time.DateOnly), Responsible: json.RawMessage(`{"name":"何志远","role":"校长","phone":"13800000103"}`)}})
		}
		for j, e := range events {
			data, err := e.Data()
			if err != nil {
				t.Fatal(err)
			}
			rec, _ = syncproto.Append(rec, "events", fmt.Sprintf("%s-%d", id, j), data, w)
		}
		recs = append(recs, rec)
		hazards = append(hazards, id.String())
	}
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
			t.Fatalf("change %d (%s) rejected: %v", i, recs[i].Kind, res.Error)
		}
	}
	return counted, hazards
}

// apiChart is a chart as GET /v1/reports/charts/{chart}?format=json
// answers it.
type apiChart struct {
	Kind   string   `json:"kind"`
	Labels []string `json:"labels"`
	Series []struct {
		Name   string    `json:"name"`
		Values []float64 `json:"values"`
	} `json:"series"`
}

// TestDashboard: the sample county and a generated month of visits and
// hazards; a reviewer scoped to the county's zone opens the dashboard
// (报表), picks the zone; every chart is inline SVG whose data points
// match, one for one, the JSON the API serves for the same period and
// zone; the zone's visit count links to exactly the visits it counts, and
// one of them opens; the hazard ledger downloads as XLSX and CSV and holds
// one row per hazard of the month. The screenshot is
// artifacts/browser/console/dashboard.png.
func TestDashboard(t *testing.T) {
	srv := browsertest.Start(t, "FIELDSYNC_CONSOLE_LOOPBACK_HTTP=true")
	ctx := t.Context()
	if err := srv.SeedSamples(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Inspector(ctx, inspector, user, "周敏", "0192b000-0000-7000-8000-000000000101", "0192b000-0000-7000-8000-000000000102", school); err != nil {
		t.Fatal(err)
	}
	c := srv.Client()
	reviewer := client.Account{Login: "li.shenhe", Name: "李审核", Password: password, Roles: []string{"office_reviewer"}, Zones: []string{zone}}
	if _, err := c.CreateAccount(ctx, reviewer); err != nil {
		t.Fatal(err)
	}
	counted, hazards := seedMonth(t, c, time.Now())
	period := time.Now().In(syncproto.ChinaTime).Format("2006-01")

	// The same numbers through the JSON API.
	q := url.Values{"period": {period}, "zone": {zone}}.Encode()
	var rep struct {
		Zones []struct {
			ZoneID string `json:"zone_id"`
			Visits struct {
				Done float64  `json:"done"`
				IDs  []string `json:"ids"`
			} `json:"visits"`
		} `json:"zones"`
	}
	if _, err := srv.Do(ctx, http.MethodGet, "/v1/reports/quotas?"+q, nil, &rep); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, n := range counted {
		want += n
	}
	if len(rep.Zones) != 1 || rep.Zones[0].Visits.Done != float64(want) || len(rep.Zones[0].Visits.IDs) != want {
		t.Fatalf("the API's zones %+v, want one zone with the %d counted visits seeded", rep.Zones, want)
	}

	dir := t.TempDir()
	input := map[string]any{"url": srv.URL, "reviewer": reviewer, "zone": zone, "period": period,
		"xlsx": filepath.Join(dir, "ledger.xlsx"), "csv": filepath.Join(dir, "ledger.csv")}
	var out struct {
		URL    string
		Charts map[string]struct {
			Period   string
			Points   int
			Declared int
			Series   map[string][]float64
		}
		VisitsLink    string
		SourceDone    string
		SourceLinks   int
		RecordStatus  int
		RecordTitle   string
		PageBytes     int
		XLSXName      string
		CSVName       string
		ConsoleErrors []string
		Axe           []struct {
			ID, Impact, Help string
			Nodes            []string
		}
	}
	browsertest.RunAs(t, "console", "internal/consoletest/testdata/dashboard.js", input, &out)

	if !strings.Contains(out.URL, "zone="+zone) || !strings.Contains(out.URL, "period="+period) {
		t.Errorf("the dashboard's filter did not reach the URL: %s", out.URL)
	}
	// Each chart against the API's data for the period the page says it
	// covers (the charts over time: the six months to this one).
	for _, name := range []string{"completion-zones", "completion-inspectors", "hazards-severity", "hazards-status", "overdue", "visits"} {
		got, ok := out.Charts[name]
		if !ok {
			t.Errorf("chart %s is not on the page", name)
			continue
		}
		if wantPeriod := map[bool]string{true: period, false: sixMonths(period)}[strings.HasPrefix(name, "completion")]; got.Period != wantPeriod {
			t.Errorf("chart %s covers %s, want %s", name, got.Period, wantPeriod)
		}
		var ch apiChart
		if _, err := srv.Do(ctx, http.MethodGet, "/v1/reports/charts/"+name+"?"+url.Values{"format": {"json"}, "period": {got.Period}, "zone": {zone}}.Encode(), nil, &ch); err != nil {
			t.Fatal(err)
		}
		points := len(ch.Labels) * len(ch.Series)
		if ch.Kind == "bars" {
			points = min(1, len(ch.Series)) * len(ch.Labels)
		}
		if got.Points != points || got.Declared != points {
			t.Errorf("chart %s: %d data points drawn (%d declared), the API's data has %d", name, got.Points, got.Declared, points)
		}
		for i, s := range ch.Series {
			if ch.Kind == "bars" && i > 0 {
				break
			}
			drawn := got.Series[s.Name]
			if len(drawn) != len(s.Values) {
				t.Errorf("chart %s, series %s: %d points drawn, %d values", name, s.Name, len(drawn), len(s.Values))
				continue
			}
			for j, v := range s.Values {
				if math.Abs(drawn[j]-v) > 1e-9 {
					t.Errorf("chart %s, series %s, %s: drawn %v, the API says %v", name, s.Name, ch.Labels[j], drawn[j], v)
				}
			}
		}
	}
	// Every number has a source: the zone's visits link to its visits.
	if out.VisitsLink != fmt.Sprint(want) || out.SourceDone != fmt.Sprint(want) || out.SourceLinks != want {
		t.Errorf("the zone's visits: link %q, source page %q with %d records; want %d", out.VisitsLink, out.SourceDone, out.SourceLinks, want)
	}
	if out.RecordStatus != http.StatusOK {
		t.Errorf("a counted visit's page answered %d (%s)", out.RecordStatus, out.RecordTitle)
	}
	for _, e := range out.ConsoleErrors {
		t.Errorf("the browser's console: %s", e)
	}
	for _, v := range out.Axe {
		t.Errorf("accessibility (axe, WCAG A/AA): %s (%s): %s at %v", v.ID, v.Impact, v.Help, v.Nodes)
	}
	if out.PageBytes <= 0 || out.PageBytes > 200<<10 {
		t.Errorf("the dashboard weighs %d bytes, want under 200 KB", out.PageBytes)
	}
	t.Logf("dashboard page: %d bytes with its assets; %d counted visits, %d hazards", out.PageBytes, want, len(hazards))

	// The ledger as downloaded: one row per hazard of the month.
	b, err := os.ReadFile(filepath.Join(dir, "ledger.xlsx"))
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
	if len(rows) != 1+len(hazards) {
		t.Errorf("the XLSX ledger %s has %d rows, want the header and %d hazards", out.XLSXName, len(rows), len(hazards))
	}
	var ids []string
	for _, row := range rows[1:] {
		ids = append(ids, row[len(row)-1])
	}
	slices.Sort(ids)
	slices.Sort(hazards)
	if !slices.Equal(ids, hazards) {
		t.Errorf("the XLSX ledger lists %v, want the seeded hazards %v", ids, hazards)
	}
	cb, err := os.ReadFile(filepath.Join(dir, "ledger.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(cb)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(hazards) || !bytes.HasPrefix(cb, []byte("\uFEFF")) {
		t.Errorf("the CSV ledger %s has %d rows (BOM %v), want the header and %d hazards", out.CSVName, len(recs), bytes.HasPrefix(cb, []byte("\uFEFF")), len(hazards))
	}
}

// sixMonths is the range of the six months to a month (YYYY-MM).
func sixMonths(month string) string {
	t, _ := time.Parse("2006-01", month)
	return t.AddDate(0, -5, 0).Format(time.DateOnly) + ".." + t.AddDate(0, 1, -1).Format(time.DateOnly)
}
