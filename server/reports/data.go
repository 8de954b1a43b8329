package reports

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fieldsync/fieldsync/server"
	"github.com/fieldsync/fieldsync/syncproto"
)

// Store is what reports read records from: every scope that has a change
// log, and a scope's log page by page (an equality lookup on the scope,
// the same read a phone's pull makes). The sync stores (server/mongo,
// server/memstore) satisfy it.
type Store interface {
	Scopes(ctx context.Context) (map[string]int64, error)
	Changes(ctx context.Context, scope string, after int64, limit int, maxBytes int64) (server.ChangesPage, error)
}

// Directory holds the inspectors and their assignments (server.DeviceStore
// satisfies it). Both are equality lookups by inspector id.
type Directory interface {
	Inspector(ctx context.Context, id string) (server.Inspector, error)
	AssignmentsOfInspector(ctx context.Context, inspectorID string) ([]server.Assignment, error)
}

// AssignmentLister is a Directory that can list every assignment (the
// stores of server/mongo and server/memstore can): with it, a school
// listed with an inspector who has no record yet still requires its
// visits. Without it, reports know the inspectors the records name.
type AssignmentLister interface {
	AllAssignments(ctx context.Context) ([]server.Assignment, error)
}

// Page sizes of a scope read: bounded in records and bytes, so a read's
// memory stays within one school's current records plus one page.
const (
	pageLimit = 2000
	pageBytes = 8 << 20
)

// ReadScope returns the current state of every record of a scope that is
// not deleted: the highest revision of each id in the scope's log, in
// the order the ids first appear.
func ReadScope(ctx context.Context, s Store, scope string) ([]*syncproto.Record, error) {
	latest := map[string]int{}
	var out []*syncproto.Record
	var after int64
	for {
		page, err := s.Changes(ctx, scope, after, pageLimit, pageBytes)
		if err != nil {
			return nil, fmt.Errorf("reports: read %s: %w", scope, err)
		}
		for _, r := range page.Records {
			id := r.ID.String()
			if i, ok := latest[id]; ok {
				if r.Rev >= out[i].Rev {
					out[i] = r
				}
				continue
			}
			latest[id] = len(out)
			out = append(out, r)
		}
		if !page.More || page.Pos == after {
			break
		}
		after = page.Pos
	}
	return slices.DeleteFunc(out, func(r *syncproto.Record) bool { return r.IsDeleted() }), nil
}

// School is a school as reports see it.
type School struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	ZoneID string `json:"zone_id,omitempty"`
}

// Inspector is an inspector as reports see it.
type Inspector struct {
	ID     string `json:"id"`
	UserID string `json:"user_id,omitempty"`
	Name   string `json:"name"`
}

// Assignment lists a school with an inspector for a span of days.
type Assignment struct {
	ID          string `json:"id"`
	InspectorID string `json:"inspector_id"`
	SchoolID    string `json:"school_id"`
	Start       string `json:"start_date"`
	End         string `json:"end_date,omitempty"`
	// MinVisits and MinDays are the listing's own monthly quota (an
	// assignment record's visit_quota with per "month"); 0 takes the
	// office's.
	MinVisits int `json:"min_visits,omitempty"`
	MinDays   int `json:"min_days,omitempty"`
}

// overlaps reports whether the assignment covers any day from..to.
func (a Assignment) overlaps(from, to string) bool {
	return (a.Start == "" || a.Start <= to) && (a.End == "" || a.End >= from)
}

// Visit is a visit record (E12).
type Visit struct {
	ID           string    `json:"id"`
	SchoolID     string    `json:"school_id"`
	InspectorID  string    `json:"inspector_id"`
	CoInspectors []string  `json:"co_inspector_ids,omitempty"`
	Kind         string    `json:"kind"`
	Date         string    `json:"visit_date"`
	Status       string    `json:"status"`
	Theme        string    `json:"theme,omitempty"`
	CheckIn      string    `json:"check_in_at,omitempty"`
	CheckOut     string    `json:"check_out_at,omitempty"`
	Highlights   string    `json:"highlights,omitempty"`
	Problems     string    `json:"problems,omitempty"`
	Suggestions  string    `json:"suggestions,omitempty"`
	Findings     []Finding `json:"matter_findings,omitempty"`
}

