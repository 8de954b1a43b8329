package syncproto_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// hz is a test event: its id tail, the server time it arrived ("" while
// only on the phone), the replica that made it, and the event itself.
type hz struct {
	id      string
	stamp   string
	replica int
	ev      syncproto.Event
}

func eventID(tail string) string {
	return "0192b000-0000-7000-8000-" + strings.Repeat("0", 12-len(tail)) + tail
}

// hazardRecord builds a hazard record with the given severity field and
// events. Each event's HLC is its occurred_at on its replica, as a phone
// with a right clock would stamp it.
func hazardRecord(t testing.TB, severity string, events ...hz) *syncproto.Record {
	t.Helper()
	r := &syncproto.Record{ID: uuid.MustParse("0192b000-0000-7000-8000-000000000701"), Kind: "hazard", SchoolID: schoolID, CreatedAt: t0}
	if severity != "" {
		r, _ = syncproto.Set(r, "severity", str(severity), writer(1, "inspector", t0))
	}
	items := r.Items["events"]
	for i, e := range events {
		data, err := e.ev.Data()
		if err != nil {
			t.Fatal(err)
		}
		it := syncproto.Item{ID: eventID(e.id), Data: data,
			HLC:    syncproto.HLC{Wall: e.ev.OccurredAt.UnixMilli(), Logical: uint32(i), Replica: rid(e.replica)},
			Vector: vec(uint64(e.replica), uint64(i+1))}
		if e.stamp != "" {
			s := at(e.stamp)
			it.ServerReceivedAt = &s
		}
		items = append(items, it)
	}
	if r.Items == nil {
		r.Items = map[string][]syncproto.Item{}
	}
	r.Items["events"] = items
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	return r
}

const (
	inspector = "0192b000-0000-7000-8000-000000000211"
	reviewer  = "0192b000-0000-7000-8000-000000000202"
	head      = "0192b000-0000-7000-8000-000000000204"
	liaison   = "0192b000-0000-7000-8000-000000000203"
)

func e(typ, role, occurred string, mods ...func(*syncproto.Event)) syncproto.Event {
	actor := map[string]string{"inspector": inspector, "office_reviewer": reviewer, "office_head": head, "school_liaison": liaison}[role]
	ev := syncproto.Event{Type: typ, ActorID: actor, ActorRole: role, OccurredAt: at(occurred)}
	for _, m := range mods {
		m(&ev)
	}
	return ev
}

func withPhotos(ids ...string) func(*syncproto.Event) {
	return func(e *syncproto.Event) { e.PhotoIDs = ids }
}

func withNote(n string) func(*syncproto.Event) { return func(e *syncproto.Event) { e.Note = n } }

func withPayload(p syncproto.EventPayload) func(*syncproto.Event) {
	return func(e *syncproto.Event) { e.Payload = &p }
}

var responsible = json.RawMessage(`{"name":"黄卫东","phone":"13800000131","role":"总务主任"}`)

// lifecycle is the history of sample 09 up to verified (inspector
// verification on 14 Nov 08:40), as test events.
func lifecycle() []hz {
	return []hz{
		{"711", "2024-10-15T18:42:00+08:00", 1, e("reported", "inspector", "2024-10-15T08:21:00+08:00", withPhotos("p801", "p802"))},
		{"712", "2024-10-16T09:10:00+08:00", 2, e("confirmed", "office_reviewer", "2024-10-16T09:10:00+08:00", withPayload(syncproto.EventPayload{Severity: "medium"}))},
		{"713", "2024-10-16T15:30:00+08:00", 2, e("notice_issued", "office_reviewer", "2024-10-16T15:30:00+08:00",
			withPayload(syncproto.EventPayload{Deadline: "2024-10-31", NoticeID: "0192b000-0000-7000-8000-000000000a01", Responsible: responsible}))},
		{"714", "2024-10-17T08:45:00+08:00", 3, e("acknowledged", "school_liaison", "2024-10-17T08:45:00+08:00")},
		{"715", "2024-10-29T16:20:00+08:00", 3, e("rectification_reported", "school_liaison", "2024-10-29T16:20:00+08:00", withPhotos("p803"))},
		{"716", "2024-11-06T19:03:00+08:00", 1, e("verification_failed", "inspector", "2024-11-05T09:12:00+08:00", withPhotos("p805"))},
		{"717", "2024-11-07T10:00:00+08:00", 2, e("deadline_changed", "office_reviewer", "2024-11-07T10:00:00+08:00", withPayload(syncproto.EventPayload{Deadline: "2024-11-15"}))},
		{"718", "2024-11-12T11:05:00+08:00", 3, e("rectification_reported", "school_liaison", "2024-11-12T11:05:00+08:00", withPhotos("p806"))},
		{"719", "2024-11-14T20:15:00+08:00", 1, e("verification_passed", "inspector", "2024-11-14T08:40:00+08:00", withPhotos("p807", "p808"))},
	}
}

