package mobiletest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/mobile"
	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// Phone is a simulated phone: an engine on a file, reached through a
// Faulty transport, that can be killed and reopened.
type Phone struct {
	Name   string
	Path   string
	Faulty *Faulty
	Opts   mobile.Options
	E      *mobile.Engine
}

// OpenPhone opens a phone's engine on path with opts, its transport
// wrapped in a Faulty (opts.Wrap is replaced).
func OpenPhone(tb testing.TB, name, path string, opts mobile.Options) *Phone {
	tb.Helper()
	p := &Phone{Name: name, Path: path, Faulty: &Faulty{}, Opts: opts}
	p.Opts.Wrap = func(t mobile.Transport) mobile.Transport { p.Faulty.T = t; return p.Faulty }
	p.Open(tb)
	tb.Cleanup(func() { p.E.Close() })
	return p
}

// Open opens the engine on the phone's file with its options, after a
// Close (to copy or replace the file, or to change the options).
func (p *Phone) Open(tb testing.TB) {
	tb.Helper()
	e, err := mobile.Open(p.Path, p.Opts)
	if err != nil {
		tb.Fatal(err)
	}
	p.E = e
}

// Kill closes the engine as a dying process leaves it (whatever was not
// committed is gone) and opens the file again.
func (p *Phone) Kill(tb testing.TB) {
	tb.Helper()
	p.E.Close()
	p.Open(tb)
}

// Sync syncs without faults and fails the test on error.
func (p *Phone) Sync(tb testing.TB) mobile.SyncReport {
	tb.Helper()
	p.Faulty.Fault = nil
	rep, err := p.E.Sync(context.Background(), nil)
	if err != nil {
		tb.Fatalf("%s: sync: %v", p.Name, err)
	}
	return rep
}

// Edit is a field version somebody wrote, to be found at the end.
type Edit struct {
	Record uuid.UUID
	Field  string
	V      syncproto.FieldVersion
}

// Sim drives phones that edit shared hazards offline, append events,
// attach photos, resolve conflicts and sync in random order, one sync in
// three killed at a random call (before the call reaches the server or
// after it acted), and records every edit for the final checks. It works
// over any server the phones reach.
//
// A run replays from its seed alone: the moves, the phones' clock (Clock,
// which only the simulation moves), every id the phones make (IDs) and the
// photos are drawn from it, and nothing depends on the order of a map.
// Give a server of the test the same clock and ids where it takes them,
// and the whole run is the same every time: Trace then reads the same,
// byte for byte.
type Sim struct {
	TB     testing.TB
	Rng    *rand.Rand
	Clock  *Clock
	IDs    *IDs
	Phones []*Phone
	// School is the school of the hazards the phones create; every phone
	// must be allowed to sync it.
	School string
	// OfficeEdit, when set, makes a concurrent office edit of a record on
	// the server and returns it.
	OfficeEdit func(i int) (Edit, bool)

	Edits []Edit
	Items map[uuid.UUID][]string // record → event ids appended
	dir   string
	photo uint64
	trace strings.Builder
}

// SimStart is where a simulation's clock starts: a Tuesday morning in
// Beijing, in the past of any real server's clock (a phone clock ahead of
// the server's would be flagged).
var SimStart = time.Date(2026, 11, 3, 1, 0, 0, 0, time.UTC)

// NewSim returns a simulation seeded by seed, without phones (OpenPhone
// adds them).
func NewSim(tb testing.TB, seed uint64, school string) *Sim {
	clock := NewClock(SimStart)
	return &Sim{TB: tb, Rng: rand.New(rand.NewPCG(seed, 1)), Clock: clock, IDs: NewIDs(seed, clock.Now),
		School: school, Items: map[uuid.UUID][]string{}, dir: tb.TempDir()}
}

// OpenPhone opens a phone of the simulation (see OpenPhone) with the
// simulation's clock and ids, and the built-in forms checked against that
// clock unless opts has a Validator.
func (s *Sim) OpenPhone(name, path string, opts mobile.Options) *Phone {
	opts.Now, opts.NewID = s.Clock.Now, s.IDs.New
	if opts.Validator == nil {
		opts.Validator = mobile.FormsValidator(s.Clock.Now)
	}
	p := OpenPhone(s.TB, name, path, opts)
	s.Phones = append(s.Phones, p)
	return p
}

// Tracef adds a line to the trace.
func (s *Sim) Tracef(format string, args ...any) {
	fmt.Fprintf(&s.trace, format, args...)
	s.trace.WriteByte('\n')
}

