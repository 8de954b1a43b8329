package syncproto_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// TestConformance runs every case of testdata/conformance/*.json: the
// cases any implementation of the protocol (this package, the browser app)
// must pass. The expected values in those files were written by hand from
// the rules, not dumped from this implementation; change them only with a
// reason, and review every changed line.
func TestConformance(t *testing.T) {
	t.Run("vectors", conformVectors)
	t.Run("records", conformRecords)
	t.Run("hazards", conformHazards)
}

func readCases(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "conformance", name))
	if err != nil {
		t.Fatal(err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func conformVectors(t *testing.T) {
	var file struct {
		Description []string `json:"description"`
		Compare     []struct {
			Name string             `json:"name"`
			A    syncproto.Vector   `json:"a"`
			B    syncproto.Vector   `json:"b"`
			Want syncproto.Ordering `json:"want"`
		} `json:"compare"`
		Merge []struct {
			Name string           `json:"name"`
			A    syncproto.Vector `json:"a"`
			B    syncproto.Vector `json:"b"`
			Want syncproto.Vector `json:"want"`
		} `json:"merge"`
		Update []struct {
			Name    string           `json:"name"`
			V       syncproto.Vector `json:"v"`
			Replica uuid.UUID        `json:"replica"`
			Now     int64            `json:"now"`
			Want    syncproto.Vector `json:"want"`
		} `json:"update"`
		Encode []struct {
			Name      string `json:"name"`
			JSON      string `json:"json"`
			Canonical string `json:"canonical"`
		} `json:"encode"`
		Invalid []struct {
			Name string `json:"name"`
			JSON string `json:"json"`
		} `json:"invalid"`
	}
	readCases(t, "vectors.json", &file)
	if len(file.Compare) == 0 || len(file.Merge) == 0 || len(file.Update) == 0 || len(file.Invalid) == 0 {
		t.Fatal("vectors.json has empty sections")
	}
	for _, c := range file.Compare {
		t.Run("compare/"+c.Name, func(t *testing.T) {
			if got := c.A.Compare(c.B); got != c.Want {
				t.Fatalf("Compare=%v, want %v", got, c.Want)
			}
			if got := c.B.Compare(c.A); got != inverse(c.Want) {
				t.Fatalf("reverse Compare=%v, want %v", got, inverse(c.Want))
			}
		})
	}
	for _, c := range file.Merge {
		t.Run("merge/"+c.Name, func(t *testing.T) {
			a0, b0 := c.A.Copy(), c.B.Copy()
			if got := c.A.Merge(c.B); !same(got, c.Want) {
				t.Fatalf("Merge=%v, want %v", got, c.Want)
			}
			if got := c.B.Merge(c.A); !same(got, c.Want) {
				t.Fatalf("reverse Merge=%v, want %v", got, c.Want)
			}
			if !same(c.A, a0) || !same(c.B, b0) {
				t.Fatal("inputs modified")
			}
		})
	}
	for _, c := range file.Update {
		t.Run("update/"+c.Name, func(t *testing.T) {
			if got := c.V.Update(c.Replica, time.Unix(c.Now, 0)); !same(got, c.Want) {
				t.Fatalf("Update=%v, want %v", got, c.Want)
			}
		})
	}
	for _, c := range file.Encode {
		t.Run("encode/"+c.Name, func(t *testing.T) {
			var v syncproto.Vector
			if err := json.Unmarshal([]byte(c.JSON), &v); err != nil {
				t.Fatal(err)
			}
			if got := string(mustJSON(t, v)); got != c.Canonical {
				t.Fatalf("encoding=%s, want %s", got, c.Canonical)
			}
		})
	}
	for _, c := range file.Invalid {
		t.Run("invalid/"+c.Name, func(t *testing.T) {
			var v syncproto.Vector
			if err := json.Unmarshal([]byte(c.JSON), &v); err == nil {
				t.Fatalf("decoded %s as %v, want an error", c.JSON, v)
			}
		})
	}
}

// conformRecord completes a case's record with the header and
// canonicalizes its values and item data.
func conformRecord(t *testing.T, header map[string]json.RawMessage, raw json.RawMessage) *syncproto.Record {
	t.Helper()
	if string(raw) == "null" {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	full := maps.Clone(header)
	maps.Copy(full, m)
	d := json.NewDecoder(bytes.NewReader(mustJSON(t, full)))
	d.DisallowUnknownFields()
	var r syncproto.Record
	if err := d.Decode(&r); err != nil {
		t.Fatalf("record %s: %v", raw, err)
	}
	canon := func(v json.RawMessage) json.RawMessage {
		c, err := syncproto.CanonicalJSON(v)
		if err != nil {
			t.Fatalf("value %s: %v", v, err)
		}
		return c
	}
	for _, f := range r.Fields {
		for i := range f {
			f[i].Value = canon(f[i].Value)
		}
	}
	for i := range r.Deleted {
		r.Deleted[i].Value = canon(r.Deleted[i].Value)
	}
	for i := range r.Conflicts {
		r.Conflicts[i].Version.Value = canon(r.Conflicts[i].Version.Value)
	}
	for _, items := range r.Items {
		for i := range items {
			items[i].Data = canon(items[i].Data)
		}
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("input record not valid: %v", err)
	}
	return &r
}

func permutations(n int) [][]int {
	if n == 1 {
		return [][]int{{0}}
	}
	var out [][]int
	for _, p := range permutations(n - 1) {
		for i := 0; i <= len(p); i++ {
			q := append(append(slices.Clone(p[:i]), n-1), p[i:]...)
			out = append(out, q)
		}
	}
	return out
}

func conformRecords(t *testing.T) {
	var file struct {
		Description []string                   `json:"description"`
		Header      map[string]json.RawMessage `json:"header"`
		Merge       []struct {
			Name    string            `json:"name"`
			Records []json.RawMessage `json:"records"`
			Expect  struct {
				Error          string                     `json:"error"`
				Values         map[string]json.RawMessage `json:"values"`
				Versions       map[string]int             `json:"versions"`
				ConflictFields *[]string                  `json:"conflict_fields"`
				Deleted        *bool                      `json:"deleted"`
				DeleteConflict *bool                      `json:"delete_conflict"`
				Items          map[string][]string        `json:"items"`
				ItemStamps     map[string]time.Time       `json:"item_stamps"`
				ConflictLog    []string                   `json:"conflict_log"`
				Flags          []string                   `json:"flags"`
			} `json:"expect"`
		} `json:"merge"`
		Decide []struct {
			Name     string           `json:"name"`
			Stored   json.RawMessage  `json:"stored"`
			Incoming json.RawMessage  `json:"incoming"`
			Base     syncproto.Vector `json:"base"`
			Expect   struct {
				Status    string   `json:"status"`
				Conflicts []string `json:"conflicts"`
				Changed   bool     `json:"changed"`
			} `json:"expect"`
		} `json:"decide"`
	}
	readCases(t, "records.json", &file)
	for _, c := range file.Merge {
		t.Run("merge/"+c.Name, func(t *testing.T) {
			var recs []*syncproto.Record
			for _, raw := range c.Records {
				recs = append(recs, conformRecord(t, file.Header, raw))
			}
			var results []*syncproto.Record
			for _, p := range permutations(len(recs)) {
				var m *syncproto.Record
				var err error
				for _, i := range p {
					if m, err = syncproto.Merge(m, recs[i]); err != nil {
						break
					}
				}
				if c.Expect.Error != "" {
					if got := syncproto.ErrorCode(err); got != c.Expect.Error {
						t.Fatalf("order %v: err=%v, want code %s", p, err, c.Expect.Error)
					}
					continue
				}
				if err != nil {
					t.Fatalf("order %v: %v", p, err)
				}
				results = append(results, m)
			}
			if c.Expect.Error != "" {
				return
			}
			m := results[0]
			for _, r := range results[1:] {
				if !r.Equal(m) {
					t.Fatalf("merge depends on the order:\n%s\n%s", mustJSON(t, r), mustJSON(t, m))
				}
			}
			e := c.Expect
			for f, want := range e.Values {
				canonWant, _ := syncproto.CanonicalJSON(want)
				if got := m.Value(f); !bytes.Equal(got, canonWant) {
					t.Errorf("value of %s=%s, want %s", f, got, canonWant)
				}
			}
			for f, n := range e.Versions {
				if got := len(m.Fields[f]); got != n {
					t.Errorf("versions of %s=%d, want %d", f, got, n)
				}
			}
			if e.ConflictFields != nil {
				if got := m.ConflictFields(); !slices.Equal(got, *e.ConflictFields) {
					t.Errorf("conflict_fields=%v, want %v", got, *e.ConflictFields)
				}
			}
			if e.Deleted != nil && m.IsDeleted() != *e.Deleted {
				t.Errorf("deleted=%v, want %v", m.IsDeleted(), *e.Deleted)
			}
			if e.DeleteConflict != nil && m.DeleteConflict() != *e.DeleteConflict {
				t.Errorf("delete_conflict=%v, want %v", m.DeleteConflict(), *e.DeleteConflict)
			}
			for coll, want := range e.Items {
				if got := ids(m.Items[coll]); !slices.Equal(got, want) {
					t.Errorf("items %s=%v, want %v", coll, got, want)
				}
			}
			for key, want := range e.ItemStamps {
				found := false
				for coll, items := range m.Items {
					for _, it := range items {
						if coll+"/"+it.ID == key {
							found = true
							if it.ServerReceivedAt == nil || !it.ServerReceivedAt.Equal(want) {
								t.Errorf("stamp of %s=%v, want %v", key, it.ServerReceivedAt, want)
							}
						}
					}
				}
				if !found {
					t.Errorf("no item %s", key)
				}
			}
			if e.ConflictLog != nil {
				var got []string
				for _, c := range m.Conflicts {
					got = append(got, c.ID)
				}
				if !slices.Equal(got, e.ConflictLog) {
					t.Errorf("conflict_log=%v, want %v", got, e.ConflictLog)
				}
			}
			if e.Flags != nil && !slices.Equal(m.Flags, e.Flags) {
				t.Errorf("flags=%v, want %v", m.Flags, e.Flags)
			}
		})
	}
	for _, c := range file.Decide {
		t.Run("decide/"+c.Name, func(t *testing.T) {
			stored := conformRecord(t, file.Header, c.Stored)
			incoming := conformRecord(t, file.Header, c.Incoming)
			d, err := syncproto.Decide(stored, incoming, c.Base)
			if err != nil {
				t.Fatal(err)
			}
			if d.Status != c.Expect.Status || !slices.Equal(d.Conflicts, c.Expect.Conflicts) && len(d.Conflicts)+len(c.Expect.Conflicts) > 0 || d.Changed != c.Expect.Changed {
				t.Fatalf("Decide: status=%s conflicts=%v changed=%v; want %s %v %v", d.Status, d.Conflicts, d.Changed, c.Expect.Status, c.Expect.Conflicts, c.Expect.Changed)
			}
		})
	}
}

type conformEvent struct {
	ID               string          `json:"id"`
	HLC              syncproto.HLC   `json:"hlc"`
	ServerReceivedAt *time.Time      `json:"server_received_at"`
	Data             json.RawMessage `json:"data"`
}

type conformOutcome struct {
	ID      string                `json:"id"`
	Applied *syncproto.Transition `json:"applied_transition"`
	// The conflict value.
	Conflict string `json:"conflict"`
}

type conformExpect struct {
	Status       *string          `json:"status"`
	NeedsReview  *bool            `json:"needs_review"`
	ReviewEvents *[]string        `json:"review_events"`
	Severity     *string          `json:"severity"`
	Deadline     *string          `json:"deadline"`
	Overdue      *bool            `json:"overdue"`
	ClosedBy     *string          `json:"closed_by"`
	EvidenceAt   *time.Time       `json:"evidence_at"`
	Flags        *[]string        `json:"flags"`
	DoneVisitID  *string          `json:"done_visit_id"`
	Events       []conformOutcome `json:"events"`
}

func eventRecord(t *testing.T, kind string, fields map[string]string, events []conformEvent) *syncproto.Record {
	t.Helper()
	r := &syncproto.Record{ID: uuid.MustParse("0192b000-0000-7000-8000-000000000701"), Kind: kind, SchoolID: schoolID, CreatedAt: t0}
	for k, v := range fields {
		r, _ = syncproto.Set(r, k, str(v), writer(15, "office", t0))
	}
	r.Items = map[string][]syncproto.Item{}
	for _, e := range events {
		data, err := syncproto.CanonicalJSON(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		r.Items["events"] = append(r.Items["events"], syncproto.Item{ID: e.ID, HLC: e.HLC, ServerReceivedAt: e.ServerReceivedAt, Data: data})
	}
	if err := r.Validate(); err != nil {
		t.Fatalf("case record not valid: %v", err)
	}
	return r
}

func checkOutcomes(t *testing.T, got []syncproto.EventOutcome, want []conformOutcome) {
	t.Helper()
	if want == nil {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%d outcomes, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.ID != w.ID || g.Conflict != w.Conflict || (g.Applied == nil) != (w.Applied == nil) || (g.Applied != nil && *g.Applied != *w.Applied) {
			t.Errorf("event %d: got %s %+v %s (%s); want %s %+v %s", i, g.ID, g.Applied, g.Conflict, g.Reason, w.ID, w.Applied, w.Conflict)
		}
	}
}

func checkReview(t *testing.T, e conformExpect, needs bool, events []string) {
	t.Helper()
	if e.NeedsReview != nil && needs != *e.NeedsReview {
		t.Errorf("needs_review=%v, want %v", needs, *e.NeedsReview)
	}
	if e.ReviewEvents != nil && !slices.Equal(events, *e.ReviewEvents) && len(events)+len(*e.ReviewEvents) > 0 {
		t.Errorf("review_events=%v, want %v", events, *e.ReviewEvents)
	}
}

func conformHazards(t *testing.T) {
	var file struct {
		Description []string `json:"description"`
		Hazards     []struct {
			Name          string         `json:"name"`
			SeverityField string         `json:"severity_field"`
			Now           time.Time      `json:"now"`
			Events        []conformEvent `json:"events"`
			Expect        conformExpect  `json:"expect"`
		} `json:"hazards"`
		Tasks []struct {
			Name          string         `json:"name"`
			AssigneeField string         `json:"assignee_field"`
			Events        []conformEvent `json:"events"`
			Expect        conformExpect  `json:"expect"`
		} `json:"tasks"`
	}
	readCases(t, "hazards.json", &file)
	for _, c := range file.Hazards {
		t.Run("hazard/"+c.Name, func(t *testing.T) {
			fields := map[string]string{}
			if c.SeverityField != "" {
				fields["severity"] = c.SeverityField
			}
			r := eventRecord(t, "hazard", fields, c.Events)
			s := syncproto.FoldHazard(r, c.Now)
			rev := r.Clone()
			slices.Reverse(rev.Items["events"])
			if !equalJSON(t, syncproto.FoldHazard(rev, c.Now), s) {
				t.Fatal("the fold depends on the order of the events in the record")
			}
			e := c.Expect
			str := func(name, got string, want *string) {
				if want != nil && got != *want {
					t.Errorf("%s=%q, want %q", name, got, *want)
				}
			}
			str("status", s.Status, e.Status)
			str("severity", s.Severity, e.Severity)
			str("deadline", s.Deadline, e.Deadline)
			str("closed_by", s.ClosedBy, e.ClosedBy)
			if e.Overdue != nil && s.Overdue != *e.Overdue {
				t.Errorf("overdue=%v, want %v", s.Overdue, *e.Overdue)
			}
			if e.EvidenceAt != nil && !s.EvidenceAt.Equal(*e.EvidenceAt) {
				t.Errorf("evidence_at=%v, want %v", s.EvidenceAt, *e.EvidenceAt)
			}
			checkReview(t, e, s.NeedsReview, s.ReviewEvents)
			checkOutcomes(t, s.Events, e.Events)
		})
	}
	for _, c := range file.Tasks {
		t.Run("task/"+c.Name, func(t *testing.T) {
			r := eventRecord(t, "follow_up_task", map[string]string{"assignee_id": c.AssigneeField}, c.Events)
			s := syncproto.FoldTask(r)
			e := c.Expect
			if e.Status != nil && s.Status != *e.Status {
				t.Errorf("status=%q, want %q", s.Status, *e.Status)
			}
			if e.Flags != nil && !slices.Equal(s.Flags, *e.Flags) {
				t.Errorf("flags=%v, want %v", s.Flags, *e.Flags)
			}
			if e.DoneVisitID != nil && s.DoneVisitID != *e.DoneVisitID {
				t.Errorf("done_visit_id=%q, want %q", s.DoneVisitID, *e.DoneVisitID)
			}
			checkReview(t, e, s.NeedsReview, s.ReviewEvents)
			checkOutcomes(t, s.Events, e.Events)
		})
	}
}