// sampleHazard converts sample 09 (the domain brief's hazard with its full
// history, copied to testdata/samples) into a record: the envelope becomes
// the header, severity a field, and each event an item whose data is the
// event as written in the sample (including the expanded-view members the
// fold ignores) and whose server stamp is the sample's server_received_at.
func sampleHazard(t testing.TB) (*syncproto.Record, []map[string]any) {
	t.Helper()
	raw, err := os.ReadFile("testdata/samples/09_hazard_with_history.json")
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var s map[string]any
	if err := d.Decode(&s); err != nil {
		t.Fatal(err)
	}
	id, _ := syncproto.ParseID(s["id"].(string))
	r := &syncproto.Record{ID: id, Kind: "hazard", SchoolID: s["school_id"].(string), CreatedAt: at(s["created_at"].(string)), CreatedBy: s["created_by"].(string)}
	r, _ = syncproto.Set(r, "severity", str(s["severity"].(string)), writer(1, s["created_by"].(string), r.CreatedAt))
	replicas := map[string]int{"a7f3c1": 1, "web-office-02": 2, "web-school-0103": 3}
	var events []map[string]any
	r.Items = map[string][]syncproto.Item{}
	for i, x := range s["events"].([]any) {
		m := x.(map[string]any)
		events = append(events, m)
		data, err := syncproto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		stamp := at(m["server_received_at"].(string))
		rep := replicas[m["device_id"].(string)]
		r.Items["events"] = append(r.Items["events"], syncproto.Item{
			ID: m["id"].(string), Data: data, ServerReceivedAt: &stamp, Vector: vec(uint64(rep), uint64(i+1)),
			HLC: syncproto.HLC{Wall: at(m["occurred_at"].(string)).UnixMilli(), Replica: rid(rep)},
		})
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	return r, events
}

// TestFoldHazard_Sample09 replays the sample hazard and checks the fold
// makes exactly the transitions the sample records, and ends closed.
func TestFoldHazard_Sample09(t *testing.T) {
	r, events := sampleHazard(t)
	now := at("2024-11-15T09:30:00+08:00")
	s := syncproto.FoldHazard(r, now)
	if s.Status != syncproto.HazardClosed || s.NeedsReview || s.Overdue {
		t.Fatalf("status=%s needs_review=%v overdue=%v", s.Status, s.NeedsReview, s.Overdue)
	}
	if len(s.Events) != len(events) {
		t.Fatalf("%d outcomes for %d events", len(s.Events), len(events))
	}
	for i, want := range events {
		got := s.Events[i]
		wt := want["applied_transition"].(map[string]any)
		from, _ := wt["from"].(string)
		if got.ID != want["id"] || got.Applied == nil || got.Applied.From != from || got.Applied.To != wt["to"] || got.Conflict != want["conflict"] {
			t.Errorf("event %d %s: got %s %+v %s, want %v %s", i, want["type"], got.ID, got.Applied, got.Conflict, wt, want["conflict"])
		}
	}
	if s.Severity != "medium" || s.Deadline != "2024-11-15" || s.NoticeID != "0192b000-0000-7000-8000-000000000a01" {
		t.Errorf("severity=%s deadline=%s notice=%s", s.Severity, s.Deadline, s.NoticeID)
	}
	if s.ClosedBy != "0192b000-0000-7000-8000-000000000202" || s.ClosedAt == nil || !s.ClosedAt.Equal(at("2024-11-15T09:30:00+08:00")) {
		t.Errorf("closed_at=%v closed_by=%s", s.ClosedAt, s.ClosedBy)
	}
	if !s.StatusSince.Equal(at("2024-11-15T09:30:00+08:00")) || s.StatusSinceServer == nil {
		t.Errorf("status_since=%v (server %v)", s.StatusSince, s.StatusSinceServer)
	}
	if !s.EvidenceAt.Equal(at("2024-11-14T08:40:00+08:00")) {
		t.Errorf("evidence_at=%v, want the inspector's verification", s.EvidenceAt)
	}
	var resp map[string]any
	if err := json.Unmarshal(s.Responsible, &resp); err != nil || resp["name"] != "黄卫东" {
		t.Errorf("responsible=%s", s.Responsible)
	}
	phases := map[string]string{}
	for _, p := range s.Photos {
		phases[p.ID] = p.Phase
	}
	for id, want := range map[string]string{
		"0192b000-0000-7000-8000-000000000801": "before", "0192b000-0000-7000-8000-000000000803": "after",
		"0192b000-0000-7000-8000-000000000805": "evidence", "0192b000-0000-7000-8000-000000000808": "after",
	} {
		if phases[id] != want {
			t.Errorf("photo %s phase=%q, want %q", id, phases[id], want)
		}
	}
	if len(s.Photos) != 8 {
		t.Errorf("%d photos, want 8", len(s.Photos))
	}

	// The sample said overdue=false on the day of closing; the fold says
	// the same at any time once closed, and was overdue on 1 Nov, after
	// the first deadline of 31 Oct passed with the hazard in rectifying.
	early := r.Clone()
	early.Items["events"] = early.Items["events"][:6] // up to the failed verification
	if st := syncproto.FoldHazard(early, at("2024-11-07T09:00:00+08:00")); st.Status != syncproto.HazardRectifying || !st.Overdue {
		t.Errorf("on 7 Nov before the extension: status=%s overdue=%v, want rectifying and overdue", st.Status, st.Overdue)
	}
}

// The fold depends on the set of events, not on the order of the slice,
// and server stamps order events even when device clocks disagree.
func TestFoldHazard_Order(t *testing.T) {
	r, _ := sampleHazard(t)
	want := syncproto.FoldHazard(r, t0)
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		p := r.Clone()
		rng.Shuffle(len(p.Items["events"]), func(i, j int) {
			p.Items["events"][i], p.Items["events"][j] = p.Items["events"][j], p.Items["events"][i]
		})
		if got := syncproto.FoldHazard(p, t0); !equalJSON(t, got, want) {
			t.Fatal("fold depends on the order of the items")
		}
	}
	// Device clocks that run backwards do not reorder stamped events.
	p := r.Clone()
	for i := range p.Items["events"] {
		p.Items["events"][i].HLC.Wall = int64(1000 - i)
	}
	if got := syncproto.FoldHazard(p, t0); got.Status != syncproto.HazardClosed || got.NeedsReview {
		t.Fatalf("with reversed HLCs: %s review=%v", got.Status, got.NeedsReview)
	}
	// Events of one push share a server time: their HLC orders them.
	q := hazardRecord(t, "medium",
		hz{"711", "2024-10-15T18:42:00+08:00", 1, e("reported", "inspector", "2024-10-15T08:21:00+08:00")},
		hz{"7ff", "2024-10-15T18:42:00+08:00", 1, e("fixed_on_site", "inspector", "2024-10-15T08:40:00+08:00", withPhotos("p1"))},
	)
	if got := syncproto.FoldHazard(q, t0); got.Status != syncproto.HazardPendingVerification {
		t.Fatalf("same stamp: status=%s, want pending_verification", got.Status)
	}
	// Unsynced local events come after all stamped ones, even with an
	// earlier HLC (a phone with a clock behind).
	evs := lifecycle()
	evs = append(evs, hz{"720", "", 1, e("verification_failed", "inspector", "2024-11-15T10:00:00+08:00", withPhotos("p9"))})
	evs[len(evs)-1].ev.OccurredAt = at("2024-11-15T10:00:00+08:00")
	loc := hazardRecord(t, "medium", evs...)
	loc.Items["events"][len(evs)-1].HLC.Wall = 1 // clock far behind
	got := syncproto.FoldHazard(loc, t0)
	if last := got.Events[len(got.Events)-1]; last.ID != eventID("720") || got.Status != syncproto.HazardRectifying {
		t.Fatalf("local event replayed at %v; status %s", last.ID, got.Status)
	}
}