// TraceRecords adds records to the trace, in order of id, as canonical
// JSON.
func (s *Sim) TraceRecords(label string, recs map[uuid.UUID]*syncproto.Record) {
	for _, id := range slices.SortedFunc(maps.Keys(recs), compareIDs) {
		b, err := syncproto.Marshal(recs[id])
		if err != nil {
			s.TB.Fatal(err)
		}
		s.Tracef("%s %s", label, b)
	}
}

func compareIDs(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }

// Trace returns what happened so far, a line per move and per sync: the
// same for every run with one seed.
func (s *Sim) Trace() string { return s.trace.String() }

// SimFields are the hazard fields the simulation edits, with values the
// hazard form accepts.
var simFields = map[string][]string{
	"title":         {"灭火器过期", "电线裸露", "楼梯扶手松动", "宿舍门锁损坏"},
	"severity":      {"low", "medium", "high"},
	"description":   {"复查：仍未整改", "已部分整改", "学校称已报修", "现场照片见附件"},
	"location_desc": {"教学楼二层", "食堂后门", "宿舍三楼", "操场东侧"},
}

var simFieldNames = []string{"title", "severity", "description", "location_desc"}

func (s *Sim) track(p *Phone, r *syncproto.Record, field string) {
	for _, v := range r.Fields[field] {
		if v.HLC.Replica == p.E.DeviceID() {
			s.Edits = append(s.Edits, Edit{r.ID, field, v})
			return
		}
	}
	s.TB.Fatalf("%s: own version of %s.%s not found", p.Name, r.ID, field)
}

func (s *Sim) pick(p *Phone) *syncproto.Record {
	recs, err := p.E.Records(mobile.Filter{Kind: "hazard"})
	if err != nil {
		s.TB.Fatal(err)
	}
	if len(recs) == 0 {
		return nil
	}
	return recs[s.Rng.IntN(len(recs))]
}

// NewHazard creates a hazard with a photo on p and tracks its fields.
func (s *Sim) NewHazard(p *Phone, title string) *syncproto.Record {
	id := s.IDs.New()
	att, _, err := p.E.NewAttachment("hazard", id, s.School, s.newPhoto(), "image/jpeg")
	if err != nil {
		s.TB.Fatal(err)
	}
	r, err := p.E.Save(mobile.Draft{ID: id, Kind: "hazard", SchoolID: s.School, FormID: "hazard.report", FormVersion: 1,
		Values: map[string]json.RawMessage{
			"school_id": js(s.School), "source": js("inspector_visit"), "category": js("fire"), "location_desc": js("教学楼二层"),
			"title": js(title), "description": js("灭火器压力不足"), "severity": js("medium"), "photo_ids": js([]string{att.String()}),
		}})
	if err != nil {
		s.TB.Fatalf("%s: new hazard: %v", p.Name, err)
	}
	for _, f := range slices.Sorted(maps.Keys(r.Fields)) {
		s.track(p, r, f)
	}
	s.Tracef("%s hazard %s %q photo %s", p.Name, id, title, att)
	return r
}

func js(v any) json.RawMessage {
	b, err := syncproto.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// newPhoto writes a small synthetic JPEG, different each time.
func (s *Sim) newPhoto() string {
	s.photo++
	b, err := JPEG(s.Rng, 24+s.Rng.IntN(64), 24+s.Rng.IntN(64), 80)
	if err != nil {
		s.TB.Fatal(err)
	}
	path := filepath.Join(s.dir, fmt.Sprintf("photo-%d.jpg", s.photo))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		s.TB.Fatal(err)
	}
	return path
}

// Set writes a field of a record on p and tracks the edit.
func (s *Sim) Set(p *Phone, id uuid.UUID, field, value string) {
	r, err := p.E.Save(mobile.Draft{ID: id, Values: map[string]json.RawMessage{field: js(value)}})
	if err != nil {
		s.TB.Fatalf("%s: edit %s: %v", p.Name, field, err)
	}
	s.track(p, r, field)
	s.Tracef("%s edit %s %s=%s", p.Name, id, field, js(value))
}