// Finding is a matter finding embedded in a visit.
type Finding struct {
	Matter string `json:"matter_code"`
	Rating string `json:"rating"`
	Note   string `json:"note,omitempty"`
}

// by reports whether the inspector led or joined the visit.
func (v *Visit) by(inspector string) bool {
	return v.InspectorID == inspector || slices.Contains(v.CoInspectors, inspector)
}

// Observation is a lesson observation (E15).
type Observation struct {
	ID          string  `json:"id"`
	SchoolID    string  `json:"school_id"`
	VisitID     string  `json:"visit_id,omitempty"`
	ObserverID  string  `json:"observer_id"`
	Date        string  `json:"date"`
	Started     string  `json:"started_at"`
	DurationMin int     `json:"duration_min"`
	Teacher     string  `json:"teacher_name"`
	Grade       string  `json:"grade"`
	ClassName   string  `json:"class_name,omitempty"`
	Subject     string  `json:"subject"`
	Topic       string  `json:"topic,omitempty"`
	Mode        string  `json:"mode"`
	Total       float64 `json:"total_score"`
	Band        string  `json:"grade_band,omitempty"`
	Scores      []Score `json:"scores,omitempty"`
	Suggestions string  `json:"suggestions,omitempty"`
}

// Score is one rubric criterion's score.
type Score struct {
	Code  string  `json:"criterion_code"`
	Name  string  `json:"name,omitempty"`
	Max   float64 `json:"max,omitempty"`
	Score float64 `json:"score"`
}

// Response is a questionnaire response (E16).
type Response struct {
	ID             string   `json:"id"`
	SchoolID       string   `json:"school_id"`
	VisitID        string   `json:"visit_id,omitempty"`
	CollectorID    string   `json:"collector_id"` // a user id
	Date           string   `json:"date"`
	Form           string   `json:"form"` // form id and version, "questionnaire.student_burden@3"
	RespondentType string   `json:"respondent_type,omitempty"`
	Status         string   `json:"status,omitempty"`
	Answers        []Answer `json:"answers"`
}

// Answer is one answer of a response, its value as text.
type Answer struct {
	QID   string `json:"qid"`
	Value string `json:"value"`
}

// Hazard is a hazard (E18) with its state folded at server time.
type Hazard struct {
	ID           string   `json:"id"`
	SchoolID     string   `json:"school_id"`
	Title        string   `json:"title"`
	Category     string   `json:"category,omitempty"`
	Location     string   `json:"location_desc,omitempty"`
	VisitID      string   `json:"found_in_visit_id,omitempty"`
	FoundBy      string   `json:"found_by,omitempty"` // user id of the reporter
	Found        string   `json:"found"`              // YYYY-MM-DD
	Severity     string   `json:"severity"`
	Status       string   `json:"status"`
	Deadline     string   `json:"deadline,omitempty"`
	DeadlineFrom string   `json:"deadline_source,omitempty"` // "notice" or "quota"
	Overdue      bool     `json:"overdue"`
	OverdueDays  int      `json:"overdue_days,omitempty"`
	Responsible  string   `json:"responsible,omitempty"`
	Closed       string   `json:"closed,omitempty"` // YYYY-MM-DD
	Photos       []string `json:"photo_ids,omitempty"`
	NeedsReview  bool     `json:"needs_review,omitempty"`
}