func equalJSON(t testing.TB, a, b any) bool {
	t.Helper()
	return string(mustJSON(t, a)) == string(mustJSON(t, b))
}

// TestHazardScenario1_LateEvidenceAfterClosing is docs/domain.md §7.12
// scenario 1: the hazard is verified; the office closes it at 09:30 on
// 15 Nov; the inspector's phone, offline since 14 Nov, later uploads a
// photo_added that occurred on 14 Nov 17:00. The photo is appended, the
// status stays closed, and there is no conflict: photo events commute.
func TestHazardScenario1_LateEvidenceAfterClosing(t *testing.T) {
	evs := append(lifecycle(),
		hz{"71a", "2024-11-15T09:30:00+08:00", 2, e("closed", "office_reviewer", "2024-11-15T09:30:00+08:00", withNote("消号。"))},
		hz{"720", "2024-11-16T08:02:00+08:00", 1, e("photo_added", "inspector", "2024-11-14T17:00:00+08:00", withPhotos("p809"))},
	)
	s := syncproto.FoldHazard(hazardRecord(t, "medium", evs...), at("2024-11-16T09:00:00+08:00"))
	if s.Status != syncproto.HazardClosed || s.NeedsReview {
		t.Fatalf("status=%s needs_review=%v, want closed without review", s.Status, s.NeedsReview)
	}
	last := s.Events[len(s.Events)-1]
	if last.Type != "photo_added" || last.Conflict != syncproto.ConflictNone || last.Applied == nil || *last.Applied != (syncproto.Transition{From: "closed", To: "closed"}) {
		t.Fatalf("photo event outcome %+v", last)
	}
	if p := s.Photos[len(s.Photos)-1]; p.ID != "p809" || p.EventID != eventID("720") || p.Phase != "evidence" {
		t.Fatalf("photo %+v", p)
	}
	if s.ClosedAt == nil || !s.ClosedAt.Equal(at("2024-11-15T09:30:00+08:00")) {
		t.Fatalf("closed_at=%v", s.ClosedAt)
	}
}

// TestHazardScenario2_FieldObservationContradictsOffice is docs/domain.md
// §7.12 scenario 2: a low-severity hazard is closed by the office on the
// school's photos (document review, no inspector verification). The
// inspector, offline, recorded verification_failed. If it happened after
// the closing evidence, the hazard is reopened to rectifying with
// needs_review; otherwise it is kept as evidence and still flagged.
//
// The closing evidence of a document review is the school's report (its
// photos were taken then), not the office's click: an inspector who found
// the hazard between the school's report and the office's review has seen
// that the photos were wrong, so that observation reopens too.
func TestHazardScenario2_FieldObservationContradictsOffice(t *testing.T) {
	base := []hz{
		{"711", "2024-10-15T18:42:00+08:00", 1, e("reported", "inspector", "2024-10-15T08:21:00+08:00", withPhotos("p1"), withPayload(syncproto.EventPayload{Severity: "low"}))},
		{"712", "2024-10-16T09:10:00+08:00", 2, e("confirmed", "office_reviewer", "2024-10-16T09:10:00+08:00")},
		{"713", "2024-10-16T15:30:00+08:00", 2, e("notice_issued", "office_reviewer", "2024-10-16T15:30:00+08:00",
			withPayload(syncproto.EventPayload{Deadline: "2024-10-31", Responsible: responsible}))},
		{"714", "2024-10-17T08:45:00+08:00", 3, e("acknowledged", "school_liaison", "2024-10-17T08:45:00+08:00")},
		{"715", "2024-11-12T11:05:00+08:00", 3, e("rectification_reported", "school_liaison", "2024-11-12T11:05:00+08:00", withPhotos("p806"))},
		{"716", "2024-11-14T10:00:00+08:00", 2, e("verification_passed", "office_reviewer", "2024-11-14T10:00:00+08:00", withNote("根据学校整改照片书面复核通过。"))},
		{"717", "2024-11-15T09:30:00+08:00", 2, e("closed", "office_reviewer", "2024-11-15T09:30:00+08:00")},
	}
	tests := []struct {
		name     string
		occurred string
		status   string
		conflict string
	}{
		{"AfterClosing", "2024-11-16T09:00:00+08:00", syncproto.HazardRectifying, syncproto.ConflictStaleAccepted},
		{"AfterReportBeforeReview", "2024-11-13T15:00:00+08:00", syncproto.HazardRectifying, syncproto.ConflictStaleAccepted},
		{"BeforeSchoolReport", "2024-11-11T15:00:00+08:00", syncproto.HazardClosed, syncproto.ConflictKeptAsEvidence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := append(slices.Clone(base), hz{"720", "2024-11-18T19:00:00+08:00", 1,
				e("verification_failed", "inspector", tt.occurred, withPhotos("p900"), withNote("随访复查：仍未整改。"),
					func(e *syncproto.Event) { e.VisitID = "0192b000-0000-7000-8000-000000000404" })})
			r := hazardRecord(t, "", evs...)
			s := syncproto.FoldHazard(r, at("2024-11-18T20:00:00+08:00"))
			last := s.Events[len(s.Events)-1]
			if s.Status != tt.status || last.Conflict != tt.conflict || !s.NeedsReview || !slices.Contains(s.ReviewEvents, eventID("720")) {
				t.Fatalf("status=%s conflict=%s needs_review=%v review=%v (%s)", s.Status, last.Conflict, s.NeedsReview, s.ReviewEvents, last.Reason)
			}
			if !s.EvidenceAt.Equal(at("2024-11-12T11:05:00+08:00")) {
				t.Fatalf("evidence_at=%v, want the school's report", s.EvidenceAt)
			}
			if tt.status == syncproto.HazardRectifying {
				if s.ClosedAt != nil || s.ClosedBy != "" || *last.Applied != (syncproto.Transition{From: "closed", To: "rectifying"}) {
					t.Fatalf("reopened but closed_at=%v by %q, transition %+v", s.ClosedAt, s.ClosedBy, last.Applied)
				}
				// The old deadline has passed: reopened, it is overdue.
				if !s.Overdue {
					t.Fatal("reopened hazard with a past deadline is not overdue")
				}
				// The office resolves the review.
				r2 := r.Clone()
				note := hazardRecord(t, "", hz{"721", "2024-11-19T09:00:00+08:00", 2, e("note_added", "office_reviewer", "2024-11-19T09:00:00+08:00",
					withNote("已与学校核实，重新整改。"), withPayload(syncproto.EventPayload{ReviewResolved: true}))})
				r2.Items["events"] = append(r2.Items["events"], note.Items["events"]...)
				if s2 := syncproto.FoldHazard(r2, t0); s2.NeedsReview || len(s2.ReviewEvents) != 0 || s2.Status != syncproto.HazardRectifying {
					t.Fatalf("after the office's note: review=%v %v status=%s", s2.NeedsReview, s2.ReviewEvents, s2.Status)
				}
			}
		})
	}
	// After an inspector's own verification on site, the evidence is that
	// verification: an observation an hour before it does not reopen.
	evs := append(lifecycle(),
		hz{"71a", "2024-11-15T09:30:00+08:00", 2, e("closed", "office_reviewer", "2024-11-15T09:30:00+08:00")},
		hz{"720", "2024-11-16T08:00:00+08:00", 1, e("verification_failed", "inspector", "2024-11-14T07:40:00+08:00", withPhotos("p9"))})
	if s := syncproto.FoldHazard(hazardRecord(t, "medium", evs...), t0); s.Status != syncproto.HazardClosed || !s.NeedsReview {
		t.Fatalf("stale observation: status=%s review=%v", s.Status, s.NeedsReview)
	}
	// On a verified (not yet closed) hazard the rule is the same.
	evs = append(lifecycle(), hz{"720", "2024-11-16T08:00:00+08:00", 1, e("verification_failed", "inspector", "2024-11-14T16:00:00+08:00", withPhotos("p9"))})
	if s := syncproto.FoldHazard(hazardRecord(t, "medium", evs...), t0); s.Status != syncproto.HazardRectifying || !s.NeedsReview {
		t.Fatalf("observation on verified: status=%s review=%v", s.Status, s.NeedsReview)
	}
}

