package syncproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Hazard statuses (docs/domain.md §6.6). A hazard's status is never written: it
// is folded from the hazard's event log by FoldHazard.
const (
	HazardReported            = "reported"
	HazardConfirmed           = "confirmed"
	HazardRejected            = "rejected"
	HazardDuplicate           = "duplicate"
	HazardCancelled           = "cancelled"
	HazardNoticeIssued        = "notice_issued"
	HazardRectifying          = "rectifying"
	HazardPendingVerification = "pending_verification"
	HazardVerified            = "verified"
	HazardEscalated           = "escalated"
	HazardClosed              = "closed"
)

// Event types of the hazard (docs/domain.md E19) and follow-up task event logs.
const (
	EventReported              = "reported"
	EventPhotoAdded            = "photo_added"
	EventNoteAdded             = "note_added"
	EventReclassified          = "reclassified"
	EventConfirmed             = "confirmed"
	EventRejected              = "rejected"
	EventMarkedDuplicate       = "marked_duplicate"
	EventNoticeIssued          = "notice_issued"
	EventDeadlineChanged       = "deadline_changed"
	EventAcknowledged          = "acknowledged"
	EventFixedOnSite           = "fixed_on_site"
	EventRectificationReported = "rectification_reported"
	EventVerificationPassed    = "verification_passed"
	EventVerificationFailed    = "verification_failed"
	EventEscalated             = "escalated"
	EventClosed                = "closed"
	EventReopened              = "reopened"
	EventCancelled             = "cancelled"

	// Follow-up task events (see FoldTask).
	EventDone       = "done"
	EventReassigned = "reassigned"
)

// What happened to one event in a fold (docs/domain.md E19 "conflict").
const (
	// ConflictNone: the event was valid against the state at its turn and
	// was applied.
	ConflictNone = "none"
	// ConflictKeptAsEvidence: the event was not valid against the state
	// at its turn (or was malformed, or its actor's role may not make it).
	// It stays in the log as evidence, changes nothing, and sets
	// needs_review.
	ConflictKeptAsEvidence = "rejected_kept_as_evidence"
	// ConflictStaleAccepted: the event was made against a state that had
	// changed meanwhile, and was applied anyway by a rule for exactly that
	// case: a field observation that a closed hazard persists reopens it;
	// a task completed offline after it was cancelled is done. It sets
	// needs_review.
	ConflictStaleAccepted = "stale_accepted"
)

// ChinaTime is the time zone of dates in the domain (deadlines, "today"):
// Asia/Shanghai, which has had no daylight saving time since 1991, so a
// fixed offset is exact and needs no time zone database on the phone.
var ChinaTime = time.FixedZone("CST", 8*60*60)

// Event is one entry of a hazard's or a follow-up task's event log: the
// Data of an item of the record's "events" collection. Events are
// immutable; the log is a grow-only set merged by union, and the state is
// a fold over it (FoldHazard, FoldTask). Unknown members are ignored, so
// the expanded view of the domain samples (with applied_transition and
// server_received_at inside) decodes too; only Item.ServerReceivedAt, set
// by the server, is trusted for ordering.
type Event struct {
	Type       string        `json:"type"`
	ActorID    string        `json:"actor_id,omitempty"`
	ActorRole  string        `json:"actor_role,omitempty"`
	OccurredAt time.Time     `json:"occurred_at"` // device time, RFC 3339 with offset
	VisitID    string        `json:"visit_id,omitempty"`
	Note       string        `json:"note,omitempty"`
	PhotoIDs   []string      `json:"photo_ids,omitempty"` // attachment ids
	Photos     []EventPhoto  `json:"photos,omitempty"`    // or references by content hash
	Payload    *EventPayload `json:"payload,omitempty"`
	BaseRev    int64         `json:"base_rev"` // the record rev its author last saw
}

