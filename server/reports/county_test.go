package reports_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/samples"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The generated county: the sample county (东河县, zone …0c01, schools
// …0101–0103, inspector 陈立群 …0201) plus zones, schools, inspectors and
// months of visits, observations, questionnaires and hazards drawn from a
// seeded RNG. The plan keeps what was generated as plain values, so the
// tests count from it independently of the records and of the package.

const sampleZone = "0192b000-0000-7000-8000-000000000c01"
const sampleInspector = "0192b000-0000-7000-8000-000000000201"

var sampleSchools = []string{"0192b000-0000-7000-8000-000000000101", "0192b000-0000-7000-8000-000000000102", "0192b000-0000-7000-8000-000000000103"}

type planAssignment struct {
	id, inspector, school, start, end string
	record                            bool // pushed as a record; otherwise put in the directory
	minVisits                         int  // the record's own monthly quota (visit_quota), 0: the office's
}

type planVisit struct {
	id, school, inspector, kind, status, date string
	co                                        []string
}

type planObservation struct {
	id, school, observer, date string
	minutes                    int
	scores                     []float64
}

type planHazard struct {
	id, school, inspectorUser, severity, found, title string
	stage                                             int    // 0 reported, 1 confirmed, 2 notice issued, 3 rectifying, 4 closed
	deadline                                          string // of the notice (stage ≥ 2)
	closed                                            string
}

type plan struct {
	now         time.Time
	zones       []string
	schoolZone  map[string]string
	schoolName  map[string]string
	inspectors  []string
	userOf      map[string]string
	assignments []planAssignment
	visits      []planVisit
	obs         []planObservation
	responses   []planVisit // reuse: id, school, inspector (collector's inspector), date
	hazards     []planHazard
}

func genID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	b[6] = (b[6] & 0x0f) | 0x70
	b[8] = (b[8] & 0x3f) | 0x80
	return uuid.UUID(b).String()
}

func day(t time.Time) string { return t.Format(time.DateOnly) }

// generate draws a county: nz extra zones of ns schools each, ni extra
// inspectors, from monthFrom through monthTo, hazardsPerSchool hazards.
func generate(seed uint64, nz, ns, ni int, from, to string, hazardsPerSchool int, now time.Time) *plan {
	r := rand.New(rand.NewPCG(seed, 7))
	p := &plan{now: now, schoolZone: map[string]string{}, schoolName: map[string]string{}, userOf: map[string]string{}}
	p.zones = []string{sampleZone}
	p.inspectors = []string{sampleInspector}
	p.userOf[sampleInspector] = "0192b000-0000-7000-8000-000000000211"
	for _, s := range sampleSchools {
		p.schoolZone[s] = sampleZone
	}
	// The sample assignment …0301 (school …0103) is a record; the demo
	// puts the other two schools in the directory.
	p.assignments = append(p.assignments,
		planAssignment{"0192b000-0000-7000-8000-000000000301", sampleInspector, sampleSchools[2], "2024-03-01", "", true, 0},
		planAssignment{"0192b000-0000-7000-8000-000000000302", sampleInspector, sampleSchools[0], "2024-03-01", "", false, 0},
		planAssignment{"0192b000-0000-7000-8000-000000000303", sampleInspector, sampleSchools[1], "2024-03-01", "", false, 0})
	for range ni {
		id := genID(r)
		p.inspectors = append(p.inspectors, id)
		p.userOf[id] = genID(r)
	}
	var schools []string
	schools = append(schools, sampleSchools...)
	for z := range nz {
		zone := genID(r)
		p.zones = append(p.zones, zone)
		for s := range ns {
			id := genID(r)
			p.schoolZone[id] = zone
			p.schoolName[id] = fmt.Sprintf("第%d责任区%d号学校", z+1, s+1)
			schools = append(schools, id)
			insp := p.inspectors[1+r.IntN(ni)]
			a := planAssignment{id: genID(r), inspector: insp, school: id, start: "2026-03-01", record: r.IntN(2) == 0}
			if a.record && r.IntN(3) == 0 {
				a.minVisits = 2
			}
			// Some schools change hands mid-October.
			if r.IntN(4) == 0 {
				a.end = "2026-10-15"
				other := p.inspectors[1+r.IntN(ni)]
				p.assignments = append(p.assignments, planAssignment{id: genID(r), inspector: other, school: id, start: "2026-10-16", record: r.IntN(2) == 0})
			}
			p.assignments = append(p.assignments, a)
		}
	}
	kinds := []string{"routine", "routine", "routine", "one_day", "follow_up", "unannounced", "special", "joint"}
	statuses := []string{"completed", "submitted", "accepted", "accepted", "planned", "cancelled", "in_progress"}
	start, _ := time.Parse(time.DateOnly, from)
	end, _ := time.Parse(time.DateOnly, to)
	for _, s := range schools {
		for m := start; !m.After(end); m = m.AddDate(0, 1, 0) {
			last := m.AddDate(0, 1, -1).Day()
			for range r.IntN(4) {
				d := m.AddDate(0, 0, r.IntN(last))
				v := planVisit{id: genID(r), school: s, kind: kinds[r.IntN(len(kinds))], status: statuses[r.IntN(len(statuses))], date: day(d)}
				// The listed inspector mostly; sometimes another one.
				v.inspector = p.listedOn(s, v.date)
				if v.inspector == "" || r.IntN(8) == 0 {
					v.inspector = p.inspectors[r.IntN(len(p.inspectors))]
				}
				if r.IntN(6) == 0 {
					v.co = []string{p.inspectors[r.IntN(len(p.inspectors))]}
				}
				p.visits = append(p.visits, v)
				if r.IntN(3) == 0 {
					// A second visit the same day.
					w := v
					w.id, w.kind, w.status = genID(r), "routine", "accepted"
					p.visits = append(p.visits, w)
				}
				for range r.IntN(3) {
					o := planObservation{id: genID(r), school: s, observer: v.inspector, date: v.date, minutes: []int{40, 45}[r.IntN(2)]}
					for range 6 {
						o.scores = append(o.scores, float64(r.IntN(16)))
					}
					p.obs = append(p.obs, o)
				}
				if r.IntN(2) == 0 {
					p.responses = append(p.responses, planVisit{id: genID(r), school: s, inspector: v.inspector, date: v.date})
				}
			}
		}
		for range hazardsPerSchool {
			found := start.AddDate(0, 0, r.IntN(int(end.Sub(start).Hours()/24)+1))
			h := planHazard{id: genID(r), school: s, severity: []string{"low", "medium", "high"}[r.IntN(3)], found: day(found),
				stage: r.IntN(5), title: fmt.Sprintf("隐患%d", len(p.hazards)+1)}
			h.inspectorUser = p.userOf[p.inspectors[r.IntN(len(p.inspectors))]]
			if h.stage >= 2 {
				h.deadline = day(found.AddDate(0, 0, 2+r.IntN(40)))
			}
			if h.stage == 4 {
				c := found.AddDate(0, 0, 3+r.IntN(30))
				if c.After(now) {
					c = now
				}
				if day(c) <= h.found {
					h.stage = 3
				} else {
					h.closed = day(c)
				}
			}
			p.hazards = append(p.hazards, h)
		}
	}
	return p
}