// TestFoldHazard_Rules checks single events against a state reached by a
// valid prefix: invalid events are kept as evidence and set needs_review,
// valid ones move the state.
func TestFoldHazard_Rules(t *testing.T) {
	life := lifecycle()
	upTo := func(n int) []hz { return slices.Clone(life[:n]) }
	closedBy := func(role string) []hz {
		return append(upTo(9), hz{"7f0", "2024-11-15T09:30:00+08:00", 2, e("closed", role, "2024-11-15T09:30:00+08:00")})
	}
	ev := func(typ, role, occurred string, mods ...func(*syncproto.Event)) hz {
		return hz{"7ff", "2024-12-01T09:00:00+08:00", 2, e(typ, role, occurred, mods...)}
	}
	const day = "2024-11-20T09:00:00+08:00"
	reclassHigh := hz{"7e9", "2024-11-14T21:00:00+08:00", 2, e("reclassified", "office_head", "2024-11-14T21:00:00+08:00",
		withPayload(syncproto.EventPayload{Severity: "high"}))}
	tests := []struct {
		name     string
		severity string
		prefix   []hz
		event    hz
		status   string
		conflict string
	}{
		{"ReportedFirst", "", nil, ev("reported", "inspector", day), "reported", syncproto.ConflictNone},
		{"ReportedBySchool", "", nil, ev("reported", "school_liaison", day), "reported", syncproto.ConflictNone},
		// A hazard filled in with the report form has no reported event:
		// the record is the report.
		{"ConfirmedWithoutReportedEvent", "", nil, ev("confirmed", "office_reviewer", day), "confirmed", syncproto.ConflictNone},
		{"ReportedTwice", "", upTo(1), ev("reported", "inspector", day), "reported", syncproto.ConflictKeptAsEvidence},
		{"PhotoWithoutReportedEvent", "", nil, ev("photo_added", "inspector", day, withPhotos("x")), "reported", syncproto.ConflictNone},
		{"UnknownType", "", upTo(1), ev("teleported", "inspector", day), "reported", syncproto.ConflictKeptAsEvidence},
		{"UnknownRole", "", nil, ev("reported", "janitor", day), "", syncproto.ConflictKeptAsEvidence},
		{"FixedOnSite", "", upTo(1), ev("fixed_on_site", "inspector", day, withPhotos("x")), "pending_verification", syncproto.ConflictNone},
		{"FixedOnSiteNoPhoto", "", upTo(1), ev("fixed_on_site", "inspector", day), "reported", syncproto.ConflictKeptAsEvidence},
		{"FixedOnSiteByOffice", "", upTo(1), ev("fixed_on_site", "office_reviewer", day, withPhotos("x")), "reported", syncproto.ConflictKeptAsEvidence},
		{"ConfirmByInspector", "", upTo(1), ev("confirmed", "inspector", day), "reported", syncproto.ConflictKeptAsEvidence},
		{"ConfirmBadSeverity", "", upTo(1), ev("confirmed", "office_reviewer", day, withPayload(syncproto.EventPayload{Severity: "urgent"})), "reported", syncproto.ConflictKeptAsEvidence},
		{"Rejected", "", upTo(1), ev("rejected", "office_reviewer", day), "rejected", syncproto.ConflictNone},
		{"MarkedDuplicate", "", upTo(1), ev("marked_duplicate", "office_head", day), "duplicate", syncproto.ConflictNone},
		{"Cancelled", "", upTo(1), ev("cancelled", "office_reviewer", day), "cancelled", syncproto.ConflictNone},
		{"CancelledAfterConfirm", "", upTo(2), ev("cancelled", "office_reviewer", day), "confirmed", syncproto.ConflictKeptAsEvidence},
		{"NoticeWithoutDeadline", "", upTo(2), ev("notice_issued", "office_reviewer", day,
			withPayload(syncproto.EventPayload{Responsible: responsible})), "confirmed", syncproto.ConflictKeptAsEvidence},
		{"NoticeDeadlineNotAfterIssue", "", upTo(2), ev("notice_issued", "office_reviewer", day,
			withPayload(syncproto.EventPayload{Deadline: "2024-11-20", Responsible: responsible})), "confirmed", syncproto.ConflictKeptAsEvidence},
		{"NoticeBadDate", "", upTo(2), ev("notice_issued", "office_reviewer", day,
			withPayload(syncproto.EventPayload{Deadline: "2024-11-31", Responsible: responsible})), "confirmed", syncproto.ConflictKeptAsEvidence},
		{"NoticeWithoutResponsible", "", upTo(2), ev("notice_issued", "office_reviewer", day,
			withPayload(syncproto.EventPayload{Deadline: "2024-12-20", Responsible: json.RawMessage(`{}`)})), "confirmed", syncproto.ConflictKeptAsEvidence},
		{"NoticeOK", "", upTo(2), ev("notice_issued", "office_reviewer", day,
			withPayload(syncproto.EventPayload{Deadline: "2024-11-21", Responsible: responsible})), "notice_issued", syncproto.ConflictNone},
		{"AcknowledgedInReported", "", upTo(1), ev("acknowledged", "school_liaison", day), "reported", syncproto.ConflictKeptAsEvidence},
		{"AcknowledgedByOffice", "", upTo(3), ev("acknowledged", "office_reviewer", day), "notice_issued", syncproto.ConflictKeptAsEvidence},
		{"AcknowledgedByInspector", "", upTo(3), ev("acknowledged", "inspector", day), "rectifying", syncproto.ConflictNone},
		{"ReportWithoutEvidence", "", upTo(4), ev("rectification_reported", "school_liaison", day), "rectifying", syncproto.ConflictKeptAsEvidence},
		{"SecondFailedVerification", "", upTo(6), ev("verification_failed", "inspector", day, withPhotos("x")), "rectifying", syncproto.ConflictKeptAsEvidence},
		{"PassedWithoutEvidence", "", upTo(8), ev("verification_passed", "inspector", day), "pending_verification", syncproto.ConflictKeptAsEvidence},
		{"PassedByOfficeMedium", "", upTo(8), ev("verification_passed", "office_reviewer", day, withNote("书面复核")), "pending_verification", syncproto.ConflictKeptAsEvidence},
		{"PassedBySchool", "", upTo(8), ev("verification_passed", "school_liaison", day, withPhotos("x")), "pending_verification", syncproto.ConflictKeptAsEvidence},
		{"FailedByOffice", "", upTo(8), ev("verification_failed", "office_reviewer", day), "rectifying", syncproto.ConflictNone},
		{"FailedNewDeadline", "", upTo(8), ev("verification_failed", "inspector", day, withPayload(syncproto.EventPayload{Deadline: "2024-12-31"})), "rectifying", syncproto.ConflictNone},
		{"EscalatedFromRectifying", "", upTo(4), ev("escalated", "office_reviewer", day, withPayload(syncproto.EventPayload{EscalatedTo: "县教育局计财股"})), "escalated", syncproto.ConflictNone},
		{"EscalatedFromPending", "", upTo(5), ev("escalated", "office_reviewer", day), "pending_verification", syncproto.ConflictKeptAsEvidence},
		{"DeadlineChangedEscalated", "", append(upTo(4), hz{"7e0", "2024-10-20T09:00:00+08:00", 2, e("escalated", "office_reviewer", "2024-10-20T09:00:00+08:00")}),
			ev("deadline_changed", "office_reviewer", day, withPayload(syncproto.EventPayload{Deadline: "2024-12-31"})), "rectifying", syncproto.ConflictNone},
		{"DeadlineChangedNoDate", "", upTo(4), ev("deadline_changed", "office_reviewer", day), "rectifying", syncproto.ConflictKeptAsEvidence},
		{"DeadlineChangedClosed", "", closedBy("office_reviewer"), ev("deadline_changed", "office_reviewer", day,
			withPayload(syncproto.EventPayload{Deadline: "2024-12-31"})), "closed", syncproto.ConflictKeptAsEvidence},
		{"ReclassifiedBySchool", "", upTo(4), ev("reclassified", "school_liaison", day, withPayload(syncproto.EventPayload{Severity: "low"})), "rectifying", syncproto.ConflictKeptAsEvidence},
		{"ReclassifiedNoSeverity", "", upTo(4), ev("reclassified", "office_reviewer", day), "rectifying", syncproto.ConflictKeptAsEvidence},
		{"ClosedFromPending", "", upTo(8), ev("closed", "office_reviewer", day), "pending_verification", syncproto.ConflictKeptAsEvidence},
		{"ClosedByInspector", "", upTo(9), ev("closed", "inspector", day), "verified", syncproto.ConflictKeptAsEvidence},
		{"ClosedHighByReviewer", "", append(upTo(9), reclassHigh), ev("closed", "office_reviewer", day), "verified", syncproto.ConflictKeptAsEvidence},
		{"ClosedHighByHead", "", append(upTo(9), reclassHigh), ev("closed", "office_head", day), "closed", syncproto.ConflictNone},
		{"SeverityFromField", "high", upTo(1), ev("fixed_on_site", "inspector", day, withPhotos("x")), "pending_verification", syncproto.ConflictNone},
		{"ClosedTwice", "", closedBy("office_reviewer"), ev("closed", "office_reviewer", day), "closed", syncproto.ConflictKeptAsEvidence},
		{"ReopenedByOffice", "", closedBy("office_reviewer"), ev("reopened", "office_reviewer", day), "rectifying", syncproto.ConflictNone},
		{"ReopenedByInspector", "", closedBy("office_reviewer"), ev("reopened", "inspector", day), "closed", syncproto.ConflictKeptAsEvidence},
		{"NoteAfterClosing", "", closedBy("office_reviewer"), ev("note_added", "school_liaison", day, withNote("已建立月检制度")), "closed", syncproto.ConflictNone},
		{"FailedByOfficeOnClosed", "", closedBy("office_reviewer"), ev("verification_failed", "office_reviewer", day), "closed", syncproto.ConflictKeptAsEvidence},
		{"AckOnRejected", "", append(upTo(1), hz{"7e0", "2024-10-16T09:00:00+08:00", 2, e("rejected", "office_reviewer", "2024-10-16T09:00:00+08:00")}),
			ev("acknowledged", "school_liaison", day), "rejected", syncproto.ConflictKeptAsEvidence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := syncproto.FoldHazard(hazardRecord(t, tt.severity, append(tt.prefix, tt.event)...), t0)
			last := s.Events[len(s.Events)-1]
			if s.Status != tt.status || last.Conflict != tt.conflict {
				t.Fatalf("status=%q conflict=%s (%s); want %q %s", s.Status, last.Conflict, last.Reason, tt.status, tt.conflict)
			}
			for _, o := range s.Events[:len(s.Events)-1] {
				if o.Conflict != syncproto.ConflictNone {
					t.Fatalf("prefix event %s: %s (%s)", o.ID, o.Conflict, o.Reason)
				}
			}
			kept := tt.conflict == syncproto.ConflictKeptAsEvidence
			if s.NeedsReview != kept || (last.Applied == nil) != kept || (kept && last.Reason == "") {
				t.Fatalf("needs_review=%v applied=%v reason=%q for %s", s.NeedsReview, last.Applied, last.Reason, tt.conflict)
			}
		})
	}
}