// EventPhoto refers to a photo from an event, by attachment id or by
// sha256 (or both), with its phase (before, after, evidence, sign).
type EventPhoto struct {
	ID     string `json:"id,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Phase  string `json:"phase,omitempty"`
}

// EventPayload holds the type-specific members of an event.
type EventPayload struct {
	Deadline    string          `json:"deadline,omitempty"` // YYYY-MM-DD, local date in China
	Severity    string          `json:"severity,omitempty"` // low, medium, high
	NoticeID    string          `json:"notice_id,omitempty"`
	Responsible json.RawMessage `json:"responsible,omitempty"` // {name, role, phone}
	EscalatedTo string          `json:"escalated_to,omitempty"`
	Phase       string          `json:"phase,omitempty"` // of the photos of a photo_added event
	// ReviewResolved, on a note_added event by an office role, clears
	// needs_review: the office has looked at the events that set it.
	ReviewResolved bool `json:"review_resolved,omitempty"`
	// Follow-up tasks.
	AssigneeID string `json:"assignee_id,omitempty"` // reassigned
	Outcome    string `json:"outcome,omitempty"`     // done: resolved, partly, not_resolved
}

// Data returns the event as canonical JSON, ready for Append.
func (e Event) Data() (json.RawMessage, error) {
	b, err := marshal(e)
	if err != nil {
		return nil, err
	}
	return CanonicalJSON(b)
}

func decodeEvent(data json.RawMessage) (Event, error) {
	var e Event
	if err := json.Unmarshal(data, &e); err != nil {
		return Event{}, err
	}
	switch {
	case e.Type == "":
		return Event{}, fmt.Errorf("no type")
	case e.OccurredAt.IsZero():
		return Event{}, fmt.Errorf("no occurred_at")
	}
	return e, nil
}

// Transition is the state change an event made: From is "" (null in
// JSON) for the event that created the record. Annotations (photos, notes,
// deadline changes) have From == To.
type Transition struct {
	From string
	To   string
}

type transitionJSON struct {
	From *string `json:"from"`
	To   string  `json:"to"`
}

// MarshalJSON writes {"from": null|state, "to": state}, as in the samples.
func (t Transition) MarshalJSON() ([]byte, error) {
	j := transitionJSON{To: t.To}
	if t.From != "" {
		j.From = &t.From
	}
	return marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (t *Transition) UnmarshalJSON(b []byte) error {
	var j transitionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	t.To = j.To
	t.From = ""
	if j.From != nil {
		t.From = *j.From
	}
	return nil
}

// EventOutcome is what a fold did with one event, in replay order.
type EventOutcome struct {
	ID         string      `json:"id"`
	Type       string      `json:"type"`
	ActorID    string      `json:"actor_id,omitempty"`
	OccurredAt time.Time   `json:"occurred_at"`                  // device time
	ReceivedAt *time.Time  `json:"server_received_at,omitempty"` // server time; nil while only on the phone
	Applied    *Transition `json:"applied_transition"`           // nil when the event changed nothing
	Conflict   string      `json:"conflict"`                     // ConflictNone, ConflictKeptAsEvidence or ConflictStaleAccepted
	Reason     string      `json:"reason,omitempty"`             // why an event was kept as evidence or accepted stale
}

// HazardPhoto is a photo referred to by an event of the log (applied or
// kept as evidence), with its phase: given in the event, or by default
// "before" for reported, "after" for fixed_on_site,
// rectification_reported and verification_passed, "evidence" otherwise.
type HazardPhoto struct {
	EventID string `json:"event_id"`
	ID      string `json:"id,omitempty"`
	SHA256  string `json:"sha256,omitempty"`
	Phase   string `json:"phase"`
}

// HazardState is the state of a hazard folded from its event log. Device
// times (the events' occurred_at) and server times (their arrival) are
// kept apart: ClosedAt and StatusSince are the device times the actor
// recorded, ClosedReceivedAt and StatusSinceServer the server's.
type HazardState struct {
	Status            string          `json:"status"` // "" when the log holds no valid reported event
	StatusSince       time.Time       `json:"status_since"`
	StatusSinceServer *time.Time      `json:"status_since_server,omitempty"`
	Severity          string          `json:"severity,omitempty"`
	Deadline          string          `json:"deadline,omitempty"` // YYYY-MM-DD, local date in China
	Responsible       json.RawMessage `json:"responsible,omitempty"`
	NoticeID          string          `json:"notice_id,omitempty"`
	EscalatedTo       string          `json:"escalated_to,omitempty"`
	// NeedsReview is set by an event kept as evidence and by a reopening;
	// ReviewEvents lists those events. An office note_added with
	// review_resolved clears both.
	NeedsReview  bool     `json:"needs_review"`
	ReviewEvents []string `json:"review_events,omitempty"`
	// The current closing (消号), if the hazard is closed.
	ClosedAt         *time.Time `json:"closed_at,omitempty"`
	ClosedReceivedAt *time.Time `json:"closed_received_at,omitempty"`
	ClosedBy         string     `json:"closed_by,omitempty"`
	// EvidenceAt is the device time of the evidence the hazard was
	// verified on (see FoldHazard); zero before a verification.
	EvidenceAt time.Time `json:"evidence_at,omitzero"`
	// Overdue is OverdueAt(now) for the now given to FoldHazard.
	Overdue bool           `json:"overdue"`
	Events  []EventOutcome `json:"events"`
	Photos  []HazardPhoto  `json:"photos,omitempty"`
}

// OverdueAt reports whether the hazard is overdue at server time now: its
// deadline is before today's date in China and it is waiting for the
// school (notice_issued, rectifying or escalated). Only the server's clock
// may be used: a phone passes its estimate of server time (its clock
// corrected by the ServerTime of its last sync), never its raw clock.
func (s HazardState) OverdueAt(now time.Time) bool {
	switch s.Status {
	case HazardNoticeIssued, HazardRectifying, HazardEscalated:
	default:
		return false
	}
	if !isDate(s.Deadline) {
		return false
	}
	return s.Deadline < now.In(ChinaTime).Format(time.DateOnly)
}

// IsOpen reports whether the hazard still needs action: it was reported
// and is not closed, rejected, a duplicate or cancelled.
func (s HazardState) IsOpen() bool { return hazardOpen(s.Status) }

func hazardOpen(status string) bool {
	switch status {
	case HazardReported, HazardConfirmed, HazardNoticeIssued, HazardRectifying,
		HazardPendingVerification, HazardVerified, HazardEscalated:
		return true
	}
	return false
}

// hazardRule is one row of the transition table of docs/domain.md §6.6.
type hazardRule struct {
	from  []string // states the event is valid in; nil: any state
	to    string   // "" keeps the state
	roles [][]string
}

var (
	anyRole     = [][]string{FieldRoles, OfficeRoles, SchoolRoles}
	fieldOffice = [][]string{FieldRoles, OfficeRoles}
	fieldSchool = [][]string{FieldRoles, SchoolRoles}
	officeOnly  = [][]string{OfficeRoles}
	fieldOnly   = [][]string{FieldRoles}
	openStates  = []string{HazardReported, HazardConfirmed, HazardNoticeIssued, HazardRectifying,
		HazardPendingVerification, HazardVerified, HazardEscalated}
)

// hazardRules is the transition table. Checks that depend on the payload,
// the severity or the evidence time are in hazardFold.step.
var hazardRules = map[string]hazardRule{
	EventReported:              {[]string{""}, HazardReported, anyRole},
	EventFixedOnSite:           {[]string{HazardReported}, HazardPendingVerification, fieldOnly},
	EventConfirmed:             {[]string{HazardReported}, HazardConfirmed, officeOnly},
	EventRejected:              {[]string{HazardReported}, HazardRejected, officeOnly},
	EventMarkedDuplicate:       {[]string{HazardReported}, HazardDuplicate, officeOnly},
	EventCancelled:             {[]string{HazardReported}, HazardCancelled, officeOnly},
	EventNoticeIssued:          {[]string{HazardConfirmed}, HazardNoticeIssued, officeOnly},
	EventAcknowledged:          {[]string{HazardNoticeIssued}, HazardRectifying, fieldSchool},
	EventRectificationReported: {[]string{HazardRectifying}, HazardPendingVerification, fieldSchool},
	EventVerificationPassed:    {[]string{HazardPendingVerification}, HazardVerified, fieldOffice}, // office only for low severity
	EventVerificationFailed:    {[]string{HazardPendingVerification}, HazardRectifying, fieldOffice},
	EventEscalated:             {[]string{HazardConfirmed, HazardRectifying}, HazardEscalated, officeOnly},
	EventDeadlineChanged:       {openStates, "", anyRole}, // escalated → rectifying
	EventReclassified:          {openStates, "", officeOnly},
	EventClosed:                {[]string{HazardVerified}, HazardClosed, officeOnly}, // office_head for high severity
	EventReopened:              {[]string{HazardClosed, HazardVerified}, HazardRectifying, officeOnly},
	EventPhotoAdded:            {nil, "", nil},
	EventNoteAdded:             {nil, "", nil},
}

func hasRole(classes [][]string, role string) bool {
	for _, c := range classes {
		if slices.Contains(c, role) {
			return true
		}
	}
	return false
}

// orderedEvents returns the items of an event log in replay order (see
// FoldHazard). The order is total, so the fold does not depend on the
// order of the slice.
func orderedEvents(items []Item) []Item {
	out := slices.Clone(items)
	slices.SortFunc(out, func(a, b Item) int {
		switch {
		case a.ServerReceivedAt != nil && b.ServerReceivedAt == nil:
			return -1
		case a.ServerReceivedAt == nil && b.ServerReceivedAt != nil:
			return 1
		case a.ServerReceivedAt != nil:
			if c := a.ServerReceivedAt.Compare(*b.ServerReceivedAt); c != 0 {
				return c
			}
		}
		if c := a.HLC.Compare(b.HLC); c != 0 {
			return c
		}
		if c := strings.Compare(a.ID, b.ID); c != 0 {
			return c
		}
		if c := bytes.Compare(a.Data, b.Data); c != 0 {
			return c
		}
		return cmpVector(a.Vector, b.Vector)
	})
	return out
}

// FoldHazard derives a hazard's state from its event log, the record's
// "events" collection, with the transition table of docs/domain.md §6.6, at
// server time now (used only for Overdue). It is pure and total: any log,
// however malformed, folds to a state.
//
// Replay order. Events the server has stamped (Item.ServerReceivedAt) come
// first, by (server time, HLC, id); then events not yet synced, by (HLC,
// id). The server applies each state event against the state current at
// its arrival (docs/domain.md §6.7), so arrival order is the order that decides
// what an event meant; the device times in occurred_at are wrong often
// enough in the field that they cannot order events, and are used only
// where the domain asks for "the time it happened" (the reopening rule,
// the issue date of a notice). Arrival stamps are set once by the server
// and merged by minimum, so every replica that holds the same events
// replays them in the same order and derives the same state. Events of one
// push share a server time; their HLC (monotonic per device, and bumped
// past everything the device had seen) keeps the order in which the device
// made them, and the id breaks the remaining ties. A phone's own unsynced
// events come last, after everything it has pulled, which is where the
// server will put them if nothing else arrives first: the phone's preview
// is the server's answer in the common case, and is corrected by the next
// pull otherwise.
//
// Rules:
//   - photo_added and note_added always apply, in any state (also after
//     closing), change nothing and never conflict: they commute.
//   - An event that is not valid against the state at its turn (wrong
//     state, a role that may not make it, a missing deadline or
//     responsible person, malformed data) is kept as evidence
//     (ConflictKeptAsEvidence), changes nothing, and sets NeedsReview.
//     Roles: closing needs office_head when the severity is high;
//     verification by an office role (document review) is allowed only
//     for low severity; notice_issued needs a deadline after the issue
//     date and a responsible person; verification_passed needs a photo
//     or a note; fixed_on_site needs a photo.
//   - A field observation that the hazard persists — verification_failed
//     by an inspector or zone leader — reopens a verified or closed
//     hazard to rectifying when its occurred_at is after the closing
//     evidence (ConflictStaleAccepted, NeedsReview): safety first. The
//     closing evidence is the verification the hazard was verified on:
//     for a verification on site (by a field role) its occurred_at; for an
//     office's document review (low severity) the time of the school's
//     report or fix it accepted, because that is when the photos were
//     taken that showed the hazard fixed; the office's own click is not an
//     observation of the site. An observation older than the evidence is
//     kept as evidence and sets NeedsReview, so it is still seen.
//   - Severity starts from the record's "severity" field, is overridden
//     by a severity in the reported event's payload, and changes with
//     confirmed and reclassified. The deadline comes from notice_issued,
//     deadline_changed and (optionally) verification_failed.
func FoldHazard(r *Record, now time.Time) HazardState {
	f := hazardFold{}
	if r != nil {
		var sev string
		if json.Unmarshal(r.Value("severity"), &sev) == nil && isSeverity(sev) {
			f.s.Severity = sev
		}
		events := orderedEvents(r.Items["events"])
		if !slices.ContainsFunc(events, isReportedEvent) {
			// The record is the report: a hazard filled in with the
			// report form carries no reported event of its own.
			f.s.Status, f.s.StatusSince, f.s.StatusSinceServer = HazardReported, r.CreatedAt, cloneTime(r.ServerReceivedAt)
		}
		for _, it := range events {
			f.apply(it)
		}
	}
	if f.s.Events == nil {
		f.s.Events = []EventOutcome{}
	}
	f.s.Overdue = f.s.OverdueAt(now)
	return f.s
}

// isReportedEvent reports whether an item of the log is a well-formed
// reported event.
func isReportedEvent(it Item) bool {
	ev, err := decodeEvent(it.Data)
	return err == nil && ev.Type == EventReported
}

type hazardFold struct {
	s          HazardState
	fixClaimAt time.Time // occurred_at of the last applied fix claim (fixed_on_site, rectification_reported)
}

func (f *hazardFold) apply(it Item) {
	out := EventOutcome{ID: it.ID, ReceivedAt: cloneTime(it.ServerReceivedAt), Conflict: ConflictNone}
	ev, err := decodeEvent(it.Data)
	if err != nil {
		out.Conflict = ConflictKeptAsEvidence
		out.Reason = "malformed event: " + err.Error()
		f.review(it.ID)
		f.s.Events = append(f.s.Events, out)
		return
	}
	out.Type, out.ActorID, out.OccurredAt = ev.Type, ev.ActorID, ev.OccurredAt
	f.collectPhotos(it.ID, ev)
	from := f.s.Status
	to, conflict, reason := f.step(ev)
	out.Conflict, out.Reason = conflict, reason
	if conflict == ConflictKeptAsEvidence {
		f.review(it.ID)
		f.s.Events = append(f.s.Events, out)
		return
	}
	if conflict == ConflictStaleAccepted {
		f.review(it.ID)
	}
	out.Applied = &Transition{From: from, To: to}
	if to != from {
		f.s.Status = to
		f.s.StatusSince = ev.OccurredAt
		f.s.StatusSinceServer = cloneTime(it.ServerReceivedAt)
		if from == HazardClosed {
			f.s.ClosedAt, f.s.ClosedReceivedAt, f.s.ClosedBy = nil, nil, ""
		}
		if to == HazardClosed {
			t := ev.OccurredAt
			f.s.ClosedAt, f.s.ClosedReceivedAt, f.s.ClosedBy = &t, cloneTime(it.ServerReceivedAt), ev.ActorID
		}
	}
	f.s.Events = append(f.s.Events, out)
}

func (f *hazardFold) review(id string) {
	f.s.NeedsReview = true
	f.s.ReviewEvents = append(f.s.ReviewEvents, id)
}

// step checks one decoded event against the current state and applies its
// payload. It returns the new status and the event's conflict value; a
// rejected event (ConflictKeptAsEvidence) must have changed nothing.
func (f *hazardFold) step(ev Event) (to, conflict, reason string) {
	cur := f.s.Status
	reject := func(format string, args ...any) (string, string, string) {
		return cur, ConflictKeptAsEvidence, fmt.Sprintf(format, args...)
	}
	rule, ok := hazardRules[ev.Type]
	if !ok {
		return reject("unknown event type %q", ev.Type)
	}
	p := ev.Payload
	if p == nil {
		p = &EventPayload{}
	}

	// Annotations commute with everything.
	if ev.Type == EventPhotoAdded || ev.Type == EventNoteAdded {
		if ev.Type == EventNoteAdded && p.ReviewResolved && IsOfficeRole(ev.ActorRole) {
			f.s.NeedsReview, f.s.ReviewEvents = false, nil
		}
		return cur, ConflictNone, ""
	}

	// The safety rule: a later field observation reopens.
	if ev.Type == EventVerificationFailed && (cur == HazardClosed || cur == HazardVerified) {
		switch {
		case !IsFieldRole(ev.ActorRole):
			return reject("verification_failed by %q on a %s hazard: only a field observation reopens; the office uses reopened", ev.ActorRole, cur)
		case !ev.OccurredAt.After(f.s.EvidenceAt):
			return reject("observation of %s is not after the closing evidence of %s", ev.OccurredAt.Format(time.RFC3339), f.s.EvidenceAt.Format(time.RFC3339))
		case p.Deadline != "" && !isDate(p.Deadline):
			return reject("payload.deadline %q is not a date", p.Deadline)
		}
		if p.Deadline != "" {
			f.s.Deadline = p.Deadline
		}
		return HazardRectifying, ConflictStaleAccepted,
			fmt.Sprintf("field observation of %s after the closing evidence of %s reopens the %s hazard",
				ev.OccurredAt.Format(time.RFC3339), f.s.EvidenceAt.Format(time.RFC3339), cur)
	}

	if rule.from != nil && !slices.Contains(rule.from, cur) {
		if cur == "" {
			return reject("%s before the hazard was reported", ev.Type)
		}
		return reject("%s is not valid in state %s", ev.Type, cur)
	}
	if !hasRole(rule.roles, ev.ActorRole) {
		return reject("actor_role %q may not make %s", ev.ActorRole, ev.Type)
	}
	to = rule.to
	if to == "" {
		to = cur
	}
	photos := len(ev.PhotoIDs) + len(ev.Photos)

	switch ev.Type {
	case EventReported:
		if p.Severity != "" && !isSeverity(p.Severity) {
			return reject("payload.severity %q is not low, medium or high", p.Severity)
		}
		if p.Severity != "" {
			f.s.Severity = p.Severity
		}
	case EventConfirmed, EventReclassified:
		switch {
		case p.Severity == "" && ev.Type == EventReclassified:
			return reject("reclassified needs payload.severity")
		case p.Severity != "" && !isSeverity(p.Severity):
			return reject("payload.severity %q is not low, medium or high", p.Severity)
		}
		if p.Severity != "" {
			f.s.Severity = p.Severity
		}
	case EventNoticeIssued:
		issued := ev.OccurredAt.In(ChinaTime).Format(time.DateOnly)
		switch {
		case !isDate(p.Deadline):
			return reject("notice_issued needs payload.deadline as YYYY-MM-DD")
		case p.Deadline <= issued:
			return reject("deadline %s is not after the issue date %s", p.Deadline, issued)
		case !present(p.Responsible):
			return reject("notice_issued needs payload.responsible")
		}
		f.s.Deadline, f.s.Responsible, f.s.NoticeID = p.Deadline, bytes.Clone(p.Responsible), p.NoticeID
	case EventDeadlineChanged:
		if !isDate(p.Deadline) {
			return reject("deadline_changed needs payload.deadline as YYYY-MM-DD")
		}
		f.s.Deadline = p.Deadline
		if cur == HazardEscalated {
			to = HazardRectifying
		}
	case EventFixedOnSite:
		if photos == 0 {
			return reject("fixed_on_site needs an after photo")
		}
		f.fixClaimAt = ev.OccurredAt
	case EventRectificationReported:
		if photos == 0 && strings.TrimSpace(ev.Note) == "" {
			return reject("rectification_reported needs a photo or a note")
		}
		f.fixClaimAt = ev.OccurredAt
	case EventVerificationPassed:
		office := !IsFieldRole(ev.ActorRole)
		switch {
		case office && f.s.Severity != "low":
			return reject("verification by document review (%s) is allowed only for low severity, not %q", ev.ActorRole, f.s.Severity)
		case photos == 0 && strings.TrimSpace(ev.Note) == "":
			return reject("verification_passed needs an after photo or a review note")
		}
		f.s.EvidenceAt = ev.OccurredAt
		if office && !f.fixClaimAt.IsZero() {
			f.s.EvidenceAt = f.fixClaimAt
		}
	case EventVerificationFailed:
		if p.Deadline != "" && !isDate(p.Deadline) {
			return reject("payload.deadline %q is not a date", p.Deadline)
		}
		if p.Deadline != "" {
			f.s.Deadline = p.Deadline
		}
	case EventEscalated:
		f.s.EscalatedTo = p.EscalatedTo
	case EventClosed:
		if f.s.Severity == "high" && ev.ActorRole != RoleOfficeHead && ev.ActorRole != RoleAdmin {
			return reject("closing a high-severity hazard needs office_head, not %q", ev.ActorRole)
		}
	}
	return to, ConflictNone, ""
}

func (f *hazardFold) collectPhotos(eventID string, ev Event) {
	def := "evidence"
	switch ev.Type {
	case EventReported:
		def = "before"
	case EventFixedOnSite, EventRectificationReported, EventVerificationPassed:
		def = "after"
	}
	if ev.Payload != nil && isPhase(ev.Payload.Phase) {
		def = ev.Payload.Phase
	}
	for _, id := range ev.PhotoIDs {
		f.s.Photos = append(f.s.Photos, HazardPhoto{EventID: eventID, ID: id, Phase: def})
	}
	for _, ph := range ev.Photos {
		phase := def
		if isPhase(ph.Phase) {
			phase = ph.Phase
		}
		f.s.Photos = append(f.s.Photos, HazardPhoto{EventID: eventID, ID: ph.ID, SHA256: ph.SHA256, Phase: phase})
	}
}

func isSeverity(s string) bool { return s == "low" || s == "medium" || s == "high" }

func isPhase(s string) bool { return s == "before" || s == "after" || s == "evidence" || s == "sign" }

// isDate reports whether s is a calendar date written YYYY-MM-DD.
func isDate(s string) bool {
	t, err := time.Parse(time.DateOnly, s)
	return err == nil && t.Format(time.DateOnly) == s
}

// present reports whether a JSON value says something: not absent, null,
// "", {} or [].
func present(v json.RawMessage) bool {
	s := strings.TrimSpace(string(v))
	return s != "" && s != "null" && s != `""` && s != "{}" && s != "[]"
}

// Follow-up task statuses (docs/domain.md E25).
const (
	TaskOpen      = "open"
	TaskDone      = "done"
	TaskCancelled = "cancelled"
)

// Flags a task fold raises (docs/domain.md §6.7).
const (
	FlagDoneAfterCancel        = "done_after_cancel"
	FlagReassignedWhileOffline = "reassigned_while_offline"
)

// TaskState is a follow-up task folded from its event log by FoldTask.
type TaskState struct {
	Status       string         `json:"status"`
	StatusSince  time.Time      `json:"status_since,omitzero"`
	Assignee     string         `json:"assignee_id,omitempty"`
	DoneVisitID  string         `json:"done_visit_id,omitempty"`
	Outcome      string         `json:"outcome,omitempty"`
	Flags        []string       `json:"flags,omitempty"`
	NeedsReview  bool           `json:"needs_review"`
	ReviewEvents []string       `json:"review_events,omitempty"`
	Events       []EventOutcome `json:"events"`
}

// FoldTask derives a follow-up task's state from its "events" collection,
// replayed in the order of FoldHazard, starting from open and the
// assignee in the record's "assignee_id" field.
//
// Why events and not a status field: the office cancels (or reassigns) a
// task while the inspector, offline, completes it. As two writes of one
// status field those would be a register conflict decided by HLC, that is
// by device clocks, and the domain wants a specific answer instead: the
// visit data is accepted and the task is done, flagged for the office
// (docs/domain.md §6.7). With events both acts are kept and the fold states the
// rule:
//   - cancelled (office): open → cancelled.
//   - reassigned (office, payload.assignee_id): open → open, new assignee.
//   - done (field role, visit_id, payload.outcome): open → done; a done
//     arriving after a cancel is accepted as done with the flag
//     done_after_cancel (ConflictStaleAccepted, NeedsReview); a done by
//     someone other than the current assignee gets
//     reassigned_while_offline.
//   - reopened (office): done or cancelled → open.
//   - note_added, photo_added: always apply.
//
// Anything else is kept as evidence and sets NeedsReview. Flags are
// never removed.
func FoldTask(r *Record) TaskState {
	s := TaskState{Status: TaskOpen, Events: []EventOutcome{}}
	if r == nil {
		return s
	}
	var assignee string
	if json.Unmarshal(r.Value("assignee_id"), &assignee) == nil {
		s.Assignee = assignee
	}
	flag := func(f string) {
		if !slices.Contains(s.Flags, f) {
			s.Flags = append(s.Flags, f)
			slices.Sort(s.Flags)
		}
	}
	for _, it := range orderedEvents(r.Items["events"]) {
		out := EventOutcome{ID: it.ID, ReceivedAt: cloneTime(it.ServerReceivedAt), Conflict: ConflictNone}
		ev, err := decodeEvent(it.Data)
		keep := func(reason string) {
			out.Conflict, out.Reason = ConflictKeptAsEvidence, reason
			s.NeedsReview = true
			s.ReviewEvents = append(s.ReviewEvents, it.ID)
		}
		if err != nil {
			keep("malformed event: " + err.Error())
			s.Events = append(s.Events, out)
			continue
		}
		out.Type, out.ActorID, out.OccurredAt = ev.Type, ev.ActorID, ev.OccurredAt
		p := ev.Payload
		if p == nil {
			p = &EventPayload{}
		}
		from, to := s.Status, s.Status
		office := IsOfficeRole(ev.ActorRole)
		switch ev.Type {
		case EventNoteAdded, EventPhotoAdded:
			if ev.Type == EventNoteAdded && p.ReviewResolved && office {
				s.NeedsReview, s.ReviewEvents = false, nil
			}
		case EventCancelled:
			switch {
			case !office:
				keep(fmt.Sprintf("actor_role %q may not cancel a task", ev.ActorRole))
			case from != TaskOpen:
				keep("cancelled is not valid in state " + from)
			default:
				to = TaskCancelled
			}
		case EventReassigned:
			switch {
			case !office:
				keep(fmt.Sprintf("actor_role %q may not reassign a task", ev.ActorRole))
			case from != TaskOpen:
				keep("reassigned is not valid in state " + from)
			case p.AssigneeID == "":
				keep("reassigned needs payload.assignee_id")
			default:
				s.Assignee = p.AssigneeID
			}
		case EventDone:
			switch {
			case !IsFieldRole(ev.ActorRole):
				keep(fmt.Sprintf("actor_role %q may not complete a task", ev.ActorRole))
			case ev.VisitID == "":
				keep("done needs the visit_id of the visit it was done in")
			case p.Outcome != "resolved" && p.Outcome != "partly" && p.Outcome != "not_resolved":
				keep(fmt.Sprintf("payload.outcome %q is not resolved, partly or not_resolved", p.Outcome))
			case from == TaskDone:
				keep("the task is already done")
			default:
				to = TaskDone
				s.DoneVisitID, s.Outcome = ev.VisitID, p.Outcome
				if from == TaskCancelled {
					flag(FlagDoneAfterCancel)
					out.Conflict, out.Reason = ConflictStaleAccepted, "done after the task was cancelled: the visit is accepted"
				}
				if s.Assignee != "" && ev.ActorID != s.Assignee {
					flag(FlagReassignedWhileOffline)
					out.Conflict, out.Reason = ConflictStaleAccepted, "done by "+ev.ActorID+", not the current assignee "+s.Assignee
				}
				if out.Conflict == ConflictStaleAccepted {
					s.NeedsReview = true
					s.ReviewEvents = append(s.ReviewEvents, it.ID)
				}
			}
		case EventReopened:
			switch {
			case !office:
				keep(fmt.Sprintf("actor_role %q may not reopen a task", ev.ActorRole))
			case from == TaskOpen:
				keep("reopened is not valid in state open")
			default:
				to = TaskOpen
				s.DoneVisitID, s.Outcome = "", ""
			}
		default:
			keep(fmt.Sprintf("unknown task event type %q", ev.Type))
		}
		if out.Conflict != ConflictKeptAsEvidence {
			out.Applied = &Transition{From: from, To: to}
			if to != from {
				s.Status, s.StatusSince = to, ev.OccurredAt
			}
		}
		s.Events = append(s.Events, out)
	}
	return s
}