// Step makes one random move of a random phone, a few seconds after the
// last one.
func (s *Sim) Step(i int) {
	s.Clock.Advance(time.Duration(1+s.Rng.IntN(5)) * time.Second)
	p := s.Phones[s.Rng.IntN(len(s.Phones))]
	s.Tracef("step %d at %s: %s", i, s.Clock.Now().Format(time.RFC3339), p.Name)
	switch x := s.Rng.IntN(100); {
	case x < 35: // edit a shared hazard
		r := s.pick(p)
		if r == nil {
			return
		}
		f := simFieldNames[s.Rng.IntN(len(simFieldNames))]
		vals := simFields[f]
		v := vals[s.Rng.IntN(len(vals))]
		if f != "severity" {
			v = fmt.Sprintf("%s（%d）", v, i)
		}
		if string(r.Value(f)) == string(js(v)) {
			return // the same value is not written again
		}
		r2, err := p.E.Save(mobile.Draft{ID: r.ID, Values: map[string]json.RawMessage{f: js(v)}})
		if err != nil {
			s.TB.Fatalf("%s: edit: %v", p.Name, err)
		}
		s.track(p, r2, f)
		s.Tracef("%s edit %s %s=%s", p.Name, r.ID, f, js(v))
	case x < 50: // a hazard event (append-only)
		r := s.pick(p)
		if r == nil {
			return
		}
		id, err := p.E.Append(r.ID, "events", js(map[string]any{"type": "note_added", "note": fmt.Sprintf("第 %d 步", i),
			"actor_role": "inspector", "occurred_at": "2026-11-03T09:00:00+08:00", "base_rev": r.Rev}))
		if err != nil {
			s.TB.Fatal(err)
		}
		s.Items[r.ID] = append(s.Items[r.ID], id)
		s.Tracef("%s event %s on %s", p.Name, id, r.ID)
	case x < 57: // a new hazard with its photo
		s.NewHazard(p, fmt.Sprintf("新隐患 %d", i))
	case x < 64: // an evidence photo as a hazard event
		r := s.pick(p)
		if r == nil {
			return
		}
		ref, err := p.E.AttachPhotoTo(r.ID, "events", s.newPhoto(), "image/jpeg")
		if err != nil {
			s.TB.Fatal(err)
		}
		s.Tracef("%s photo %s on %s", p.Name, ref.SHA256, r.ID)
	case x < 68: // resolve a conflict, choosing the winner
		probs, _ := p.E.Problems()
		for _, pr := range probs {
			if pr.Type != mobile.ProblemConflict || pr.Fields[0] == "deleted" {
				continue
			}
			id := uuid.MustParse(pr.RecordID)
			if err := p.E.ResolveConflict(id, pr.Fields[0], pr.Versions[pr.Fields[0]][0].Value); err != nil {
				s.TB.Fatal(err)
			}
			r, _ := p.E.Record(id)
			s.track(p, r, pr.Fields[0])
			s.Tracef("%s resolve %s.%s", p.Name, id, pr.Fields[0])
			break
		}
	case x < 72: // the office edits on the server
		if s.OfficeEdit != nil {
			if e, ok := s.OfficeEdit(i); ok {
				s.Edits = append(s.Edits, e)
				s.Tracef("office edit %s %s=%s", e.Record, e.Field, e.V.Value)
			}
		}
	default: // sync, killed at a random call one time in three
		if s.Rng.IntN(3) == 0 {
			start, k := p.Faulty.Calls(), s.Rng.IntN(12)
			mode := Mode(1 + s.Rng.IntN(2))
			p.Faulty.Fault = func(call int, step string) Mode {
				if call == start+k {
					return mode
				}
				return Pass
			}
			rep, err := p.E.Sync(context.Background(), nil)
			p.Faulty.Fault = nil
			s.traceSync(p, start, rep, err, fmt.Sprintf(" (fault %d at call %d)", mode, start+k))
			if err != nil {
				p.Kill(s.TB)
			}
			return
		}
		s.Sync(p)
	}
}

// Sync syncs p without faults, fails the test on error, and traces it.
func (s *Sim) Sync(p *Phone) {
	start := p.Faulty.Calls()
	rep := p.Sync(s.TB)
	s.traceSync(p, start, rep, nil, "")
}

// traceSync traces a sync of p that began at call start: its calls, its
// report without the error's text (which may name the server's address),
// and every answer the server gave (Faulty.Answers), so that two runs
// whose servers answered differently (another epoch, cursor, id or
// token) trace differently.
func (s *Sim) traceSync(p *Phone, start int, rep mobile.SyncReport, err error, fault string) {
	p.Faulty.mu.Lock()
	steps := strings.Join(p.Faulty.Steps[start:], ",")
	answers := slices.Clone(p.Faulty.Answers[start:])
	p.Faulty.mu.Unlock()
	rep.Error = ""
	b, _ := json.Marshal(rep)
	s.Tracef("%s sync%s: failed %v, calls %s, report %s", p.Name, fault, err != nil, steps, b)
	for i, a := range answers {
		s.Tracef("%s answer %d: %s", p.Name, start+i, a)
	}
}