func TestFoldHazard_Malformed(t *testing.T) {
	r := hazardRecord(t, "", lifecycle()[:1]...)
	for name, data := range map[string]string{
		"NotObject":   `[1,2]`,
		"NoType":      `{"occurred_at":"2024-11-20T09:00:00+08:00"}`,
		"NoTime":      `{"type":"note_added"}`,
		"BadTime":     `{"occurred_at":"yesterday","type":"note_added"}`,
		"BadPayload":  `{"occurred_at":"2024-11-20T09:00:00+08:00","payload":"x","type":"note_added"}`,
		"WrongTypeOf": `{"occurred_at":"2024-11-20T09:00:00+08:00","type":7}`,
	} {
		t.Run(name, func(t *testing.T) {
			m := r.Clone()
			m.Items["events"] = append(m.Items["events"], syncproto.Item{ID: "zz", Data: js(data), HLC: syncproto.HLC{Wall: 1, Replica: rid(1)}})
			s := syncproto.FoldHazard(m, t0)
			last := s.Events[len(s.Events)-1]
			if s.Status != "reported" || last.Conflict != syncproto.ConflictKeptAsEvidence || !s.NeedsReview || last.ID != "zz" {
				t.Fatalf("status=%s outcome=%+v", s.Status, last)
			}
		})
	}
	if s := syncproto.FoldHazard(nil, t0); s.Status != "" || s.Events == nil {
		t.Fatalf("nil record: %+v", s)
	}
}

