package reports_test

import (
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/internal/testenv"
	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/server/reports"
	"github.com/fieldsync/fieldsync/syncproto"
)

var testNow = time.Date(2026, 12, 20, 2, 0, 0, 0, time.UTC) // 10:00 in China

// loadCounty seeds the generated county on a backend and loads it back.
func loadCounty(t *testing.T, st testenv.Stores, p *plan) *reports.County {
	t.Helper()
	seed(t, t.Context(), p, st.Sync, st.Devices)
	store, ok := st.Sync.(reports.Store)
	if !ok {
		t.Fatalf("%T does not list its scopes", st.Sync)
	}
	c, err := reports.Load(t.Context(), store, st.Devices, reports.Scope{}, p.now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// oracle counts what the report must say straight from the plan.
type oracle struct {
	p       *plan
	q       reports.Quotas
	period  reports.Period
	inScope func(school string) bool
}

func (o oracle) counted(v planVisit) bool {
	return slices.Contains([]string{"routine", "one_day", "follow_up", "unannounced"}, v.kind) && v.status != "planned" && v.status != "cancelled" &&
		o.period.From <= v.date && v.date <= o.period.To && o.inScope(v.school)
}

// listedIn returns the visits a school requires in a month (of the
// inspector's listings when set): the largest listing quota, 0 when not
// listed.
func (o oracle) listedIn(school, inspector, month string) float64 {
	from, to := max(month+"-01", o.period.From), min(month+"-31", o.period.To)
	req := 0.0
	for _, a := range o.p.assignments {
		if a.school == school && (inspector == "" || a.inspector == inspector) && a.start <= to && (a.end == "" || a.end >= from) {
			req = max(req, float64(max(a.minVisits, 1)))
		}
	}
	return req
}

func (o oracle) months() []string {
	var out []string
	for d, _ := time.Parse(time.DateOnly, o.period.From[:8]+"01"); d.Format("2006-01") <= o.period.To[:7]; d = d.AddDate(0, 1, 0) {
		out = append(out, d.Format("2006-01"))
	}
	return out
}

// visits returns done, required and missing visits (and the ids) of a
// school, or of an inspector at a school when inspector is set.
func (o oracle) visits(school, inspector string) (done, req, miss float64, ids []string, dayCount float64) {
	for _, m := range o.months() {
		n := 0.0
		dates := map[string]bool{}
		for _, v := range o.p.visits {
			if v.school == school && v.date[:7] == m && o.counted(v) && (inspector == "" || v.inspector == inspector || slices.Contains(v.co, inspector)) {
				n++
				ids = append(ids, v.id)
				dates[v.date] = true
			}
		}
		done += n
		dayCount += float64(len(dates))
		if r := o.listedIn(school, inspector, m); r > 0 {
			req += r
			miss += math.Max(0, r-n)
		}
	}
	if o.period.Kind == reports.PeriodSemester && inspector == "" && req > 0 && req < 2 {
		req = 2
	}
	miss = math.Max(miss, req-done)
	return done, req, miss, ids, dayCount
}

// overdue says whether a hazard is overdue at the plan's now.
func (o oracle) overdue(h planHazard) bool {
	today := o.p.now.In(syncproto.ChinaTime).Format(time.DateOnly)
	deadline := h.deadline
	switch h.stage {
	case 0, 1:
		f, _ := time.Parse(time.DateOnly, h.found)
		deadline = f.AddDate(0, 0, map[string]int{"high": 3, "medium": 15, "low": 30}[h.severity]).Format(time.DateOnly)
	case 4:
		return false
	}
	return deadline < today
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	sort.Strings(out)
	return slices.Compact(out)
}

func TestComputeAgainstOracle(t *testing.T) {
	p := generate(1, 3, 5, 4, "2026-09-01", "2026-12-20", 6, testNow)
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		c := loadCounty(t, st, p)
		cases := []struct {
			name   string
			period string
			filter reports.Filter
		}{
			{"Month", "2026-10", reports.Filter{}},
			{"Range", "2026-09-15..2026-11-15", reports.Filter{}},
			{"Semester", "2026-2027-1", reports.Filter{}},
			{"Zone", "2026-11", reports.Filter{Zone: p.zones[1]}},
			{"SampleZone", "2026-12", reports.Filter{Zone: sampleZone}},
			{"Inspector", "2026-10", reports.Filter{Inspector: p.inspectors[2]}},
			{"School", "2026-09", reports.Filter{School: sampleSchools[2]}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				period, err := reports.ParsePeriod(tc.period, reports.Defaults())
				if err != nil {
					t.Fatal(err)
				}
				rep := reports.Compute(c, period, tc.filter)
				o := oracle{p: p, q: reports.Defaults(), period: period, inScope: func(s string) bool {
					if tc.filter.Zone != "" && p.schoolZone[s] != tc.filter.Zone || tc.filter.School != "" && s != tc.filter.School {
						return false
					}
					if tc.filter.Inspector != "" {
						return slices.ContainsFunc(p.assignments, func(a planAssignment) bool { return a.school == s && a.inspector == tc.filter.Inspector })
					}
					return true
				}}
				var want []string
				for s := range p.schoolZone {
					if o.inScope(s) {
						want = append(want, s)
					}
				}
				if len(rep.Schools) != len(want) || len(want) == 0 {
					t.Fatalf("%d school rows, want %d (>0)", len(rep.Schools), len(want))
				}
				for _, row := range rep.Schools {
					done, req, miss, ids, days := o.visits(row.SchoolID, "")
					if row.Visits.Done != done || row.Visits.Required != req || row.Visits.Missing != miss || row.VisitDays.Done != days {
						t.Errorf("school %s visits %+v days %v, want done %v required %v missing %v days %v",
							row.SchoolID, row.Visits, row.VisitDays.Done, done, req, miss, days)
					}
					if !slices.Equal(sorted(row.Visits.IDs), sorted(ids)) {
						t.Errorf("school %s visit ids %v, want %v", row.SchoolID, row.Visits.IDs, ids)
					}
					var found, overdue, closed []string
					for _, h := range p.hazards {
						if h.school != row.SchoolID {
							continue
						}
						if period.Contains(h.found) {
							found = append(found, h.id)
						}
						if h.found <= period.To && o.overdue(h) {
							overdue = append(overdue, h.id)
						}
						if h.stage == 4 && period.Contains(h.closed) {
							closed = append(closed, h.id)
						}
					}
					if !slices.Equal(sorted(row.HazardsFound.IDs), sorted(found)) || row.HazardsFound.Done != float64(len(found)) {
						t.Errorf("school %s hazards found %v, want %v", row.SchoolID, row.HazardsFound.IDs, found)
					}
					if !slices.Equal(sorted(row.HazardsOverdue.IDs), sorted(overdue)) {
						t.Errorf("school %s hazards overdue %v, want %v", row.SchoolID, row.HazardsOverdue.IDs, overdue)
					}
					if !slices.Equal(sorted(row.HazardsClosed.IDs), sorted(closed)) {
						t.Errorf("school %s hazards closed %v, want %v", row.SchoolID, row.HazardsClosed.IDs, closed)
					}
				}
				if len(rep.Inspectors) == 0 {
					t.Fatal("no inspector rows")
				}
				for _, row := range rep.Inspectors {
					var done, req, miss, hours float64
					var ids, overdue []string
					for _, s := range row.SchoolIDs {
						d, r, m, i, _ := o.visits(s, row.InspectorID)
						done, req, miss, ids = done+d, req+r, miss+m, append(ids, i...)
						for _, h := range p.hazards {
							if h.school == s && h.found <= period.To && o.overdue(h) {
								overdue = append(overdue, h.id)
							}
						}
					}
					for _, ob := range p.obs {
						if ob.observer == row.InspectorID && o.inScope(ob.school) && period.Contains(ob.date) {
							hours += float64(ob.minutes) / 45
						}
					}
					if row.Visits.Done != done || row.Visits.Required != req || row.Visits.Missing != math.Max(miss, req-done) {
						t.Errorf("inspector %s visits %+v, want done %v required %v missing %v", row.InspectorID, row.Visits, done, req, miss)
					}
					if !slices.Equal(sorted(row.Visits.IDs), sorted(ids)) {
						t.Errorf("inspector %s visit ids differ", row.InspectorID)
					}
					if math.Abs(row.ObservationHours.Done-hours) > 0.051 {
						t.Errorf("inspector %s observation hours %v, want %v", row.InspectorID, row.ObservationHours.Done, hours)
					}
					if !slices.Equal(sorted(row.HazardsOverdue.IDs), sorted(overdue)) {
						t.Errorf("inspector %s overdue %v, want %v", row.InspectorID, row.HazardsOverdue.IDs, overdue)
					}
				}
				if tc.filter.Inspector != "" && (len(rep.Inspectors) != 1 || rep.Inspectors[0].InspectorID != tc.filter.Inspector) {
					t.Errorf("inspector filter: rows %d", len(rep.Inspectors))
				}
				if period.Kind == reports.PeriodSemester {
					for _, row := range rep.Inspectors {
						if row.ObservationHours.Required != 20 {
							t.Errorf("semester observation quota %v, want 20", row.ObservationHours.Required)
						}
					}
				}
				// The case must exercise something: visits counted, and
				// in the whole county, gaps and overdue hazards.
				var visits, overdue, gaps float64
				for _, row := range rep.Schools {
					visits += row.Visits.Done
					overdue += row.HazardsOverdue.Done
					gaps += float64(len(row.Gaps))
				}
				if visits == 0 || tc.filter == (reports.Filter{}) && (overdue == 0 || gaps == 0) {
					t.Errorf("a vacuous case: %v visits, %v overdue, %v gaps", visits, overdue, gaps)
				}
				// Zones add up their schools.
				for _, z := range rep.Zones {
					var done float64
					n := 0
					for _, s := range rep.Schools {
						if s.ZoneID == z.ZoneID {
							done += s.Visits.Done
							n++
						}
					}
					if z.Visits.Done != done || z.Schools != n {
						t.Errorf("zone %s: %v visits over %d schools, want %v over %d", z.ZoneID, z.Visits.Done, z.Schools, done, n)
					}
				}
			})
		}
	})
}