// Feedback is a monthly feedback form (E21) as stored.
type Feedback struct {
	ID          string         `json:"id"`
	InspectorID string         `json:"inspector_id"`
	SchoolID    string         `json:"school_id"`
	Month       string         `json:"month"`
	Status      string         `json:"status"`
	VisitIDs    []string       `json:"visit_ids"`
	DaysOnSite  string         `json:"days_on_site,omitempty"`
	Highlights  string         `json:"highlights,omitempty"`
	Problems    string         `json:"problems,omitempty"`
	Suggestions string         `json:"suggestions,omitempty"`
	Counters    map[string]int `json:"counters,omitempty"`
}

// County is the records a report is computed from.
type County struct {
	Schools      map[string]*School
	Zones        map[string]string // zone id → name, from zone records
	Inspectors   map[string]*Inspector
	Assignments  []Assignment
	Visits       []*Visit
	Observations []*Observation
	Responses    []*Response
	Hazards      []*Hazard
	Feedback     []*Feedback
	Quotas       Quotas
	// Now is the server time the hazards were folded at.
	Now time.Time
	// only, when set, are the only schools reports show: those whose
	// records were read (Scope.Schools).
	only map[string]bool
}

// NewCounty returns an empty county.
func NewCounty(q Quotas, now time.Time) *County {
	return &County{Schools: map[string]*School{}, Zones: map[string]string{}, Inspectors: map[string]*Inspector{}, Quotas: q.withDefaults(), Now: now}
}

// Scope selects what Load reads: every school (the zero Scope), or the
// listed ones.
type Scope struct {
	Schools []string
}

// Load reads the county from the store: the reference scope (inspectors,
// the settings record) and every school's scope (or the listed ones),
// then each known inspector's assignments from the directory (dir may be
// nil). Hazards are folded at now, the server's time.
func Load(ctx context.Context, s Store, dir Directory, sc Scope, now time.Time) (*County, error) {
	ref, err := ReadScope(ctx, s, server.RefScope)
	if err != nil {
		return nil, err
	}
	q := Defaults()
	for _, r := range ref {
		if r.Kind == SettingsKind && r.ID == SettingsRecordID("") {
			if q, err = QuotasFromRecord(r); err != nil {
				return nil, err
			}
		}
	}
	c := NewCounty(q, now)
	for _, r := range ref {
		c.Add(r)
	}
	if sc.Schools != nil {
		c.only = map[string]bool{}
		for _, s := range sc.Schools {
			c.only[s] = true
		}
	}
	scopes := sc.Schools
	if scopes == nil {
		all, err := s.Scopes(ctx)
		if err != nil {
			return nil, fmt.Errorf("reports: scopes: %w", err)
		}
		for sc := range all {
			if sc != server.RefScope {
				scopes = append(scopes, sc)
			}
		}
		sort.Strings(scopes)
	}
	for _, scope := range scopes {
		recs, err := ReadScope(ctx, s, scope)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			c.Add(r)
		}
		// A school's scope is the school, with or without its record.
		if len(recs) > 0 && c.Schools[scope] == nil {
			c.Schools[scope] = &School{ID: scope}
		}
	}
	if dir != nil {
		if err := c.addDirectory(ctx, dir); err != nil {
			return nil, err
		}
	}
	c.Sort()
	return c, nil
}

