package reports

import (
	"slices"
	"strconv"
	"strings"
)

// FeedbackDraft is the monthly feedback form (《责任督学挂牌督导每月反馈表》)
// of one inspector, school and month, prefilled from that month's records.
// Values are the form's fields (form monthly_feedback, version 1), ready
// to be saved as the inspector's draft; what the form marks as the
// server's (days_on_site, counters) is computed, the rest (highlights,
// problems, suggestions, matter ratings) is a proposal the inspector
// edits. Sources say which records each counter and list counted.
type FeedbackDraft struct {
	InspectorID string `json:"inspector_id"`
	SchoolID    string `json:"school_id"`
	Month       string `json:"month"`
	// Values are the form's fields.
	Values map[string]any `json:"values"`
	// Sources maps every computed value (visit_ids, days_on_site,
	// counters.hazards_opened…) to the ids of the records it counts.
	Sources map[string][]string `json:"sources"`
	// Lists are the month's records as the form shows them.
	Observations []*Observation `json:"observations"`
	Hazards      []*Hazard      `json:"hazards"`
	Visits       []*Visit       `json:"visits"`
	// Existing is the id of the form already stored for this inspector,
	// school and month, if any, and its status.
	Existing       string `json:"existing_id,omitempty"`
	ExistingStatus string `json:"existing_status,omitempty"`
}

// Prefill computes the monthly feedback form of an inspector at a school
// for a month (YYYY-MM) from the county's records: the inspector's
// visits to the school that month (led or joined), days on site, the
// lesson observations they made there, the questionnaires they collected,
// hazards found, closed and overdue (at the county's server time), and a
// matter summary taken from the visits' findings (the latest rating per
// matter, notes joined).
func Prefill(c *County, inspector, school, month string) *FeedbackDraft {
	d := &FeedbackDraft{InspectorID: inspector, SchoolID: school, Month: month, Sources: map[string][]string{},
		Observations: []*Observation{}, Hazards: []*Hazard{}, Visits: []*Visit{}}
	in := func(day string) bool { return len(day) >= 7 && day[:7] == month }
	user := ""
	if i := c.Inspectors[inspector]; i != nil {
		user = i.UserID
	}
	visitIDs := []string{}
	dates := map[string]bool{}
	var highlights, problems, suggestions []string
	type rating struct{ rating, note, date string }
	matters := map[string]*rating{}
	for _, v := range c.Visits {
		if v.SchoolID != school || !in(v.Date) || !v.by(inspector) || v.Status == "planned" || v.Status == "cancelled" {
			continue
		}
		d.Visits = append(d.Visits, v)
		visitIDs = append(visitIDs, v.ID)
		dates[v.Date] = true
		highlights = appendText(highlights, v.Highlights)
		problems = appendText(problems, v.Problems)
		suggestions = appendText(suggestions, v.Suggestions)
		for _, f := range v.Findings {
			if f.Matter == "" || f.Rating == "" {
				continue
			}
			m := matters[f.Matter]
			if m == nil {
				m = &rating{}
				matters[f.Matter] = m
			}
			// The latest visit's rating; notes of every visit.
			if v.Date >= m.date {
				m.rating, m.date = f.Rating, v.Date
			}
			if f.Note != "" && !strings.Contains(m.note, f.Note) {
				m.note = strings.TrimPrefix(m.note+"；"+f.Note, "；")
			}
		}
	}
	dayList := slices.Sorted(mapKeys(dates))
	d.Sources["visit_ids"] = visitIDs
	d.Sources["days_on_site"] = visitIDs

	counters := map[string]int{}
	count := func(name, id string) {
		counters[name]++
		d.Sources["counters."+name] = append(d.Sources["counters."+name], id)
	}
	for _, name := range []string{"hazards_opened", "hazards_closed", "hazards_overdue", "complaints_received", "observations", "questionnaires"} {
		counters[name] = 0
		d.Sources["counters."+name] = []string{}
	}
	for _, o := range c.Observations {
		if o.SchoolID == school && o.ObserverID == inspector && in(o.Date) {
			d.Observations = append(d.Observations, o)
			count("observations", o.ID)
		}
	}
	for _, r := range c.Responses {
		if r.SchoolID == school && in(r.Date) && (r.CollectorID == user && user != "" || slices.Contains(visitIDs, r.VisitID)) {
			count("questionnaires", r.ID)
		}
	}
	monthEnd := month + "-31"
	for _, h := range c.Hazards {
		if h.SchoolID != school {
			continue
		}
		listed := false
		if in(h.Found) {
			count("hazards_opened", h.ID)
			listed = true
		}
		if h.Status == "closed" && in(h.Closed) {
			count("hazards_closed", h.ID)
			listed = true
		}
		if h.Overdue && h.Found <= monthEnd {
			count("hazards_overdue", h.ID)
			listed = true
		}
		if listed {
			d.Hazards = append(d.Hazards, h)
		}
	}
	summary := []map[string]any{}
	for _, code := range slices.Sorted(mapKeys(matters)) {
		m := matters[code]
		e := map[string]any{"matter_code": code, "rating": m.rating}
		if m.note != "" {
			e["note"] = m.note
		}
		summary = append(summary, e)
	}
	d.Values = map[string]any{
		"inspector_id": inspector,
		"school_id":    school,
		"month":        month,
		"visit_ids":    visitIDs,
		"days_on_site": strconv.Itoa(len(dayList)),
		"counters":     counters,
		"status":       "draft",
	}
	if len(summary) > 0 {
		d.Values["matter_summary"] = summary
	}
	for k, v := range map[string][]string{"highlights": highlights, "problems": problems, "suggestions": suggestions} {
		if len(v) > 0 {
			d.Values[k] = clip(strings.Join(v, "\n"), 2000)
		}
	}
	for _, f := range c.Feedback {
		if f.InspectorID == inspector && f.SchoolID == school && f.Month == month {
			d.Existing, d.ExistingStatus = f.ID, f.Status
		}
	}
	return d
}

func appendText(list []string, s string) []string {
	s = strings.TrimSpace(s)
	if s == "" || slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// clip cuts s to at most n characters (the form's limit).
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n])
}

// FeedbackMonths lists the (inspector, school) pairs a month's forms are
// due for: every listing active during the month, in the filter's scope.
func FeedbackMonths(c *County, month string, f Filter) [][2]string {
	p, err := ParsePeriod(month, c.Quotas)
	if err != nil {
		return nil
	}
	var out [][2]string
	for _, s := range c.inScope(f) {
		for _, i := range c.listed(s.ID, p.From, p.To) {
			if f.Inspector == "" || f.Inspector == i {
				out = append(out, [2]string{i, s.ID})
			}
		}
	}
	return out
}