func TestParsePeriod(t *testing.T) {
	for _, tc := range []struct {
		in       string
		from, to string
		months   int
		bad      bool
	}{
		{in: "2026-11", from: "2026-11-01", to: "2026-11-30", months: 1},
		{in: "2027-02", from: "2027-02-01", to: "2027-02-28", months: 1},
		{in: "2026-09-15..2026-11-15", from: "2026-09-15", to: "2026-11-15", months: 3},
		{in: "2026-2027-1", from: "2026-09-01", to: "2027-01-31", months: 5},
		{in: "2026-2027-2", from: "2027-02-01", to: "2027-07-31", months: 6},
		{in: "", bad: true},
		{in: "2026-13", bad: true},
		{in: "2026-2028-1", bad: true},
		{in: "2026-2027-3", bad: true},
		{in: "2026-11-15..2026-11-01", bad: true},
		{in: "2020-01-01..2026-01-01", bad: true},
		{in: "last month", bad: true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := reports.ParsePeriod(tc.in, reports.Defaults())
			if tc.bad {
				if syncproto.ErrorCode(err) != syncproto.EINVALID {
					t.Fatalf("ParsePeriod(%q) = %+v, %v; want EINVALID", tc.in, p, err)
				}
				var e *syncproto.Error
				if !errorsAs(err, &e) || e.Fields["period"] == "" {
					t.Errorf("no field message: %v", err)
				}
				return
			}
			if err != nil || p.From != tc.from || p.To != tc.to || len(p.Months()) != tc.months {
				t.Errorf("ParsePeriod(%q) = %+v (months %v), %v; want %s..%s, %d months", tc.in, p, p.Months(), err, tc.from, tc.to, tc.months)
			}
		})
	}
}

func TestQuotasValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*reports.Quotas)
		field string
	}{
		{"Defaults", func(*reports.Quotas) {}, ""},
		{"NegativeVisits", func(q *reports.Quotas) { q.VisitsPerSchoolPerMonth = -1 }, "visits_per_school_per_month"},
		{"ZeroClassHour", func(q *reports.Quotas) { q.ClassHourMinutes = 0 }, "class_hour_minutes"},
		{"UnknownKind", func(q *reports.Quotas) { q.CountedVisitKinds = []string{"party"} }, "counted_visit_kinds"},
		{"UnknownSeverity", func(q *reports.Quotas) { q.HazardDeadlineDays = map[string]int{"urgent": 1} }, "hazard_deadline_days"},
		{"BadTerm", func(q *reports.Quotas) { q.FirstTermStart = "9/1" }, "first_term_start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := reports.Defaults()
			tc.edit(&q)
			err := q.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Fields[tc.field] == "" {
				t.Fatalf("Validate() = %v, want a message on %s", err, tc.field)
			}
		})
	}
}

// A school listed with an inspector who has recorded nothing yet still
// requires its visits: the directory lists every assignment.
func TestComputeListingWithoutRecords(t *testing.T) {
	testenv.ForEachStore(t, func(t *testing.T, st testenv.Stores) {
		ctx := t.Context()
		school, inspector := "0192b000-0000-7000-8000-0000000001aa", "0192b000-0000-7000-8000-0000000002aa"
		if err := st.Devices.PutInspector(ctx, server.Inspector{ID: inspector, UserID: "0192b000-0000-7000-8000-0000000002ab", Name: "新督学", Active: true}); err != nil {
			t.Fatal(err)
		}
		if err := st.Devices.PutAssignment(ctx, server.Assignment{ID: "0192b000-0000-7000-8000-0000000003aa", InspectorID: inspector, SchoolID: school, Role: "responsibility", Start: "2026-09-01"}); err != nil {
			t.Fatal(err)
		}
		c, err := reports.Load(ctx, st.Sync.(reports.Store), st.Devices, reports.Scope{}, testNow)
		if err != nil {
			t.Fatal(err)
		}
		period, _ := reports.ParsePeriod("2026-11", reports.Defaults())
		rep := reports.Compute(c, period, reports.Filter{})
		if len(rep.Schools) != 1 || rep.Schools[0].Visits.Required != 1 || rep.Schools[0].Visits.Missing != 1 || len(rep.Schools[0].Gaps) != 2 {
			t.Errorf("schools %+v, want the listed school missing its visit and day", rep.Schools)
		}
		if len(rep.Inspectors) != 1 || rep.Inspectors[0].Name != "新督学" || rep.Inspectors[0].Visits.Missing != 1 {
			t.Errorf("inspectors %+v, want 新督学 missing one visit", rep.Inspectors)
		}
	})
}