// TestHazardOverdue: overdue is derived from server time only, in China's
// local date, and only while the school has to act.
func TestHazardOverdue(t *testing.T) {
	life := lifecycle()
	notice := hazardRecord(t, "", life[:3]...) // deadline 2024-10-31
	rect := hazardRecord(t, "", life[:4]...)
	pending := hazardRecord(t, "", life[:5]...)
	escalated := hazardRecord(t, "", append(slices.Clone(life[:4]), hz{"7e0", "2024-10-20T09:00:00+08:00", 2, e("escalated", "office_reviewer", "2024-10-20T09:00:00+08:00")})...)
	tests := []struct {
		name string
		r    *syncproto.Record
		now  time.Time
		want bool
	}{
		{"OnDeadlineDay", notice, at("2024-10-31T23:59:59+08:00"), false},
		{"DayAfterInChina", notice, at("2024-10-31T16:00:00Z"), true},
		{"StillDeadlineDayInChina", notice, at("2024-10-31T15:59:59Z"), false},
		{"Rectifying", rect, at("2024-11-01T08:00:00+08:00"), true},
		{"Escalated", escalated, at("2024-11-01T08:00:00+08:00"), true},
		{"PendingVerification", pending, at("2024-11-20T08:00:00+08:00"), false},
		{"LongBefore", rect, at("2024-10-20T08:00:00+08:00"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := syncproto.FoldHazard(tt.r, tt.now)
			if s.Overdue != tt.want || s.OverdueAt(tt.now) != tt.want {
				t.Fatalf("overdue=%v at %v (status %s, deadline %s), want %v", s.Overdue, tt.now, s.Status, s.Deadline, tt.want)
			}
		})
	}
	// Device times play no part: an event whose device clock is a year
	// ahead does not make the hazard overdue.
	skew := hazardRecord(t, "", append(slices.Clone(life[:3]),
		hz{"7e1", "2024-10-17T08:45:00+08:00", 3, e("acknowledged", "school_liaison", "2025-10-17T08:45:00+08:00")})...)
	if s := syncproto.FoldHazard(skew, at("2024-10-20T08:00:00+08:00")); s.Overdue || s.Status != "rectifying" {
		t.Fatalf("skewed device time: overdue=%v status=%s", s.Overdue, s.Status)
	}
}

func TestTransitionJSON(t *testing.T) {
	for _, tr := range []syncproto.Transition{{From: "", To: "reported"}, {From: "verified", To: "closed"}} {
		b, err := json.Marshal(tr)
		if err != nil {
			t.Fatal(err)
		}
		var back syncproto.Transition
		if err := json.Unmarshal(b, &back); err != nil || back != tr {
			t.Fatalf("%+v → %s → %+v", tr, b, back)
		}
	}
	b, _ := json.Marshal(syncproto.Transition{To: "reported"})
	if string(b) != `{"from":null,"to":"reported"}` {
		t.Fatalf("initial transition=%s", b)
	}
}