// listedOn returns the inspector listed with a school on a day.
func (p *plan) listedOn(school, date string) string {
	for _, a := range p.assignments {
		if a.school == school && a.start <= date && (a.end == "" || date <= a.end) {
			return a.inspector
		}
	}
	return ""
}

// records turns the plan into sync records (with the sample records) and
// the directory's assignments.
func (p *plan) records(tb testing.TB) (recs []*syncproto.Record, dir []server.Assignment) {
	tb.Helper()
	w := &syncproto.Writer{Replica: samples.OfficeReplica, Author: "office", Now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	base, err := samples.Records(w)
	if err != nil {
		tb.Fatal(err)
	}
	recs = append(recs, base...)
	mk := func(kind, id, school string, created time.Time, by string, fields map[string]any) *syncproto.Record {
		rec := &syncproto.Record{ID: uuid.MustParse(id), Kind: kind, SchoolID: school, CreatedAt: created, CreatedBy: by}
		for _, k := range sortedKeys(fields) {
			b, err := json.Marshal(fields[k])
			if err != nil {
				tb.Fatal(err)
			}
			rec, _ = syncproto.Set(rec, k, b, w)
		}
		return rec
	}
	at := func(d string, h int) time.Time {
		t, _ := time.ParseInLocation(time.DateOnly, d, syncproto.ChinaTime)
		return t.Add(time.Duration(h) * time.Hour)
	}
	for s, z := range p.schoolZone {
		if p.schoolName[s] == "" {
			continue // the sample schools are records already
		}
		recs = append(recs, mk("school", s, s, at("2026-01-01", 9), "office", map[string]any{"name": p.schoolName[s], "zone_id": z}))
	}
	for i, id := range p.inspectors[1:] {
		recs = append(recs, mk("inspector", id, "", at("2026-01-01", 9), "office", map[string]any{"name": fmt.Sprintf("督学%d", i+1), "user_id": p.userOf[id]}))
	}
	for _, a := range p.assignments {
		if a.id == "0192b000-0000-7000-8000-000000000301" {
			continue
		}
		if !a.record {
			dir = append(dir, server.Assignment{ID: a.id, InspectorID: a.inspector, SchoolID: a.school, Role: "responsibility", Start: a.start, End: a.end})
			continue
		}
		f := map[string]any{"inspector_id": a.inspector, "school_id": a.school, "start_date": a.start, "role": "responsibility"}
		if a.minVisits > 0 {
			f["visit_quota"] = map[string]any{"per": "month", "min_visits": a.minVisits, "min_days": 1}
		}
		if a.end != "" {
			f["end_date"] = a.end
		}
		recs = append(recs, mk("assignment", a.id, a.school, at("2026-01-01", 9), "office", f))
	}
	for _, v := range p.visits {
		f := map[string]any{"kind": v.kind, "status": v.status, "visit_date": v.date, "lead_inspector_id": v.inspector, "school_id": v.school,
			"highlights": "亮点" + v.id[:4], "problems": "问题" + v.id[:4], "suggestions": "建议" + v.id[:4],
			"matter_findings": []map[string]any{{"matter_code": "M7", "rating": "problem", "note": "消防" + v.id[:4]}, {"matter_code": "M2", "rating": "good"}}}
		if v.co != nil {
			f["co_inspector_ids"] = v.co
		}
		recs = append(recs, mk("visit", v.id, v.school, at(v.date, 8), p.userOf[v.inspector], f))
	}
	for _, o := range p.obs {
		scores := make([]map[string]any, len(o.scores))
		for i, s := range o.scores {
			scores[i] = map[string]any{"criterion_code": fmt.Sprintf("C%d", i+1), "score": fmt.Sprint(s)}
		}
		recs = append(recs, mk("lesson_observation", o.id, o.school, at(o.date, 9), p.userOf[o.observer], map[string]any{
			"observer_id": o.observer, "started_at": at(o.date, 9).Format(time.RFC3339), "duration_min": o.minutes,
			"teacher_name": "教师" + o.id[:4], "subject": "数学", "grade": "八年级", "mode": "push_door", "scores": scores}))
	}
	for _, q := range p.responses {
		rec := mk("questionnaire_response", q.id, q.school, at(q.date, 10), p.userOf[q.inspector], map[string]any{
			"collector_id": p.userOf[q.inspector], "collected_at": at(q.date, 10).Format(time.RFC3339), "respondent_type": "student",
			"answers": []map[string]any{{"qid": "Q1", "value": "60_90"}, {"qid": "Q2", "value": 8}, {"qid": "Q5", "value": []string{"extra_workbook", "none"}}}})
		rec.FormID, rec.FormVersion = "questionnaire.student_burden", 3
		recs = append(recs, rec)
	}
	for _, h := range p.hazards {
		rec := mk("hazard", h.id, h.school, at(h.found, 9), h.inspectorUser, map[string]any{"title": h.title, "category": "fire", "location_desc": "教学楼", "severity": h.severity})
		ev := func(typ, role, d string, payload *syncproto.EventPayload, note string) {
			e := syncproto.Event{Type: typ, ActorID: "x", ActorRole: role, OccurredAt: at(d, 10+len(rec.Items["events"])), Payload: payload, Note: note}
			data, err := e.Data()
			if err != nil {
				tb.Fatal(err)
			}
			rec, _ = syncproto.Append(rec, "events", fmt.Sprintf("%s-%d", h.id, len(rec.Items["events"])), data, w)
		}
		ev(syncproto.EventReported, syncproto.RoleInspector, h.found, &syncproto.EventPayload{Severity: h.severity}, "")
		if h.stage >= 1 {
			ev(syncproto.EventConfirmed, syncproto.RoleOfficeReviewer, h.found, nil, "")
		}
		if h.stage >= 2 {
			ev(syncproto.EventNoticeIssued, syncproto.RoleOfficeReviewer, h.found, &syncproto.EventPayload{Deadline: h.deadline, Responsible: json.RawMessage(`{"name":"总务主任","role":"总务","phone":"13800000000"}`)}, "")
		}
		if h.stage >= 3 {
			ev(syncproto.EventAcknowledged, syncproto.RoleSchoolLiaison, h.found, nil, "")
		}
		if h.stage == 4 {
			ev(syncproto.EventRectificationReported, syncproto.RoleSchoolLiaison, h.found, nil, "已整改")
			ev(syncproto.EventVerificationPassed, syncproto.RoleInspector, h.closed, nil, "复查通过")
			ev(syncproto.EventClosed, syncproto.RoleOfficeHead, h.closed, nil, "消号")
		}
		recs = append(recs, rec)
	}
	for _, r := range recs {
		r.Rev = 1
	}
	return recs, dir
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// seed writes the plan's records into a sync store and its directory
// assignments and inspectors into a device store.
func seed(tb testing.TB, ctx context.Context, p *plan, sync server.SyncStore, devices server.DeviceStore) {
	tb.Helper()
	recs, dir := p.records(tb)
	for i := 0; i < len(recs); i += 500 {
		if _, err := sync.Insert(ctx, recs[i:min(i+500, len(recs))]); err != nil {
			tb.Fatal(err)
		}
	}
	for i, id := range p.inspectors {
		if err := devices.PutInspector(ctx, server.Inspector{ID: id, UserID: p.userOf[id], Name: fmt.Sprintf("目录督学%d", i), Active: true}); err != nil {
			tb.Fatal(err)
		}
	}
	for _, a := range dir {
		if err := devices.PutAssignment(ctx, a); err != nil {
			tb.Fatal(err)
		}
	}
}
