package api

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/xuri/excelize/v2"

	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/syncproto"
)

// record returns a new record of a kind without a form, written by w.
func record(t *testing.T, w *syncproto.Writer, kind, school string, fields map[string]any) *syncproto.Record {
	t.Helper()
	r := &syncproto.Record{ID: uuid.Must(uuid.NewV7()), Kind: kind, SchoolID: school, CreatedAt: w.Now.Truncate(time.Second), CreatedBy: w.Author}
	for k, v := range fields {
		raw, err := syncproto.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		r, _ = syncproto.Set(r, k, raw, w)
	}
	return r
}

func TestReports(t *testing.T) { forEachStack(t, Config{}, testReports) }

func testReports(t *testing.T, st *stack) {
	zhang := st.newInspector(t, "张督学", schoolA)
	li := st.newInspector(t, "李督学", schoolB)
	// Each phone pushes a visit to its school in November; 张 also a
	// lesson observation and a hazard.
	w := zhang.writer()
	visitA := record(t, w, "visit", schoolA, map[string]any{"kind": "routine", "status": "completed", "visit_date": "2026-11-10",
		"lead_inspector_id": zhang.id, "highlights": "课后服务规范"})
	obs := record(t, w, "lesson_observation", schoolA, map[string]any{"observer_id": zhang.id, "started_at": "2026-11-10T09:00:00+08:00",
		"duration_min": 45, "teacher_name": "王老师", "subject": "数学", "scores": []map[string]any{{"criterion_code": "C1", "score": "8"}, {"criterion_code": "C2", "score": "17"}}})
	hazard := record(t, w, "hazard", schoolA, map[string]any{"title": "灭火器过期", "severity": "high"})
	ev, err := syncproto.Event{Type: syncproto.EventReported, ActorID: zhang.userID, ActorRole: syncproto.RoleInspector,
		OccurredAt: time.Date(2026, 11, 10, 10, 0, 0, 0, syncproto.ChinaTime), Payload: &syncproto.EventPayload{Severity: "high"}}.Data()
	if err != nil {
		t.Fatal(err)
	}
	hazard, _ = syncproto.Append(hazard, "events", uuid.NewString(), ev, w)
	for i, res := range st.push(t, zhang, visitA, obs, hazard) {
		if res.Status == syncproto.StatusRejected {
			t.Fatalf("change %d rejected: %v", i, res.Error)
		}
	}
	visitB := record(t, li.writer(), "visit", schoolB, map[string]any{"kind": "routine", "status": "completed", "visit_date": "2026-11-12", "lead_inspector_id": li.id})
	st.push(t, li, visitB)

	// The office head sets two visits a school a month.
	st.mustDo(t, 200, request{method: "PUT", path: "/v1/reports/settings", token: stackAdminToken, json: map[string]any{"visits_per_school_per_month": 2, "visit_days_per_school_per_month": 1}})
	var q reports.Quotas
	st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/settings", token: zhang.token}).decode(t, &q)
	if q.VisitsPerSchoolPerMonth != 2 || q.ObservationHoursPerSemester != 20 {
		t.Errorf("settings %+v, want 2 visits and the default 20 hours", q)
	}

	var rep reports.Report
	st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/quotas?period=2026-11", token: stackAdminToken}).decode(t, &rep)
	rows := map[string]reports.SchoolRow{}
	for _, r := range rep.Schools {
		rows[r.SchoolID] = r
	}
	if a := rows[schoolA]; a.Visits.Done != 1 || a.Visits.Required != 2 || a.Visits.Missing != 1 || len(a.Visits.IDs) != 1 || a.Visits.IDs[0] != visitA.ID.String() {
		t.Errorf("school A visits %+v, want 1 of 2 with the visit's id", a.Visits)
	}
	if a := rows[schoolA]; a.HazardsOverdue.Done != 1 || a.HazardsOverdue.IDs[0] != hazard.ID.String() {
		t.Errorf("school A overdue %+v, want the high hazard reported in November (3 days)", a.HazardsOverdue)
	}
	if len(rep.Inspectors) != 2 {
		t.Errorf("%d inspector rows, want 2", len(rep.Inspectors))
	}

	// A phone sees its own numbers only.
	st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/quotas?period=2026-2027-1", token: zhang.token}).decode(t, &rep)
	if len(rep.Schools) != 1 || rep.Schools[0].SchoolID != schoolA || len(rep.Inspectors) != 1 || rep.Inspectors[0].InspectorID != zhang.id {
		t.Errorf("张's phone sees %d schools and %d inspectors, want his own", len(rep.Schools), len(rep.Inspectors))
	} else if h := rep.Inspectors[0].ObservationHours; h.Done != 1 || h.Required != 20 {
		t.Errorf("observation hours %+v, want 1 of 20", h)
	}

	// …and only at the schools assigned to it today: a past listing at
	// school B is not its to see.
	st.mustDo(t, 200, request{method: "PUT", path: "/v1/admin/assignments/" + uuid.NewString(), token: stackAdminToken,
		json: map[string]string{"inspector_id": zhang.id, "school_id": schoolB, "role": "responsibility", "start_date": "2024-09-01", "end_date": "2025-01-31"}})
	st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/quotas?period=2024-2025-1", token: zhang.token}).decode(t, &rep)
	if len(rep.Schools) != 1 || rep.Schools[0].SchoolID != schoolA {
		t.Errorf("张's phone sees schools %+v of 2024, want only A", rep.Schools)
	}
	st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/quotas?period=2024-2025-1", token: stackAdminToken}).decode(t, &rep)
	if len(rep.Schools) != 2 {
		t.Errorf("the office sees %d schools of 2024, want A and B", len(rep.Schools))
	}

	var fb reports.FeedbackList
	st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/feedback?month=2026-11", token: zhang.token}).decode(t, &fb)
	if len(fb.Forms) != 1 || fb.Forms[0].SchoolID != schoolA || len(fb.Forms[0].Sources["visit_ids"]) != 1 {
		t.Errorf("feedback %+v, want 张's form for school A with his visit", fb)
	} else if c, _ := json.Marshal(fb.Forms[0].Values["counters"]); !strings.Contains(string(c), `"observations":1`) || !strings.Contains(string(c), `"hazards_opened":1`) {
		t.Errorf("counters %s", c)
	}

	// Exports: the hazard ledger as CSV and as XLSX.
	r := st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/export/hazards?period=2026-11&format=csv", token: stackAdminToken})
	if !bytes.HasPrefix(r.body, []byte("\xef\xbb\xbf序号,学校,隐患")) || !strings.Contains(string(r.body), "灭火器过期") {
		t.Errorf("CSV ledger: %q", r.body)
	}
	if cd := r.header.Get("Content-Disposition"); !strings.Contains(cd, "hazards-2026-11.csv") {
		t.Errorf("Content-Disposition %q", cd)
	}
	r = st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/export/visits?period=2026-11&school=" + schoolB, token: stackAdminToken})
	f, err := excelize.OpenReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	xrows, err := f.GetRows("进校督导记录")
	if err != nil || len(xrows) != 2 || xrows[1][len(xrows[1])-1] != visitB.ID.String() {
		t.Errorf("visits workbook rows %v (%v), want the header and 李's visit", xrows, err)
	}

	// The dashboard's charts.
	for _, name := range reports.Charts {
		r := st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/charts/" + name + "?period=2026-09-01..2026-12-31", token: stackAdminToken})
		if !strings.HasPrefix(r.header.Get("Content-Type"), "image/svg+xml") || !bytes.HasPrefix(r.body, []byte("<svg")) || !bytes.Contains(r.body, []byte(`class="point"`)) {
			t.Errorf("chart %s: %s %.200s", name, r.header.Get("Content-Type"), r.body)
		}
	}

	var data struct {
		Kind   string
		Labels []string
		Series []struct {
			Name   string
			Values []float64
		}
	}
	st.mustDo(t, 200, request{method: "GET", path: "/v1/reports/charts/visits?period=2026-11&format=json", token: stackAdminToken}).decode(t, &data)
	if data.Kind != "lines" || len(data.Labels) != 1 || len(data.Series) != 2 || data.Series[0].Values[0] != 2 {
		t.Errorf("visits chart data %+v, want November's two visits", data)
	}

	for _, tt := range []struct {
		name   string
		rq     request
		status int
		field  string
	}{
		{"NoToken", request{method: "GET", path: "/v1/reports/quotas?period=2026-11"}, 401, ""},
		{"NoPeriod", request{method: "GET", path: "/v1/reports/quotas", token: stackAdminToken}, 400, "period"},
		{"BadPeriod", request{method: "GET", path: "/v1/reports/quotas?period=" + url.QueryEscape("2026/11"), token: stackAdminToken}, 400, "period"},
		{"BadZone", request{method: "GET", path: "/v1/reports/quotas?period=2026-11&zone=east", token: stackAdminToken}, 400, "zone"},
		{"PhoneAsksForAnother", request{method: "GET", path: "/v1/reports/quotas?period=2026-11&inspector=" + li.id, token: zhang.token}, 403, ""},
		{"PhoneAsksForASchoolNotItsOwn", request{method: "GET", path: "/v1/reports/export/hazards?period=2026-11&school=" + schoolB, token: zhang.token}, 403, ""},
		{"FeedbackNotAMonth", request{method: "GET", path: "/v1/reports/feedback?month=2026-2027-1", token: stackAdminToken}, 400, "month"},
		{"UnknownChartFormat", request{method: "GET", path: "/v1/reports/charts/visits?period=2026-11&format=png", token: stackAdminToken}, 400, "format"},
		{"UnknownChart", request{method: "GET", path: "/v1/reports/charts/pie?period=2026-11", token: stackAdminToken}, 400, "chart"},
		{"PhoneChartOfAnother", request{method: "GET", path: "/v1/reports/charts/visits?period=2026-11&inspector=" + li.id, token: zhang.token}, 403, ""},
		{"UnknownLedger", request{method: "GET", path: "/v1/reports/export/salaries?period=2026-11", token: stackAdminToken}, 400, "ledger"},
		{"UnknownFormat", request{method: "GET", path: "/v1/reports/export/hazards?period=2026-11&format=pdf", token: stackAdminToken}, 400, "format"},
		{"PhoneSetsQuotas", request{method: "PUT", path: "/v1/reports/settings", token: zhang.token, json: map[string]any{"visits_per_school_per_month": 0}}, 403, ""},
		{"BadQuotas", request{method: "PUT", path: "/v1/reports/settings", token: stackAdminToken, json: map[string]any{"class_hour_minutes": -5}}, 400, "class_hour_minutes"},
		{"QuotasNotJSON", request{method: "PUT", path: "/v1/reports/settings", token: stackAdminToken, body: []byte("two visits")}, 400, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := st.do(t, tt.rq)
			if r.status != tt.status {
				t.Fatalf("%s %s = %d %s, want %d", tt.rq.method, tt.rq.path, r.status, r.body, tt.status)
			}
			if e := r.errorOf(t); tt.field != "" && e.Fields[tt.field] == "" {
				t.Errorf("fields %v, want a message on %s", e.Fields, tt.field)
			}
		})
	}
}