// task builds a follow-up task record (sample S3) assigned to the
// inspector, with the given events.
func task(t testing.TB, events ...hz) *syncproto.Record {
	t.Helper()
	r := &syncproto.Record{ID: uuid.MustParse("0192b000-0000-7000-8000-000000000b01"), Kind: "follow_up_task", SchoolID: schoolID, CreatedAt: t0}
	r, _ = syncproto.Set(r, "assignee_id", str(inspector), writer(2, "office", t0))
	h := hazardRecord(t, "", events...)
	r.Items = h.Items
	return r
}

func done(occurred, stamp string) hz {
	return hz{"bd1", stamp, 1, e("done", "inspector", occurred, withPayload(syncproto.EventPayload{Outcome: "not_resolved"}),
		func(e *syncproto.Event) { e.VisitID = "0192b000-0000-7000-8000-000000000402" })}
}

// TestTaskScenario3_CancelledTaskCompletedOffline is docs/domain.md §7.12
// scenario 3: the office cancels task …0b01 on 4 Nov; the inspector
// completes it on 5 Nov offline. The visit is accepted and the task is
// done with the flag done_after_cancel.
func TestTaskScenario3_CancelledTaskCompletedOffline(t *testing.T) {
	cancel := hz{"bc1", "2024-11-04T10:00:00+08:00", 2, e("cancelled", "office_reviewer", "2024-11-04T10:00:00+08:00")}
	r := task(t, cancel, done("2024-11-05T09:12:00+08:00", "2024-11-06T19:03:00+08:00"))
	s := syncproto.FoldTask(r)
	if s.Status != syncproto.TaskDone || !slices.Equal(s.Flags, []string{syncproto.FlagDoneAfterCancel}) || !s.NeedsReview {
		t.Fatalf("task=%+v", s)
	}
	if s.DoneVisitID != "0192b000-0000-7000-8000-000000000402" || s.Outcome != "not_resolved" {
		t.Fatalf("done visit=%s outcome=%s", s.DoneVisitID, s.Outcome)
	}
	if last := s.Events[1]; last.Conflict != syncproto.ConflictStaleAccepted || *last.Applied != (syncproto.Transition{From: "cancelled", To: "done"}) {
		t.Fatalf("done outcome %+v", last)
	}
	// On the phone, before sync, the done event is local and comes after
	// the pulled cancel: the preview is the same.
	local := task(t, cancel, done("2024-11-05T09:12:00+08:00", ""))
	if s := syncproto.FoldTask(local); s.Status != syncproto.TaskDone || !slices.Contains(s.Flags, syncproto.FlagDoneAfterCancel) {
		t.Fatalf("phone preview=%+v", s)
	}
	// The visit it was done in is a record of its own and is applied.
	visit := &syncproto.Record{ID: uuid.MustParse("0192b000-0000-7000-8000-000000000402"), Kind: "visit", SchoolID: schoolID, CreatedAt: t0}
	visit, _ = syncproto.Set(visit, "summary", str("随访复查"), writer(1, "inspector", t0))
	if d, err := syncproto.Decide(nil, visit, syncproto.Vector{}); err != nil || d.Status != syncproto.StatusApplied {
		t.Fatalf("visit: %+v %v", d, err)
	}
}

func TestFoldTask_Rules(t *testing.T) {
	reassign := hz{"br1", "2024-11-03T10:00:00+08:00", 2, e("reassigned", "office_reviewer", "2024-11-03T10:00:00+08:00",
		withPayload(syncproto.EventPayload{AssigneeID: "0192b000-0000-7000-8000-000000000299"}))}
	cancel := hz{"bc1", "2024-11-07T10:00:00+08:00", 2, e("cancelled", "office_reviewer", "2024-11-07T10:00:00+08:00")}
	reopen := hz{"bo1", "2024-11-08T10:00:00+08:00", 2, e("reopened", "office_reviewer", "2024-11-08T10:00:00+08:00")}
	tests := []struct {
		name   string
		events []hz
		status string
		flags  []string
		review bool
	}{
		{"Open", nil, "open", nil, false},
		{"Done", []hz{done("2024-11-05T09:12:00+08:00", "2024-11-06T19:03:00+08:00")}, "done", nil, false},
		{"ReassignedWhileOffline", []hz{reassign, done("2024-11-05T09:12:00+08:00", "2024-11-06T19:03:00+08:00")}, "done", []string{"reassigned_while_offline"}, true},
		{"CancelAfterDone", []hz{done("2024-11-05T09:12:00+08:00", "2024-11-06T19:03:00+08:00"), cancel}, "done", nil, true},
		{"ReopenAfterDone", []hz{done("2024-11-05T09:12:00+08:00", "2024-11-06T19:03:00+08:00"), reopen}, "open", nil, false},
		{"CancelledByInspector", []hz{{"bc2", "2024-11-04T10:00:00+08:00", 1, e("cancelled", "inspector", "2024-11-04T10:00:00+08:00")}}, "open", nil, true},
		{"DoneWithoutVisit", []hz{{"bd2", "2024-11-06T19:03:00+08:00", 1, e("done", "inspector", "2024-11-05T09:12:00+08:00",
			withPayload(syncproto.EventPayload{Outcome: "resolved"}))}}, "open", nil, true},
		{"Unknown", []hz{{"bx1", "2024-11-06T19:03:00+08:00", 1, e("archived", "office_reviewer", "2024-11-05T09:12:00+08:00")}}, "open", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := syncproto.FoldTask(task(t, tt.events...))
			if s.Status != tt.status || !slices.Equal(s.Flags, tt.flags) || s.NeedsReview != tt.review {
				t.Fatalf("task=%+v", s)
			}
		})
	}
	if s := syncproto.FoldTask(nil); s.Status != syncproto.TaskOpen {
		t.Fatal("nil task")
	}
}