// Settle syncs every phone twice round, enough for a join to reach all.
func (s *Sim) Settle() {
	for range 2 {
		for _, p := range s.Phones {
			s.Sync(p)
		}
	}
}

// CheckConverged asserts that every phone holds the same records as want
// (a map by id, e.g. the server's records or an observer phone's), that
// outboxes are empty, no change was rejected and every photo is done.
func CheckConverged(tb testing.TB, want map[uuid.UUID]*syncproto.Record, phones ...*Phone) {
	tb.Helper()
	for _, p := range phones {
		for _, d := range Divergence(tb, want, p) {
			tb.Error(d)
		}
	}
}

// Divergence returns what keeps a phone from having converged on want:
// records it lacks, holds in excess or holds differently, and changes or
// photos not yet accepted by the server. It is empty for a phone that
// converged.
func Divergence(tb testing.TB, want map[uuid.UUID]*syncproto.Record, p *Phone) []string {
	tb.Helper()
	var out []string
	got, err := p.E.Records(mobile.Filter{Deleted: true})
	if err != nil {
		tb.Fatal(err)
	}
	if len(got) != len(want) {
		out = append(out, fmt.Sprintf("%s holds %d records, want %d", p.Name, len(got), len(want)))
	}
	for _, r := range got {
		if w := want[r.ID]; w == nil || !w.Equal(r) {
			a, _ := syncproto.Marshal(r)
			b, _ := syncproto.Marshal(w)
			out = append(out, fmt.Sprintf("%s: record %s differs:\nphone %s\nwant  %s", p.Name, r.ID, a, b))
		}
	}
	st, err := p.E.Status()
	if err != nil {
		tb.Fatal(err)
	}
	if st.Outbox != 0 || st.Photos != 0 || st.Rejected != 0 {
		out = append(out, fmt.Sprintf("%s after sync: outbox %d, photos left %d, rejected %d", p.Name, st.Outbox, st.Photos, st.Rejected))
		if probs, _ := p.E.Problems(); len(probs) > 0 {
			out = append(out, fmt.Sprintf("%s: first problem: %+v", p.Name, probs[0]))
		}
	}
	return out
}

// CheckNoEditLost asserts that every field version written is still in
// its field, or in the record's conflict log, or was overwritten by a
// version whose writer had seen it; and that every event is present.
func CheckNoEditLost(tb testing.TB, recs map[uuid.UUID]*syncproto.Record, edits []Edit, items map[uuid.UUID][]string) {
	tb.Helper()
	for _, l := range LostEdits(recs, edits, items) {
		tb.Error(l)
	}
}

// LostEdits is the oracle of CheckNoEditLost: it returns one line per
// field version or event of edits and items that recs no longer hold (as
// itself, in the conflict log, or under a version whose writer had seen
// it). Given the records the server holds and every change it
// acknowledged, an empty answer means no acknowledged write was lost.
func LostEdits(recs map[uuid.UUID]*syncproto.Record, edits []Edit, items map[uuid.UUID][]string) []string {
	var out []string
	for _, e := range edits {
		r := recs[e.Record]
		if r == nil {
			out = append(out, fmt.Sprintf("record %s lost", e.Record))
			continue
		}
		if !editKept(r, e) {
			out = append(out, fmt.Sprintf("edit lost: %s.%s = %s by %s", e.Record, e.Field, e.V.Value, e.V.HLC))
		}
	}
	for id, ids := range items {
		have := map[string]bool{}
		if r := recs[id]; r != nil {
			for _, it := range r.Items["events"] {
				have[it.ID] = true
			}
		}
		for _, want := range ids {
			if !have[want] {
				out = append(out, fmt.Sprintf("event %s of %s lost", want, id))
			}
		}
	}
	return out
}

func editKept(r *syncproto.Record, e Edit) bool {
	for _, v := range r.Fields[e.Field] {
		if v.HLC == e.V.HLC || v.Vector.Compare(e.V.Vector) == syncproto.Greater {
			return true
		}
	}
	for _, c := range r.Conflicts {
		if c.Field == e.Field && c.Version.HLC == e.V.HLC {
			return true
		}
	}
	return false
}

// RecordsOf returns a phone's records by id.
func RecordsOf(tb testing.TB, p *Phone) map[uuid.UUID]*syncproto.Record {
	tb.Helper()
	recs, err := p.E.Records(mobile.Filter{Deleted: true})
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[uuid.UUID]*syncproto.Record, len(recs))
	for _, r := range recs {
		out[r.ID] = r
	}
	return out
}