// addDirectory adds the directory's view of every inspector the records
// name: names, and assignments (deduplicated by id with those from
// records).
func (c *County) addDirectory(ctx context.Context, dir Directory) error {
	ids := map[string]bool{}
	for id := range c.Inspectors {
		ids[id] = true
	}
	for _, a := range c.Assignments {
		ids[a.InspectorID] = true
	}
	for _, v := range c.Visits {
		ids[v.InspectorID] = true
	}
	// The directory and the records are two sources: the same listing
	// may be in both (kept once), and ids need not agree between them.
	seen := map[Assignment]bool{}
	for _, a := range c.Assignments {
		seen[a] = true
	}
	if l, ok := dir.(AssignmentLister); ok {
		all, err := l.AllAssignments(ctx)
		if err != nil {
			return fmt.Errorf("reports: assignments: %w", err)
		}
		for _, a := range all {
			ids[a.InspectorID] = true
		}
	}
	for _, id := range slices.Sorted(mapKeys(ids)) {
		if id == "" {
			continue
		}
		in, err := dir.Inspector(ctx, id)
		switch {
		case syncproto.ErrorCode(err) == syncproto.ENOTFOUND:
		case err != nil:
			return fmt.Errorf("reports: inspector %s: %w", id, err)
		default:
			if _, ok := c.Inspectors[id]; !ok || c.Inspectors[id].Name == "" {
				c.Inspectors[id] = &Inspector{ID: id, UserID: in.UserID, Name: in.Name}
			}
		}
		as, err := dir.AssignmentsOfInspector(ctx, id)
		if err != nil {
			return fmt.Errorf("reports: assignments of %s: %w", id, err)
		}
		for _, a := range as {
			b := Assignment{ID: a.ID, InspectorID: a.InspectorID, SchoolID: a.SchoolID, Start: a.Start, End: a.End}
			if !seen[b] {
				seen[b] = true
				c.Assignments = append(c.Assignments, b)
			}
		}
	}
	return nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Sort orders every list by id, so reports do not depend on log order.
func (c *County) Sort() {
	slices.SortFunc(c.Assignments, func(a, b Assignment) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(c.Visits, func(a, b *Visit) int { return cmp2(a.Date, b.Date, a.ID, b.ID) })
	slices.SortFunc(c.Observations, func(a, b *Observation) int { return cmp2(a.Date, b.Date, a.ID, b.ID) })
	slices.SortFunc(c.Responses, func(a, b *Response) int { return cmp2(a.Date, b.Date, a.ID, b.ID) })
	slices.SortFunc(c.Hazards, func(a, b *Hazard) int { return cmp2(a.Found, b.Found, a.ID, b.ID) })
	slices.SortFunc(c.Feedback, func(a, b *Feedback) int { return cmp2(a.Month, b.Month, a.ID, b.ID) })
}

func cmp2(a1, b1, a2, b2 string) int {
	if c := strings.Compare(a1, b1); c != 0 {
		return c
	}
	return strings.Compare(a2, b2)
}

// Add adds one record's current state to the county; kinds reports do
// not use are ignored.
func (c *County) Add(r *syncproto.Record) {
	if r.IsDeleted() {
		return
	}
	id := r.ID.String()
	switch r.Kind {
	case "school":
		c.Schools[id] = &School{ID: id, Name: str(r, "name"), ZoneID: str(r, "zone_id")}
	case "zone":
		c.Zones[id] = str(r, "name")
	case "inspector":
		c.Inspectors[id] = &Inspector{ID: id, UserID: str(r, "user_id"), Name: str(r, "name")}
	case "assignment":
		a := Assignment{ID: id, InspectorID: str(r, "inspector_id"), SchoolID: str(r, "school_id"),
			Start: str(r, "start_date"), End: str(r, "end_date")}
		var vq struct {
			Per       string          `json:"per"`
			MinVisits json.RawMessage `json:"min_visits"`
			MinDays   json.RawMessage `json:"min_days"`
		}
		decode(r, "visit_quota", &vq)
		if vq.Per == "" || vq.Per == "month" {
			a.MinVisits, a.MinDays = int(math.Ceil(number(vq.MinVisits))), int(math.Ceil(number(vq.MinDays)))
		}
		c.Assignments = append(c.Assignments, a)
	case "visit":
		c.Visits = append(c.Visits, VisitOf(r))
	case "lesson_observation":
		c.Observations = append(c.Observations, ObservationOf(r))
	case "questionnaire_response":
		c.Responses = append(c.Responses, ResponseOf(r))
	case "hazard":
		c.Hazards = append(c.Hazards, HazardOf(r, c.Now, c.Quotas))
	case "monthly_feedback":
		c.Feedback = append(c.Feedback, FeedbackOf(r))
	}
}

// VisitOf reads a visit record.
func VisitOf(r *syncproto.Record) *Visit {
	v := &Visit{ID: r.ID.String(), SchoolID: r.SchoolID, InspectorID: str(r, "lead_inspector_id"), Kind: str(r, "kind"),
		Date: str(r, "visit_date"), Status: str(r, "status"), Theme: str(r, "theme"), CheckIn: str(r, "check_in_at"),
		CheckOut: str(r, "check_out_at"), Highlights: str(r, "highlights"), Problems: str(r, "problems"), Suggestions: str(r, "suggestions")}
	decode(r, "co_inspector_ids", &v.CoInspectors)
	decode(r, "matter_findings", &v.Findings)
	return v
}

// ObservationOf reads a lesson observation record.
func ObservationOf(r *syncproto.Record) *Observation {
	o := &Observation{ID: r.ID.String(), SchoolID: r.SchoolID, VisitID: str(r, "visit_id"), ObserverID: str(r, "observer_id"),
		Started: str(r, "started_at"), DurationMin: int(num(r, "duration_min")), Teacher: str(r, "teacher_name"), Grade: str(r, "grade"),
		ClassName: str(r, "class_name"), Subject: str(r, "subject"), Topic: str(r, "topic"), Mode: str(r, "mode"),
		Band: str(r, "grade_band"), Suggestions: str(r, "suggestions")}
	o.Date = dayOf(o.Started, r.CreatedAt)
	var scores []map[string]json.RawMessage
	decode(r, "scores", &scores)
	var total float64
	for _, s := range scores {
		sc := Score{Code: text(s["criterion_code"]), Name: text(s["name"]), Max: number(s["max"]), Score: number(s["score"])}
		total += sc.Score
		o.Scores = append(o.Scores, sc)
	}
	// The total is the sum of the scores (DOMAIN: derived); a stored
	// total is used only when no scores were given.
	if len(scores) > 0 {
		o.Total = total
	} else {
		o.Total = num(r, "total_score")
	}
	return o
}

// ResponseOf reads a questionnaire response record.
func ResponseOf(r *syncproto.Record) *Response {
	q := &Response{ID: r.ID.String(), SchoolID: r.SchoolID, VisitID: str(r, "visit_id"), CollectorID: str(r, "collector_id"),
		RespondentType: str(r, "respondent_type"), Status: str(r, "status"), Form: r.FormID + "@" + strconv.Itoa(r.FormVersion)}
	q.Date = dayOf(str(r, "collected_at"), r.CreatedAt)
	var answers []map[string]json.RawMessage
	decode(r, "answers", &answers)
	for _, a := range answers {
		q.Answers = append(q.Answers, Answer{QID: text(a["qid"]), Value: text(a["value"])})
	}
	return q
}

// HazardOf reads a hazard record and folds its events at server time
// now. The deadline is the notice's; before a notice sets one, it is the
// day found plus the office's default days for the severity
// (DeadlineFrom "quota"). A hazard is overdue when it still waits for
// the school or the office to act (reported, confirmed, notice issued,
// rectifying, escalated) and its deadline is before today in China.
func HazardOf(r *syncproto.Record, now time.Time, q Quotas) *Hazard {
	st := syncproto.FoldHazard(r, now)
	h := &Hazard{ID: r.ID.String(), SchoolID: r.SchoolID, Title: str(r, "title"), Category: str(r, "category"),
		Location: str(r, "location_desc"), VisitID: str(r, "found_in_visit_id"), FoundBy: r.CreatedBy,
		Status: st.Status, Severity: st.Severity, Deadline: st.Deadline, NeedsReview: st.NeedsReview}
	if h.Severity == "" {
		h.Severity = str(r, "severity")
	}
	if h.Status == "" {
		// No valid reported event (a hazard synced without its log):
		// it was reported, which is what the phone shows.
		h.Status = syncproto.HazardReported
	}
	// Found: the reported event's device time, else the record's.
	found := r.CreatedAt
	for _, e := range st.Events {
		if e.Type == syncproto.EventReported && !e.OccurredAt.IsZero() {
			found = e.OccurredAt
			break
		}
	}
	h.Found = chinaDay(found)
	if h.Deadline != "" {
		h.DeadlineFrom = "notice"
	} else if d, ok := q.HazardDeadlineDays[h.Severity]; ok && h.Found != "" {
		t, _ := time.Parse(time.DateOnly, h.Found)
		h.Deadline, h.DeadlineFrom = t.AddDate(0, 0, d).Format(time.DateOnly), "quota"
	}
	if len(st.Responsible) > 0 {
		var p struct{ Name, Role, Phone string }
		if json.Unmarshal(st.Responsible, &p) == nil {
			h.Responsible = strings.TrimSpace(p.Name + " " + bracket(p.Role) + " " + p.Phone)
		}
	} else if raw := r.Value("responsible"); len(raw) > 0 {
		var p struct{ Name, Role, Phone string }
		if json.Unmarshal(raw, &p) == nil && p.Name != "" {
			h.Responsible = strings.TrimSpace(p.Name + " " + bracket(p.Role) + " " + p.Phone)
		}
	}
	if st.ClosedAt != nil {
		h.Closed = chinaDay(*st.ClosedAt)
	}
	decode(r, "photo_ids", &h.Photos)
	for _, p := range st.Photos {
		if p.ID != "" && !slices.Contains(h.Photos, p.ID) {
			h.Photos = append(h.Photos, p.ID)
		}
	}
	switch h.Status {
	case syncproto.HazardReported, syncproto.HazardConfirmed, syncproto.HazardNoticeIssued, syncproto.HazardRectifying, syncproto.HazardEscalated:
		today := Today(now)
		if h.Deadline != "" && h.Deadline < today {
			h.Overdue, h.OverdueDays = true, days(h.Deadline, today)
		}
	}
	return h
}

func bracket(s string) string {
	if s == "" {
		return ""
	}
	return "（" + s + "）"
}

// FeedbackOf reads a monthly feedback record.
func FeedbackOf(r *syncproto.Record) *Feedback {
	f := &Feedback{ID: r.ID.String(), InspectorID: str(r, "inspector_id"), SchoolID: r.SchoolID, Month: str(r, "month"),
		Status: str(r, "status"), DaysOnSite: str(r, "days_on_site"), Highlights: str(r, "highlights"),
		Problems: str(r, "problems"), Suggestions: str(r, "suggestions")}
	decode(r, "visit_ids", &f.VisitIDs)
	decode(r, "counters", &f.Counters)
	if f.Status == "" {
		f.Status = "draft"
	}
	return f
}

// str returns a field's winning value as text ("" when absent or null;
// numbers as written).
func str(r *syncproto.Record, field string) string { return text(r.Value(field)) }

func text(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []any
	if json.Unmarshal(raw, &list) == nil {
		parts := make([]string, len(list))
		for i, v := range list {
			parts[i] = fmt.Sprint(v)
		}
		return strings.Join(parts, ";")
	}
	return string(raw)
}

func num(r *syncproto.Record, field string) float64 { return number(r.Value(field)) }

// number reads a JSON number or a decimal string ("87.5").
func number(raw json.RawMessage) float64 {
	if len(raw) == 0 {
		return 0
	}
	var f float64
	if json.Unmarshal(raw, &f) == nil {
		return f
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		f, _ = strconv.ParseFloat(strings.TrimSpace(s), 64)
	}
	return f
}

func decode(r *syncproto.Record, field string, v any) {
	if raw := r.Value(field); len(raw) > 0 {
		_ = json.Unmarshal(raw, v)
	}
}

// dayOf returns the date in China of an RFC 3339 timestamp, or of the
// fallback when the text is empty or not a time.
func dayOf(ts string, fallback time.Time) string {
	if t, err := time.Parse(time.RFC3339, ts); err == nil {
		return chinaDay(t)
	}
	return chinaDay(fallback)
}
