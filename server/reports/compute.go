package reports

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Count is one number of a report with its source: the records it counts
// (ids), what the quota requires, and what is missing (required − done,
// never below zero; for visits, the shortfall month by month).
type Count struct {
	Done     float64  `json:"done"`
	Required float64  `json:"required"`
	Missing  float64  `json:"missing"`
	IDs      []string `json:"ids"`
}

func (c *Count) add(id string, n float64) {
	c.Done += n
	c.IDs = append(c.IDs, id)
}

func (c *Count) finish() {
	c.Done, c.Required = round1(c.Done), round1(c.Required)
	c.Missing = math.Max(c.Missing, round1(c.Required-c.Done))
	c.Missing = math.Max(0, round1(c.Missing))
	if c.IDs == nil {
		c.IDs = []string{}
	}
	c.IDs = slices.Compact(c.IDs)
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// Gap is one thing missing: a school whose month lacks visits or days on
// site, or an inspector's observation hours.
type Gap struct {
	What     string  `json:"what"` // "visits", "visit_days", "semester_visits", "observation_hours"
	SchoolID string  `json:"school_id,omitempty"`
	Month    string  `json:"month,omitempty"`
	Done     float64 `json:"done"`
	Required float64 `json:"required"`
	// IDs are the records that did count (the visits of that month).
	IDs []string `json:"ids"`
}

// Filter narrows a report: zero fields match everything.
type Filter struct {
	Zone      string `json:"zone,omitempty"`
	School    string `json:"school,omitempty"`
	Inspector string `json:"inspector,omitempty"`
}

// SchoolRow is one school's numbers.
type SchoolRow struct {
	SchoolID     string   `json:"school_id"`
	Name         string   `json:"name"`
	ZoneID       string   `json:"zone_id,omitempty"`
	InspectorIDs []string `json:"inspector_ids"`
	// Visits counted toward the quota (any inspector) and distinct days on
	// site; required for the months the school was listed.
	Visits    Count `json:"visits"`
	VisitDays Count `json:"visit_days"`
	// Lessons observed at the school in the period (no quota).
	Observations Count `json:"observations"`
	// Hazards found and closed in the period; open and overdue now (of
	// those found up to the period's end).
	HazardsFound   Count `json:"hazards_found"`
	HazardsClosed  Count `json:"hazards_closed"`
	HazardsOpen    Count `json:"hazards_open"`
	HazardsOverdue Count `json:"hazards_overdue"`
	Gaps           []Gap `json:"gaps"`
}

// InspectorRow is one inspector's numbers over the schools in scope.
type InspectorRow struct {
	InspectorID string   `json:"inspector_id"`
	Name        string   `json:"name"`
	SchoolIDs   []string `json:"school_ids"` // listed with the inspector during the period
	// Visits and days on site at the listed schools, required per school
	// and month listed.
	Visits    Count `json:"visits"`
	VisitDays Count `json:"visit_days"`
	// Class hours of lesson observation (Σ duration / class hour);
	// required: the semester quota, pro rata by month for shorter periods.
	ObservationHours Count `json:"observation_hours"`
	// Hazards at the listed schools overdue now.
	HazardsOverdue Count `json:"hazards_overdue"`
	Gaps           []Gap `json:"gaps"`
}

// ZoneRow sums a zone's schools.
type ZoneRow struct {
	ZoneID         string  `json:"zone_id"`
	Schools        int     `json:"schools"`
	Visits         Count   `json:"visits"`
	VisitDays      Count   `json:"visit_days"`
	HazardsOpen    Count   `json:"hazards_open"`
	HazardsOverdue Count   `json:"hazards_overdue"`
	Completion     float64 `json:"completion"` // share of required visits done, 0..1 (1 when none is required)
}

// Report is quota completion for a period.
type Report struct {
	Period     Period         `json:"period"`
	Filter     Filter         `json:"filter"`
	Today      string         `json:"today"` // the server's date in China the hazards were judged at
	Quotas     Quotas         `json:"quotas"`
	Zones      []ZoneRow      `json:"zones"`
	Inspectors []InspectorRow `json:"inspectors"`
	Schools    []SchoolRow    `json:"schools"`
}

// inScope returns the schools the filter selects, sorted by id.
func (c *County) inScope(f Filter) []*School {
	ids := map[string]bool{}
	for id := range c.Schools {
		ids[id] = true
	}
	for _, a := range c.Assignments {
		ids[a.SchoolID] = true
	}
	var out []*School
	for _, id := range slices.Sorted(mapKeys(ids)) {
		if c.passes(id, f) {
			out = append(out, c.school(id))
		}
	}
	return out
}

// school returns a school, known by its record or by its id only.
func (c *County) school(id string) *School {
	if s := c.Schools[id]; s != nil {
		return s
	}
	return &School{ID: id}
}

// passes reports whether a school passes the filter: its zone, itself,
// or listed with the inspector at some time.
func (c *County) passes(id string, f Filter) bool {
	if c.only != nil && !c.only[id] {
		return false
	}
	s := c.school(id)
	if f.Zone != "" && s.ZoneID != f.Zone || f.School != "" && s.ID != f.School {
		return false
	}
	return f.Inspector == "" || slices.ContainsFunc(c.Assignments, func(a Assignment) bool {
		return a.InspectorID == f.Inspector && a.SchoolID == id
	})
}

// counted reports whether a visit counts toward the quota: a counted
// kind, not planned or cancelled.
func (c *County) counted(v *Visit) bool {
	return slices.Contains(c.Quotas.CountedVisitKinds, v.Kind) && v.Status != "planned" && v.Status != "cancelled"
}

// listed returns the inspectors listed with a school during from..to.
func (c *County) listed(school, from, to string) []string {
	var out []string
	for _, a := range c.Assignments {
		if a.SchoolID == school && a.overlaps(from, to) && !slices.Contains(out, a.InspectorID) {
			out = append(out, a.InspectorID)
		}
	}
	sort.Strings(out)
	return out
}

// required returns the visits and days a school requires in from..to
// (a month): the largest quota of the listings then (of inspector's only
// when set), each listing's own quota or the office's; zero when the
// school was not listed.
func (c *County) required(school, inspector, from, to string) (visits, days float64, listed bool) {
	for _, a := range c.Assignments {
		if a.SchoolID != school || !a.overlaps(from, to) || inspector != "" && a.InspectorID != inspector {
			continue
		}
		listed = true
		v, d := a.MinVisits, a.MinDays
		if v == 0 {
			v = c.Quotas.VisitsPerSchoolPerMonth
		}
		if d == 0 {
			d = c.Quotas.VisitDaysPerSchoolPerMonth
		}
		visits, days = max(visits, float64(v)), max(days, float64(d))
	}
	return visits, days, listed
}

// monthSpan returns a month's first and last day, clipped to the period.
func (p Period) monthSpan(m string) (from, to string) {
	from, to = m+"-01", m+"-31"
	from, to = max(from, p.From), min(to, p.To)
	return from, to
}

// Compute computes quota completion for the period and filter from the
// county's records. It is pure: the server's time came with the county.
func Compute(c *County, p Period, f Filter) *Report {
	q := c.Quotas
	rep := &Report{Period: p, Filter: f, Today: Today(c.Now), Quotas: q, Zones: []ZoneRow{}, Inspectors: []InspectorRow{}, Schools: []SchoolRow{}}
	schools := c.inScope(f)
	scope := map[string]bool{}
	for _, s := range schools {
		scope[s.ID] = true
	}
	months := p.Months()
	semester := p.Kind == PeriodSemester

	// Counted visits in the period per school and month.
	type key struct{ school, month string }
	visits := map[key][]*Visit{}
	for _, v := range c.Visits {
		if scope[v.SchoolID] && p.Contains(v.Date) && c.counted(v) {
			k := key{v.SchoolID, v.Date[:7]}
			visits[k] = append(visits[k], v)
		}
	}
	countVisits := func(vs []*Visit, by string, n *Count, d *Count) (nv, nd float64, ids []string) {
		dates := map[string]bool{}
		for _, v := range vs {
			if by != "" && !v.by(by) {
				continue
			}
			nv++
			ids = append(ids, v.ID)
			if n != nil {
				n.add(v.ID, 1)
			}
			if !dates[v.Date] {
				dates[v.Date] = true
				nd++
				if d != nil {
					d.add(v.ID, 1)
				}
			} else if d != nil {
				d.IDs = append(d.IDs, v.ID)
			}
		}
		return nv, nd, ids
	}
	zones := map[string]*ZoneRow{}
	for _, s := range schools {
		row := SchoolRow{SchoolID: s.ID, Name: s.Name, ZoneID: s.ZoneID, InspectorIDs: c.listed(s.ID, p.From, p.To), Gaps: []Gap{}}
		if row.InspectorIDs == nil {
			row.InspectorIDs = []string{}
		}
		listedMonths := 0
		for _, m := range months {
			from, to := p.monthSpan(m)
			vs := visits[key{s.ID, m}]
			nv, nd, ids := countVisits(vs, "", &row.Visits, &row.VisitDays)
			rv, rd, listed := c.required(s.ID, "", from, to)
			if !listed {
				continue
			}
			listedMonths++
			row.Visits.Required += rv
			row.VisitDays.Required += rd
			if nv < rv {
				row.Visits.Missing += rv - nv
				row.Gaps = append(row.Gaps, Gap{What: "visits", SchoolID: s.ID, Month: m, Done: nv, Required: rv, IDs: nonNil(ids)})
			}
			if nd < rd {
				row.VisitDays.Missing += rd - nd
				row.Gaps = append(row.Gaps, Gap{What: "visit_days", SchoolID: s.ID, Month: m, Done: nd, Required: rd, IDs: nonNil(ids)})
			}
		}
		if semester && listedMonths > 0 && float64(q.VisitsPerSchoolPerSemester) > row.Visits.Required {
			row.Visits.Required = float64(q.VisitsPerSchoolPerSemester)
			if row.Visits.Done < row.Visits.Required {
				row.Gaps = append(row.Gaps, Gap{What: "semester_visits", SchoolID: s.ID, Done: row.Visits.Done, Required: row.Visits.Required, IDs: nonNil(row.Visits.IDs)})
			}
		}
		for _, o := range c.Observations {
			if o.SchoolID == s.ID && p.Contains(o.Date) {
				row.Observations.add(o.ID, 1)
			}
		}
		for _, h := range c.Hazards {
			if h.SchoolID != s.ID {
				continue
			}
			if p.Contains(h.Found) {
				row.HazardsFound.add(h.ID, 1)
			}
			if p.Contains(h.Closed) && h.Status == "closed" {
				row.HazardsClosed.add(h.ID, 1)
			}
			if h.Found <= p.To {
				if openStatus(h.Status) {
					row.HazardsOpen.add(h.ID, 1)
				}
				if h.Overdue {
					row.HazardsOverdue.add(h.ID, 1)
				}
			}
		}
		for _, cnt := range []*Count{&row.Visits, &row.VisitDays, &row.Observations, &row.HazardsFound, &row.HazardsClosed, &row.HazardsOpen, &row.HazardsOverdue} {
			cnt.finish()
		}
		rep.Schools = append(rep.Schools, row)

		z := zones[s.ZoneID]
		if z == nil {
			z = &ZoneRow{ZoneID: s.ZoneID}
			zones[s.ZoneID] = z
		}
		z.Schools++
		sumInto(&z.Visits, row.Visits)
		sumInto(&z.VisitDays, row.VisitDays)
		sumInto(&z.HazardsOpen, row.HazardsOpen)
		sumInto(&z.HazardsOverdue, row.HazardsOverdue)
	}
	for _, id := range slices.Sorted(mapKeys(zones)) {
		z := zones[id]
		for _, cnt := range []*Count{&z.Visits, &z.VisitDays, &z.HazardsOpen, &z.HazardsOverdue} {
			cnt.finish()
		}
		z.Completion = 1
		if z.Visits.Required > 0 {
			z.Completion = math.Round((z.Visits.Required-z.Visits.Missing)/z.Visits.Required*1000) / 1000
		}
		rep.Zones = append(rep.Zones, *z)
	}

	// Inspectors listed with a school in scope during the period.
	insp := map[string]bool{}
	for _, a := range c.Assignments {
		if scope[a.SchoolID] && a.overlaps(p.From, p.To) && (f.Inspector == "" || a.InspectorID == f.Inspector) {
			insp[a.InspectorID] = true
		}
	}
	for _, id := range slices.Sorted(mapKeys(insp)) {
		row := InspectorRow{InspectorID: id, Gaps: []Gap{}, SchoolIDs: []string{}}
		if in := c.Inspectors[id]; in != nil {
			row.Name = in.Name
		}
		for _, s := range schools {
			if slices.Contains(c.listed(s.ID, p.From, p.To), id) {
				row.SchoolIDs = append(row.SchoolIDs, s.ID)
			}
		}
		for _, sid := range row.SchoolIDs {
			for _, m := range months {
				from, to := p.monthSpan(m)
				nv, nd, ids := countVisits(visits[key{sid, m}], id, &row.Visits, &row.VisitDays)
				rv, rd, listed := c.required(sid, id, from, to)
				if !listed {
					continue
				}
				row.Visits.Required += rv
				row.VisitDays.Required += rd
				if nv < rv {
					row.Visits.Missing += rv - nv
					row.Gaps = append(row.Gaps, Gap{What: "visits", SchoolID: sid, Month: m, Done: nv, Required: rv, IDs: nonNil(ids)})
				}
				if nd < rd {
					row.VisitDays.Missing += rd - nd
					row.Gaps = append(row.Gaps, Gap{What: "visit_days", SchoolID: sid, Month: m, Done: nd, Required: rd, IDs: nonNil(ids)})
				}
			}
		}
		for _, o := range c.Observations {
			if o.ObserverID == id && scope[o.SchoolID] && p.Contains(o.Date) {
				row.ObservationHours.add(o.ID, float64(o.DurationMin)/float64(q.ClassHourMinutes))
			}
		}
		if semester {
			row.ObservationHours.Required = q.ObservationHoursPerSemester
		} else {
			for _, m := range months {
				if n := semesterMonths(m, q); n > 0 {
					from, to := p.monthSpan(m)
					// Pro rata by the days of the month the period covers.
					row.ObservationHours.Required += q.ObservationHoursPerSemester / float64(n) * float64(days(from, to)+1) / float64(monthDays(m))
				}
			}
		}
		row.ObservationHours.finish()
		if row.ObservationHours.Missing > 0 {
			row.Gaps = append(row.Gaps, Gap{What: "observation_hours", Done: row.ObservationHours.Done, Required: row.ObservationHours.Required, IDs: row.ObservationHours.IDs})
		}
		for _, h := range c.Hazards {
			if h.Overdue && h.Found <= p.To && slices.Contains(row.SchoolIDs, h.SchoolID) {
				row.HazardsOverdue.add(h.ID, 1)
			}
		}
		row.Visits.finish()
		row.VisitDays.finish()
		row.HazardsOverdue.finish()
		rep.Inspectors = append(rep.Inspectors, row)
	}
	return rep
}

func monthDays(m string) int {
	t, err := time.Parse("2006-01", m)
	if err != nil {
		return 30
	}
	return t.AddDate(0, 1, -1).Day()
}

func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}

func sumInto(dst *Count, src Count) {
	dst.Done += src.Done
	dst.Required += src.Required
	dst.Missing += src.Missing
	dst.IDs = append(dst.IDs, src.IDs...)
}

// openStatus: the hazard still needs action.
func openStatus(s string) bool {
	switch s {
	case "closed", "rejected", "duplicate", "cancelled":
		return false
	}
	return true
}