// FuzzFoldHazard builds an event log from the fuzz input over a small
// alphabet of event types, roles, times and stamps, and checks that the
// fold never panics, is deterministic under any permutation of the items,
// and keeps its invariants: one outcome per event, every kept event flags
// review, and an applied event's transition starts where the previous one
// ended.
func FuzzFoldHazard(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2})
	f.Add([]byte{0, 0, 1, 0, 3, 2, 2, 1, 5, 2, 3, 2, 6, 3, 4, 3, 7, 3, 5, 4, 9, 0, 6, 5, 10, 2, 7, 6, 15, 0, 8, 0})
	f.Add([]byte("reported confirmed notice acknowledged rectification verification closed"))
	types := []string{"reported", "confirmed", "photo_added", "notice_issued", "acknowledged", "rectification_reported",
		"verification_failed", "verification_passed", "deadline_changed", "closed", "reopened", "escalated",
		"fixed_on_site", "rejected", "note_added", "reclassified", "cancelled", "marked_duplicate", "bogus"}
	roles := []string{"inspector", "office_reviewer", "office_head", "school_liaison", "zone_leader", ""}
	severities := []string{"", "low", "medium", "high", "x"}
	deadlines := []string{"", "2024-11-01", "2024-11-15", "2024-13-01", "2025-01-01"}
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		r := &syncproto.Record{ID: recID, Kind: "hazard"}
		r.Items = map[string][]syncproto.Item{}
		n := next() % 24
		for i := range n {
			typ := types[next()%len(types)]
			role := roles[next()%len(roles)]
			occ := t0.Add(time.Duration(next()%32) * 12 * time.Hour)
			ev := syncproto.Event{Type: typ, ActorRole: role, ActorID: role, OccurredAt: occ}
			flags := next()
			if flags&1 != 0 {
				ev.PhotoIDs = []string{"p"}
			}
			if flags&2 != 0 {
				ev.Note = "n"
			}
			if flags&4 != 0 {
				ev.Payload = &syncproto.EventPayload{Severity: severities[next()%len(severities)], Deadline: deadlines[next()%len(deadlines)],
					Responsible: responsible, ReviewResolved: flags&8 != 0}
			}
			d, err := ev.Data()
			if err != nil {
				t.Fatal(err)
			}
			if flags&16 != 0 {
				d = js(`{"type":` + strings.Repeat("[", next()%3) + `}`)
			}
			it := syncproto.Item{ID: eventID(string(rune('a'+i%26)) + string(rune('a'+next()%26))), Data: d,
				HLC: syncproto.HLC{Wall: int64(next() % 8), Replica: rid(next() % 3)}}
			if s := next() % 6; s > 0 {
				st := t0.Add(time.Duration(s) * time.Hour)
				it.ServerReceivedAt = &st
			}
			r.Items["events"] = append(r.Items["events"], it)
		}
		// Normalize through Merge (union by id), as every stored record is.
		r, err := syncproto.Merge(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := t0.Add(time.Duration(next()) * 24 * time.Hour)
		s := syncproto.FoldHazard(r, now)
		want := mustJSON(t, s)
		items := r.Items["events"]
		if len(s.Events) != len(items) {
			t.Fatalf("%d outcomes for %d events", len(s.Events), len(items))
		}
		// Permutations: reversed, and rotated by one.
		for _, perm := range [][]syncproto.Item{reversed(items), rotated(items)} {
			p := r.Clone()
			p.Items = map[string][]syncproto.Item{"events": perm}
			if got := mustJSON(t, syncproto.FoldHazard(p, now)); string(got) != string(want) {
				t.Fatalf("fold depends on item order:\n%s\n%s", got, want)
			}
		}
		// The record is the report when its log holds no reported event.
		status := syncproto.HazardReported
		for _, it := range items {
			var e syncproto.Event
			if json.Unmarshal(it.Data, &e) == nil && e.Type == "reported" && !e.OccurredAt.IsZero() {
				status = ""
			}
		}
		review := false
		for _, o := range s.Events {
			switch o.Conflict {
			case syncproto.ConflictKeptAsEvidence:
				if o.Applied != nil {
					t.Fatalf("kept event %s has a transition", o.ID)
				}
				review = true
			case syncproto.ConflictNone, syncproto.ConflictStaleAccepted:
				if o.Applied == nil || o.Applied.From != status {
					t.Fatalf("event %s transition %+v does not start at %q", o.ID, o.Applied, status)
				}
				status = o.Applied.To
				if o.Conflict == syncproto.ConflictStaleAccepted {
					review = true
				}
			default:
				t.Fatalf("conflict %q", o.Conflict)
			}
			if o.Type == "note_added" && o.Conflict == syncproto.ConflictNone && review && !s.NeedsReview {
				review = false // possibly resolved by this note
			}
		}
		if status != s.Status {
			t.Fatalf("status %q, transitions end at %q", s.Status, status)
		}
		if review && !s.NeedsReview {
			t.Fatalf("kept events but needs_review is false")
		}
		if s.Overdue != s.OverdueAt(now) {
			t.Fatal("Overdue differs from OverdueAt")
		}
	})
}

func reversed(s []syncproto.Item) []syncproto.Item {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

func rotated(s []syncproto.Item) []syncproto.Item {
	if len(s) == 0 {
		return nil
	}
	return append(slices.Clone(s[1:]), s[0])
}

func TestFoldHazard_Severity(t *testing.T) {
	life := lifecycle()
	reported := func(sev string) hz {
		return hz{"711", "2024-10-15T18:42:00+08:00", 1, e("reported", "inspector", "2024-10-15T08:21:00+08:00",
			withPayload(syncproto.EventPayload{Severity: sev}))}
	}
	reclass := hz{"7e9", "2024-10-18T09:00:00+08:00", 2, e("reclassified", "office_head", "2024-10-18T09:00:00+08:00",
		withPayload(syncproto.EventPayload{Severity: "high"}))}
	tests := []struct {
		name, field string
		events      []hz
		want        string
	}{
		{"None", "", life[:1], ""},
		{"FromField", "high", life[:1], "high"},
		{"FromReported", "high", []hz{reported("low")}, "low"},
		{"Confirmed", "low", life[:2], "medium"},
		{"Reclassified", "low", append(slices.Clone(life[:4]), reclass), "high"},
		{"BadFieldIgnored", "urgent", life[:1], ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := syncproto.FoldHazard(hazardRecord(t, tt.field, tt.events...), t0).Severity; got != tt.want {
				t.Fatalf("severity=%q, want %q", got, tt.want)
			}
		})
	}
}
