package server

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/parallel"
	"github.com/fieldsync/fieldsync/syncproto"
)

// The hazard desk: what the office's console reads (a read model kept
// next to the change log) and does (decisions on hazards).
//
// A decision is not a side channel: it is an event appended to the
// hazard's event log by the session's own replica, with its own op id and
// version vector, and pushed through the Syncer like a phone's change, so
// it merges by the same rules and reaches the inspector's phone on the
// next pull. Before it is pushed, the event is folded with the record the
// server holds: an event the transition table would keep only as
// evidence is refused with a message in Chinese instead. (If the hazard
// changes between that check and the push, the fold keeps the event as
// evidence and flags the hazard for review, as it would a phone's.)

// HazardRow is a hazard's current state in the read model: never the
// source of truth, rebuilt from the change log by RebuildReadModel and
// kept current on every accepted change.
type HazardRow struct {
	ID           string    `json:"id"`
	SchoolID     string    `json:"school_id"`
	ZoneID       string    `json:"zone_id,omitempty"`
	Title        string    `json:"title"`
	Category     string    `json:"category,omitempty"`
	Severity     string    `json:"severity,omitempty"`
	SeverityRank int       `json:"severity_rank"`
	Status       string    `json:"status"`
	Deadline     string    `json:"deadline,omitempty"`
	NeedsReview  bool      `json:"needs_review"`
	Author       string    `json:"author,omitempty"`
	ReportedAt   time.Time `json:"reported_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Photos       int       `json:"photos"`
	Events       int       `json:"events"`
	Rev          int64     `json:"rev"`
}

// Overdue reports whether the hazard is overdue on a date (YYYY-MM-DD in
// China).
func (h HazardRow) Overdue(today string) bool {
	return slices.Contains(overdueStatuses, h.Status) && h.Deadline != "" && h.Deadline < today
}

var overdueStatuses = []string{syncproto.HazardNoticeIssued, syncproto.HazardRectifying, syncproto.HazardEscalated}

// OverdueStatuses are the statuses in which a hazard can be overdue.
func OverdueStatuses() []string { return slices.Clone(overdueStatuses) }

// SchoolRow is a school in the read model.
type SchoolRow struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	ZoneID string `json:"zone_id,omitempty"`
}

// HazardFilter selects hazards of the queue. Every filter is an equality
// (or a short $in) first, so FerretDB can serve it from an index.
type HazardFilter struct {
	// AllSchools, or only Schools (the principal's scope).
	AllSchools bool
	Schools    []string
	Zone       string
	School     string
	Severity   string
	Status     string
	// Overdue selects hazards past their deadline on Today.
	Overdue bool
	Today   string
	// Sort is "newest" (default) or "urgent" (severity, then deadline).
	Sort  string
	Limit int
}

// RecordRow is a reviewed record (visit, lesson observation,
// questionnaire, monthly feedback) in the read model.
type RecordRow struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"`
	SchoolID    string    `json:"school_id"`
	ZoneID      string    `json:"zone_id,omitempty"`
	Title       string    `json:"title"`
	Author      string    `json:"author,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ReviewState string    `json:"review_state"`
	Rev         int64     `json:"rev"`
}

// RecordFilter selects reviewed records: the scope, then equalities.
type RecordFilter struct {
	AllSchools  bool
	Schools     []string
	School      string // one school (within the scope)
	Kind        string
	ReviewState string
	Limit       int
}

// ReadModelStore keeps the read model.
type ReadModelStore interface {
	// PutRecord stores a reviewed record's row unless a higher Rev is
	// stored; Records lists them newest first.
	PutRecord(ctx context.Context, r RecordRow) error
	Records(ctx context.Context, f RecordFilter) ([]RecordRow, error)
	// PutHazard stores a row unless a row of a higher Rev is stored.
	PutHazard(ctx context.Context, h HazardRow) error
	PutSchool(ctx context.Context, s SchoolRow) error
	Hazard(ctx context.Context, id string) (HazardRow, error)
	Hazards(ctx context.Context, f HazardFilter) ([]HazardRow, error)
	// HazardCounts counts the hazards of the filter by status (the
	// filter's Status and Overdue are ignored), and those overdue under
	// "overdue". It may read counts kept per school by RecountSchools.
	HazardCounts(ctx context.Context, f HazardFilter) (map[string]int, error)
	// RecountSchools brings the per-school counts of the hazards of
	// some schools up to date, from their rows (idempotent).
	RecountSchools(ctx context.Context, schools []string) error
	Schools(ctx context.Context) ([]SchoolRow, error)
	ZoneSchools(ctx context.Context, zone string) ([]string, error)
}

// Desk is the office's hazard desk.
type Desk struct {
	Sync   SyncService
	Access *Access
	Read   ReadModelStore
	Audit  *Audit
	Now    func() time.Time
	// Log is the change log RebuildReadModel reads (nil: no rebuild).
	Log ChangeLog
}

// Stored is the Syncer's hook for accepted changes: it keeps the read
// model current and logs the changes in the audit log. It is idempotent.
func (d *Desk) Stored(ctx context.Context, states []*syncproto.Record) error {
	// A push's records are indexed a few at a time (each is a round trip
	// or two), each school's zone read once, and each school with a
	// hazard among them recounted once, schools a few at a time.
	var schools []string
	for _, r := range states {
		if r.Kind == "hazard" && !slices.Contains(schools, r.SchoolID) {
			schools = append(schools, r.SchoolID)
		}
	}
	zones := make([]string, len(schools))
	if err := parallel.Bounded(len(schools), storedWorkers, func(i int) error {
		zones[i] = d.zoneOf(ctx, schools[i])
		return nil
	}); err != nil {
		return err
	}
	zoneOf := func(school string) string { return zones[slices.Index(schools, school)] }
	// Only the latest state of a record the push wrote twice: the rows
	// are written concurrently, and a school row has no revision check.
	latest := make(map[uuid.UUID]*syncproto.Record, len(states))
	for _, r := range states {
		if cur, ok := latest[r.ID]; !ok || r.Rev > cur.Rev {
			latest[r.ID] = r
		}
	}
	rows := make([]*syncproto.Record, 0, len(latest))
	for _, r := range states {
		if latest[r.ID] == r {
			rows = append(rows, r)
		}
	}
	if err := parallel.Bounded(len(rows), storedWorkers, func(i int) error {
		return d.index(ctx, rows[i], zoneOf)
	}); err != nil {
		return err
	}
	if err := parallel.Bounded(len(schools), storedWorkers, func(i int) error {
		return d.Read.RecountSchools(ctx, schools[i:i+1])
	}); err != nil {
		return err
	}
	if d.Audit != nil {
		return d.Audit.Append(ctx, ChangeEntries(ctx, states))
	}
	return nil
}

func str(r *syncproto.Record, field string) string {
	var s string
	_ = json.Unmarshal(r.Value(field), &s)
	return s
}

// storedWorkers bounds the read-model writes of one push in flight at once.
const storedWorkers = 8

// index puts one record state into the read model; zoneOf gives a
// hazard's school's zone.
func (d *Desk) index(ctx context.Context, r *syncproto.Record, zoneOf func(school string) string) error {
	switch r.Kind {
	case "school":
		return d.Read.PutSchool(ctx, SchoolRow{ID: r.ID.String(), Name: str(r, "name"), ZoneID: str(r, "zone_id")})
	case "hazard":
		h := d.row(r)
		h.ZoneID = zoneOf(r.SchoolID)
		return d.Read.PutHazard(ctx, h)
	}
	if slices.Contains(ReviewedKinds, r.Kind) && r.SchoolID != "" {
		row := RecordRow{ID: r.ID.String(), Kind: r.Kind, SchoolID: r.SchoolID, Author: r.CreatedBy, CreatedAt: r.CreatedAt.UTC(),
			ReviewState: FoldReview(r).State, Rev: r.Rev}
		for _, f := range []string{"title", "visit_date", "date", "lesson_title", "month", "type"} {
			if row.Title = str(r, f); row.Title != "" {
				break
			}
		}
		if sc, err := d.Sync.Record(ctx, RefScope, uuidOrNil(r.SchoolID)); err == nil {
			row.ZoneID = str(sc, "zone_id")
		}
		return d.Read.PutRecord(ctx, row)
	}
	return nil
}

func severityRank(s string) int {
	switch s {
	case "high":
		return 3
	case "medium":
		return 2
	case "low":
		return 1
	}
	return 0
}

func (d *Desk) row(r *syncproto.Record) HazardRow {
	st := syncproto.FoldHazard(r, d.Now())
	h := HazardRow{
		ID: r.ID.String(), SchoolID: r.SchoolID, Title: str(r, "title"), Category: str(r, "category"),
		Severity: st.Severity, SeverityRank: severityRank(st.Severity), Status: st.Status, Deadline: st.Deadline,
		NeedsReview: st.NeedsReview, Author: r.CreatedBy, ReportedAt: r.CreatedAt.UTC(), Photos: len(st.Photos),
		Events: len(st.Events), Rev: r.Rev,
	}
	if r.ServerReceivedAt != nil {
		h.UpdatedAt = r.ServerReceivedAt.UTC()
	}
	if h.Title == "" {
		h.Title = str(r, "description")
	}
	var ids []string
	if json.Unmarshal(r.Value("photo_ids"), &ids) == nil && len(ids) > h.Photos {
		h.Photos = len(ids)
	}
	return h
}

// zoneOf returns the zone of a school ("" when the school record is not
// there).
func (d *Desk) zoneOf(ctx context.Context, school string) string {
	if sc, err := d.Sync.Record(ctx, RefScope, uuidOrNil(school)); err == nil {
		return str(sc, "zone_id")
	}
	return ""
}

func uuidOrNil(s string) uuid.UUID {
	id, _ := uuid.Parse(s)
	return id
}

// Filter returns the principal's scope as a HazardFilter to refine.
func (d *Desk) Filter(ctx context.Context, p Principal) (HazardFilter, error) {
	all, ids, err := d.Access.schools(ctx, p)
	if err != nil {
		return HazardFilter{}, err
	}
	return HazardFilter{AllSchools: all, Schools: ids, Today: d.Now().In(syncproto.ChinaTime).Format(time.DateOnly)}, nil
}

// HazardView is a hazard as the detail page shows it.
type HazardView struct {
	Row    HazardRow
	Record *syncproto.Record
	State  syncproto.HazardState
	// Events are the log's events, decoded, in replay order, with what
	// the fold did with each.
	Events []EventView
}

// EventView is one event of the timeline.
type EventView struct {
	syncproto.Event
	Outcome syncproto.EventOutcome
}

// Hazard returns a hazard for the principal (EFORBIDDEN out of scope).
func (d *Desk) Hazard(ctx context.Context, p Principal, id string) (HazardView, error) {
	row, err := d.Read.Hazard(ctx, id)
	if err != nil {
		return HazardView{}, err
	}
	if err := d.Access.CanSee(ctx, p, row.SchoolID); err != nil {
		return HazardView{}, err
	}
	rid, err := uuid.Parse(id)
	if err != nil {
		return HazardView{}, syncproto.Errorf(syncproto.ENOTFOUND, "No hazard %s.", id)
	}
	rec, err := d.Sync.Record(ctx, row.SchoolID, rid)
	if err != nil {
		return HazardView{}, err
	}
	st := syncproto.FoldHazard(rec, d.Now())
	v := HazardView{Row: row, Record: rec, State: st}
	byID := map[string]syncproto.Item{}
	for _, it := range rec.Items["events"] {
		byID[it.ID] = it
	}
	for _, out := range st.Events {
		var ev syncproto.Event
		_ = json.Unmarshal(byID[out.ID].Data, &ev)
		v.Events = append(v.Events, EventView{Event: ev, Outcome: out})
	}
	return v, nil
}

// Hazard actions of the console.
const (
	ActConfirm       = "confirm"
	ActReject        = "reject"
	ActNotice        = "notice"
	ActRectification = "rectification"
	ActVerify        = "verify"
	ActVerifyFailed  = "verify_failed"
	ActClose         = "close"
	ActReopen        = "reopen"
	ActNote          = "note"
)

var actionEvents = map[string]string{
	ActConfirm: syncproto.EventConfirmed, ActReject: syncproto.EventRejected, ActNotice: syncproto.EventNoticeIssued,
	ActRectification: syncproto.EventRectificationReported, ActVerify: syncproto.EventVerificationPassed,
	ActVerifyFailed: syncproto.EventVerificationFailed, ActClose: syncproto.EventClosed, ActReopen: syncproto.EventReopened,
	ActNote: syncproto.EventNoteAdded,
}

// ActionNames are the console's words for the actions.
var ActionNames = map[string]string{
	ActConfirm: "确认隐患", ActReject: "不予受理", ActNotice: "下发整改通知", ActRectification: "登记整改情况",
	ActVerify: "验收通过", ActVerifyFailed: "验收不通过", ActClose: "消号", ActReopen: "重新打开", ActNote: "备注",
}

// HazardAction is a decision on a hazard.
type HazardAction struct {
	Action      string
	Reason      string
	Severity    string // confirm: optional reclassification
	Deadline    string // notice, verify_failed
	Responsible string // notice: the responsible person
	Phone       string
	Items       []string // notice: what to rectify
}

// actingRole is the office role a principal decides in: office head
// before reviewer; an administrator as admin.
func actingRole(p Principal) string {
	switch {
	case slices.Contains(p.Roles, RoleOfficeHead):
		return RoleOfficeHead
	case slices.Contains(p.Roles, RoleOfficeReviewer):
		return RoleOfficeReviewer
	case slices.Contains(p.Roles, RoleAdmin):
		return RoleAdmin
	}
	return ""
}

// Act makes a decision on a hazard as the principal: it checks the
// principal's role and scope, the action against the transition table,
// and pushes the event through the Syncer. It returns the push's result.
func (d *Desk) Act(ctx context.Context, p Principal, id string, a HazardAction) (syncproto.Result, error) {
	typ, ok := actionEvents[a.Action]
	if !ok {
		return syncproto.Result{}, syncproto.FieldError("未知操作。Unknown action.", map[string]string{"action": "unknown"})
	}
	role := actingRole(p)
	if p.IsDevice() || role == "" {
		return syncproto.Result{}, syncproto.Errorf(syncproto.EFORBIDDEN, "只有督导室人员可以处理隐患。Only the office decides on hazards.")
	}
	row, err := d.Read.Hazard(ctx, id)
	if err != nil {
		return syncproto.Result{}, err
	}
	if err := d.Access.CanSee(ctx, p, row.SchoolID); err != nil {
		return syncproto.Result{}, syncproto.Errorf(syncproto.EFORBIDDEN, "该学校不在您的责任范围内。This school is outside your scope.")
	}
	if !syncproto.MayMake("hazard", typ, role) {
		return syncproto.Result{}, syncproto.Errorf(syncproto.EFORBIDDEN, "督导室不能「%s」：该操作须由学校或督学完成。The office may not make a %s event.", ActionNames[a.Action], typ)
	}
	fields := map[string]string{}
	a.Reason = strings.TrimSpace(a.Reason)
	if a.Reason == "" {
		fields["reason"] = "请填写理由 (a reason is required)"
	}
	if utf8Len(a.Reason) > 2000 {
		fields["reason"] = "理由过长 (at most 2000 characters)"
	}
	payload := &syncproto.EventPayload{}
	now := d.Now().UTC().Truncate(time.Millisecond)
	switch a.Action {
	case ActConfirm:
		if a.Severity != "" && severityRank(a.Severity) == 0 {
			fields["severity"] = "须为 low、medium 或 high"
		}
		payload.Severity = a.Severity
	case ActNotice:
		dl, err := time.Parse(time.DateOnly, a.Deadline)
		switch {
		case err != nil:
			fields["deadline"] = "请填写整改期限 (YYYY-MM-DD)"
		case dl.Format(time.DateOnly) <= now.In(syncproto.ChinaTime).Format(time.DateOnly):
			fields["deadline"] = "整改期限须晚于今天 (the deadline must be after today)"
		}
		if strings.TrimSpace(a.Responsible) == "" {
			fields["responsible"] = "请填写整改责任人 (the responsible person is required)"
		}
		var items []string
		for _, it := range a.Items {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		if len(items) == 0 {
			fields["items"] = "请至少填写一项整改要求 (at least one item)"
		}
		a.Items = items
		resp, _ := json.Marshal(map[string]string{"name": strings.TrimSpace(a.Responsible), "phone": strings.TrimSpace(a.Phone)})
		payload.Deadline, payload.Responsible, payload.NoticeID = a.Deadline, resp, uuid.Must(uuid.NewV7()).String()
	case ActVerifyFailed:
		if a.Deadline != "" {
			if _, err := time.Parse(time.DateOnly, a.Deadline); err != nil {
				fields["deadline"] = "日期格式为 YYYY-MM-DD"
			}
			payload.Deadline = a.Deadline
		}
	case ActNote:
		payload.ReviewResolved = true
	}
	if len(fields) > 0 {
		return syncproto.Result{}, syncproto.FieldError("请检查填写的内容。Check the fields marked.", fields)
	}
	note := a.Reason
	if a.Action == ActNotice {
		var b strings.Builder
		b.WriteString(a.Reason)
		b.WriteString("\n整改要求：")
		for i, it := range a.Items {
			fmt.Fprintf(&b, "\n%d. %s", i+1, it)
		}
		note = b.String()
	}
	if b, _ := json.Marshal(payload); string(b) == "{}" {
		payload = nil
	}
	rid := uuidOrNil(id)
	rec, err := d.Sync.Record(ctx, row.SchoolID, rid)
	if err != nil {
		return syncproto.Result{}, err
	}
	ev := syncproto.Event{Type: typ, ActorID: p.UserID, ActorRole: role, OccurredAt: now, Note: note, Payload: payload, BaseRev: rec.Rev}
	data, err := ev.Data()
	if err != nil {
		return syncproto.Result{}, err
	}
	w := &syncproto.Writer{Replica: p.Replica, Author: p.UserID, Now: now}
	itemID := uuid.Must(uuid.NewV7()).String()
	next, delta := syncproto.Append(rec, "events", itemID, data, w)
	// Check the event against the transition table before sending it.
	// The event has no server time yet, so it folds last, where the push
	// will put it.
	before := syncproto.FoldHazard(rec, now)
	for _, out := range syncproto.FoldHazard(next, now).Events {
		if out.ID == itemID && out.Conflict == syncproto.ConflictKeptAsEvidence {
			return syncproto.Result{}, syncproto.Errorf(syncproto.ECONFLICT, "%s", refusal(a.Action, before, out.Reason))
		}
	}
	opID := uuid.Must(uuid.NewV7())
	req := syncproto.PushRequest{
		Protocol: syncproto.ProtocolVersion, DeviceID: p.Replica, BatchID: uuid.Must(uuid.NewV7()),
		Changes: []syncproto.Change{{OpID: opID, Record: delta, Base: rec.Version()}},
	}
	resp, err := d.Sync.Push(ctx, p, req, nil)
	if err != nil {
		return syncproto.Result{}, err
	}
	res := resp.Results[0]
	if res.Status == syncproto.StatusRejected {
		return res, res.Error
	}
	if d.Audit != nil {
		detail := a.Reason
		if a.Action == ActNotice {
			detail = fmt.Sprintf("%s (期限 %s, 责任人 %s)", a.Reason, a.Deadline, a.Responsible)
		}
		err := d.Audit.Append(ctx, []AuditEntry{{
			Key: "decision/" + opID.String(), Actor: p.UserID, ActorName: p.Name, Role: role, Session: p.Session,
			Action: "hazard." + a.Action, RecordID: id, Kind: "hazard", Scope: row.SchoolID, Rev: res.Rev, Detail: detail,
		}})
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func utf8Len(s string) int { return len([]rune(s)) }

// StatusNames are the hazard statuses in Chinese.
var StatusNames = map[string]string{
	syncproto.HazardReported: "已上报", syncproto.HazardConfirmed: "已确认", syncproto.HazardRejected: "不予受理",
	syncproto.HazardDuplicate: "重复", syncproto.HazardCancelled: "已撤销", syncproto.HazardNoticeIssued: "已下发整改通知",
	syncproto.HazardRectifying: "整改中", syncproto.HazardPendingVerification: "待验收", syncproto.HazardVerified: "已验收",
	syncproto.HazardEscalated: "已上报上级", syncproto.HazardClosed: "已消号",
}

// refusal explains in one sentence why the transition table refuses an
// action, in Chinese with the table's reason after it.
func refusal(action string, st syncproto.HazardState, reason string) string {
	name := ActionNames[action]
	switch {
	case strings.Contains(reason, "closing a high-severity hazard needs office_head"):
		return "高风险隐患须由督导室主任消号。(" + reason + ")"
	case strings.Contains(reason, "verification by document review"):
		return "中、高风险隐患须由督学到现场复查验收；督导室只能对低风险隐患书面验收。(" + reason + ")"
	case strings.Contains(reason, "may not make"):
		return fmt.Sprintf("督导室不能执行「%s」：该操作须由学校或督学完成。(%s)", name, reason)
	case strings.Contains(reason, "is not after the issue date"):
		return "整改期限须晚于下发日期。(" + reason + ")"
	case strings.Contains(reason, "not valid in state"):
		return fmt.Sprintf("隐患当前状态为「%s」，不能%s。(%s)", StatusNames[st.Status], name, reason)
	}
	return fmt.Sprintf("不能%s：%s", name, reason)
}

// StoredHooks returns a Syncer.Stored hook that calls each hook in turn.
func StoredHooks(hooks ...func(ctx context.Context, states []*syncproto.Record) error) func(ctx context.Context, states []*syncproto.Record) error {
	return func(ctx context.Context, states []*syncproto.Record) error {
		for _, h := range hooks {
			if err := h(ctx, states); err != nil {
				return err
			}
		}
		return nil
	}
}

// ConsoleStore is every store of the office console, as the storage
// packages implement them together.
type ConsoleStore interface {
	AccountStore
	AuditStore
	ReadModelStore
}

// ChangeLog is what RebuildReadModel reads: the scopes and their change
// logs (the sync store).
type ChangeLog interface {
	Scopes(ctx context.Context) (map[string]int64, error)
	Changes(ctx context.Context, scope string, after int64, limit int, maxBytes int64) (ChangesPage, error)
}

// RebuildReport says what RebuildReadModel did.
type RebuildReport struct {
	Scopes  int `json:"scopes"`
	States  int `json:"states"`
	Hazards int `json:"hazards"`
	Schools int `json:"schools"`
}

// RebuildReadModel puts every record state of the change log into the
// read model again: reference data first (the schools' zones), then
// every school's log, in log order. A row keeps its highest revision, so
// running it again, or while pushes are accepted, changes nothing that is
// current. It is the repair for a read model lost or wrong: the change
// log is the source of truth.
func (d *Desk) RebuildReadModel(ctx context.Context, log ChangeLog) (RebuildReport, error) {
	scopes, err := log.Scopes(ctx)
	if err != nil {
		return RebuildReport{}, err
	}
	order := make([]string, 0, len(scopes))
	for s := range scopes {
		if s != RefScope {
			order = append(order, s)
		}
	}
	slices.Sort(order)
	if _, ok := scopes[RefScope]; ok {
		order = append([]string{RefScope}, order...)
	}
	var rep RebuildReport
	hazards := map[uuid.UUID]bool{}
	var schools []string
	for _, scope := range order {
		rep.Scopes++
		for after := int64(0); ; {
			page, err := log.Changes(ctx, scope, after, 1000, 8<<20)
			if err != nil {
				return rep, fmt.Errorf("rebuild %s: %w", scope, err)
			}
			for _, r := range page.Records {
				rep.States++
				if err := d.index(ctx, r, func(school string) string { return d.zoneOf(ctx, school) }); err != nil {
					return rep, err
				}
				switch r.Kind {
				case "hazard":
					hazards[r.ID] = true
					if !slices.Contains(schools, r.SchoolID) {
						schools = append(schools, r.SchoolID)
					}
				case "school":
					rep.Schools++
				}
			}
			if !page.More || page.Pos == after {
				break
			}
			after = page.Pos
		}
	}
	rep.Hazards = len(hazards)
	return rep, d.Read.RecountSchools(ctx, schools)
}

// OpenConflicts returns the open conflicts the principal may resolve or
// see: every scope of its own (an account scoped to zones and schools sees
// theirs only).
func (d *Desk) OpenConflicts(ctx context.Context, p Principal, limit int) ([]Conflict, error) {
	var all []Conflict
	if office(p) {
		var err error
		if all, err = d.Sync.Conflicts(ctx, p, ConflictFilter{Status: ConflictOpen, Limit: limit}); err != nil {
			return nil, err
		}
	} else {
		// An inspector's account: the schools of its scope, one by one.
		_, ids, err := d.Access.schools(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			cs, err := d.Sync.Conflicts(ctx, p, ConflictFilter{Status: ConflictOpen, Scope: id, Limit: limit})
			if err != nil {
				return nil, err
			}
			all = append(all, cs...)
		}
	}
	out := all[:0]
	for _, c := range all {
		if c.Scope == RefScope && p.Has(RoleOfficeHead) {
			out = append(out, c)
			continue
		}
		ok, err := d.Access.CanSeeSchool(ctx, p, c.Scope)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// ResolveConflict settles a conflict with a value (one of the versions,
// or a new one) as the principal: the field is written again by the
// session's replica, having seen every version, and pushed through the
// Syncer like a phone's resolution, so the losing versions move to the
// record's conflict log and the phones get the resolution on their next
// pull. For the deletion register the value is true (delete) or false
// (keep).
func (d *Desk) ResolveConflict(ctx context.Context, p Principal, id string, value json.RawMessage, reason string) (syncproto.Result, error) {
	if p.IsDevice() || actingRole(p) == "" {
		return syncproto.Result{}, syncproto.Errorf(syncproto.EFORBIDDEN, "只有督导室人员可以处理冲突。Only the office resolves conflicts.")
	}
	recordID, field, ok := strings.Cut(id, "/")
	rid, err := uuid.Parse(recordID)
	if !ok || err != nil {
		return syncproto.Result{}, syncproto.Errorf(syncproto.ENOTFOUND, "没有该冲突。No conflict %s.", id)
	}
	list, err := d.Sync.Conflicts(ctx, p, ConflictFilter{RecordID: rid})
	if err != nil {
		return syncproto.Result{}, err
	}
	var c *Conflict
	for i := range list {
		if list[i].ID == id {
			c = &list[i]
		}
	}
	switch {
	case c == nil:
		return syncproto.Result{}, syncproto.Errorf(syncproto.ENOTFOUND, "没有该冲突。No conflict %s.", id)
	case c.Status != ConflictOpen:
		return syncproto.Result{}, syncproto.Errorf(syncproto.ECONFLICT, "该冲突已处理。The conflict was resolved already.")
	}
	if err := d.Access.Resolve(ctx, p, c.Scope); err != nil {
		return syncproto.Result{}, syncproto.Errorf(syncproto.EFORBIDDEN, "该学校不在您的责任范围内。This school is outside your scope.")
	}
	if strings.TrimSpace(reason) == "" {
		return syncproto.Result{}, syncproto.FieldError("请填写理由。A reason is required.", map[string]string{"reason": "请填写理由 (required)"})
	}
	v, err := syncproto.CanonicalJSON(value)
	if err != nil {
		return syncproto.Result{}, syncproto.FieldError("新值不是有效的 JSON。The value is not JSON.", map[string]string{"value": "不是有效的值"})
	}
	rec, err := d.Sync.Record(ctx, c.Scope, c.RecordID)
	if err != nil {
		return syncproto.Result{}, err
	}
	if field != "deleted" && !slices.Contains(rec.ConflictFields(), field) {
		return syncproto.Result{}, syncproto.Errorf(syncproto.ECONFLICT, "该字段已不再冲突（可能已由手机处理）。The field is no longer in conflict.")
	}
	now := d.Now().UTC().Truncate(time.Millisecond)
	w := &syncproto.Writer{Replica: p.Replica, Author: p.UserID, Now: now}
	var delta *syncproto.Record
	switch {
	case field != "deleted":
		_, delta = syncproto.Set(rec, field, v, w)
	case string(v) == "true":
		_, delta = syncproto.Delete(rec, w)
	case string(v) == "false":
		_, delta = syncproto.Keep(rec, w)
	default:
		return syncproto.Result{}, syncproto.FieldError("删除冲突只能选择删除或保留。", map[string]string{"value": "true or false"})
	}
	opID := uuid.Must(uuid.NewV7())
	resp, err := d.Sync.Push(ctx, p, syncproto.PushRequest{Protocol: syncproto.ProtocolVersion, DeviceID: p.Replica, BatchID: uuid.Must(uuid.NewV7()),
		Changes: []syncproto.Change{{OpID: opID, Record: delta, Base: rec.Version()}}}, nil)
	if err != nil {
		return syncproto.Result{}, err
	}
	res := resp.Results[0]
	if res.Status == syncproto.StatusRejected {
		return res, res.Error
	}
	if d.Audit != nil {
		err := d.Audit.Append(ctx, []AuditEntry{{
			Key: "decision/" + opID.String(), Actor: p.UserID, ActorName: p.Name, Role: actingRole(p), Session: p.Session,
			Action: "conflict.resolve", RecordID: c.RecordID.String(), Kind: c.Kind, Scope: c.Scope, Rev: res.Rev,
			Detail: fmt.Sprintf("%s = %s：%s", field, v, reason),
		}})
		if err != nil {
			return res, err
		}
	}
	return res, nil
}
