package syncproto_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// base returns a record created on the phone (replica 1) with two fields,
// and the writer's clock after it.
func base(t *testing.T) (*syncproto.Record, *syncproto.Writer) {
	t.Helper()
	w := writer(1, "inspector", t0)
	r := newRecord("visit")
	r, _ = syncproto.Set(r, "problems", str("宿舍消防器材过期"), w)
	r, _ = syncproto.Set(r, "suggestions", str("10月31日前完成更换"), w)
	return r, w
}

// Rule 1: different fields edited concurrently are both kept.
func TestMerge_DifferentFields(t *testing.T) {
	r, _ := base(t)
	phone := writer(1, "inspector", t0.Add(time.Hour))
	pc := writer(2, "inspector", t0.Add(2*time.Hour))
	a, da := syncproto.Set(r, "problems", str("作业量偏大"), phone)
	b, db := syncproto.Set(r, "suggestions", str("建立作业公示"), pc)
	for _, m := range []*syncproto.Record{mustMerge(t, a, b), mustMerge(t, b, a), mustMerge(t, mustMerge(t, r, da), db)} {
		if got := string(m.Value("problems")); got != `"作业量偏大"` {
			t.Errorf("problems=%s", got)
		}
		if got := string(m.Value("suggestions")); got != `"建立作业公示"` {
			t.Errorf("suggestions=%s", got)
		}
		if c := m.ConflictFields(); len(c) != 0 {
			t.Errorf("conflicts %v, want none", c)
		}
	}
	d, err := syncproto.Decide(a, db, r.Version())
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != syncproto.StatusMerged || !d.Changed || len(d.Conflicts) != 0 {
		t.Fatalf("Decide=%+v, want merged without conflicts", d)
	}
}

// Rule 2: the same field edited concurrently keeps both versions, winner
// first by HLC, and Set by someone who has seen both resolves it, moving
// the superseded versions to the conflict log.
func TestMerge_SameFieldConflict(t *testing.T) {
	r, _ := base(t)
	early := writer(2, "office", t0.Add(time.Hour))
	late := writer(3, "inspector", t0.Add(2*time.Hour))
	a, da := syncproto.Set(r, "problems", str("early"), early)
	b, db := syncproto.Set(r, "problems", str("late"), late)
	m1, m2 := mustMerge(t, a, b), mustMerge(t, b, a)
	if !m1.Equal(m2) {
		t.Fatal("Merge not commutative")
	}
	f := m1.Fields["problems"]
	if !f.InConflict() || len(f) != 2 {
		t.Fatalf("field=%+v, want two concurrent versions", f)
	}
	if got := string(m1.Value("problems")); got != `"late"` {
		t.Fatalf("winner=%s, want the later HLC", got)
	}
	if got := m1.ConflictFields(); !slices.Equal(got, []string{"problems"}) {
		t.Fatalf("ConflictFields=%v", got)
	}
	d, err := syncproto.Decide(a, db, r.Version())
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != syncproto.StatusConflict || !slices.Equal(d.Conflicts, []string{"problems"}) {
		t.Fatalf("Decide=%+v, want conflict on problems", d)
	}
	_ = da

	// Resolution by a reviewer who has seen both.
	rev := writer(4, "reviewer", t0.Add(3*time.Hour))
	res, delta := syncproto.Set(m1, "problems", str("merged text"), rev)
	if res.Fields["problems"].InConflict() || string(res.Value("problems")) != `"merged text"` {
		t.Fatalf("after Set: %+v", res.Fields["problems"])
	}
	if len(res.Conflicts) != 2 || len(delta.Conflicts) != 2 {
		t.Fatalf("conflict log=%d entries (delta %d), want the 2 superseded versions", len(res.Conflicts), len(delta.Conflicts))
	}
	var vals []string
	for _, c := range res.Conflicts {
		if c.Field != "problems" || c.ResolvedBy != "reviewer" || !strings.HasPrefix(c.ID, "problems@") {
			t.Errorf("conflict revision %+v", c)
		}
		vals = append(vals, string(c.Version.Value))
	}
	slices.Sort(vals)
	if !slices.Equal(vals, []string{`"early"`, `"late"`}) {
		t.Fatalf("conflict log values %v", vals)
	}
	// The resolution travels as a delta and gives the same state elsewhere.
	if other := mustMerge(t, mustMerge(t, b, a), delta); !other.Equal(res) {
		t.Fatal("resolution delta merged elsewhere gives another state")
	}
	if got := res.ConflictFields(); len(got) != 0 {
		t.Fatalf("ConflictFields after resolution=%v", got)
	}
}

// Rule 2, tie-break: equal wall times are ordered by logical counter, then
// by replica id, the same on every replica.
func TestWins_TieBreak(t *testing.T) {
	mk := func(wall int64, logical uint32, rep int, val string) syncproto.FieldVersion {
		return syncproto.FieldVersion{Value: str(val), Vector: vec(uint64(rep), 1), HLC: syncproto.HLC{Wall: wall, Logical: logical, Replica: rid(rep)}}
	}
	tests := []struct {
		name string
		a, b syncproto.FieldVersion
		want bool
	}{
		{"LaterWall", mk(2, 0, 1, "x"), mk(1, 9, 2, "y"), true},
		{"EarlierWall", mk(1, 9, 2, "y"), mk(2, 0, 1, "x"), false},
		{"LogicalBreaksWallTie", mk(5, 2, 1, "x"), mk(5, 1, 2, "y"), true},
		{"ReplicaBreaksTie", mk(5, 1, 2, "x"), mk(5, 1, 1, "y"), true},
		{"ReplicaBreaksTieReverse", mk(5, 1, 1, "x"), mk(5, 1, 2, "y"), false},
		{"ValueBreaksIdenticalStamp", mk(5, 1, 1, "b"), mk(5, 1, 1, "a"), true},
		{"Identical", mk(5, 1, 1, "a"), mk(5, 1, 1, "a"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := syncproto.Wins(tt.a, tt.b); got != tt.want {
				t.Fatalf("Wins=%v, want %v", got, tt.want)
			}
			if tt.want && syncproto.Wins(tt.b, tt.a) {
				t.Fatal("Wins is not antisymmetric")
			}
		})
	}
	// Total: versions differing only in author or vector are still ordered.
	x, y := mk(5, 1, 1, "a"), mk(5, 1, 1, "a")
	y.Author = "someone"
	if syncproto.Wins(x, y) == syncproto.Wins(y, x) {
		t.Fatal("Wins does not order versions that differ only by author")
	}
	y = mk(5, 1, 1, "a")
	y.Vector = vec(1, 2)
	if syncproto.Wins(x, y) == syncproto.Wins(y, x) {
		t.Fatal("Wins does not order versions that differ only by vector")
	}
}

// Rule 3: a write that has seen the earlier one replaces it; Decide says
// applied when the phone had seen everything on the server.
func TestMerge_SupersedingWrite(t *testing.T) {
	r, w := base(t)
	w.Now = t0.Add(time.Minute)
	next, delta := syncproto.Set(r, "problems", str("更新"), w)
	m := mustMerge(t, r, delta)
	if f := m.Fields["problems"]; len(f) != 1 || string(f[0].Value) != `"更新"` {
		t.Fatalf("field=%+v, want only the new version", f)
	}
	if len(m.Conflicts) != 0 {
		t.Fatalf("an ordinary edit went to the conflict log")
	}
	if !m.Equal(next) {
		t.Fatal("Set's next differs from merging its delta")
	}
	d, err := syncproto.Decide(r, delta, r.Version())
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != syncproto.StatusApplied || !d.Changed {
		t.Fatalf("Decide=%+v, want applied", d)
	}
	// The same delta again changes nothing (an idempotent retry).
	d2, _ := syncproto.Decide(d.Merged, delta, r.Version())
	if d2.Changed || d2.Status != syncproto.StatusApplied || !d2.Merged.Equal(d.Merged) {
		t.Fatalf("re-applying: %+v", d2)
	}
	// A new record is applied.
	d3, _ := syncproto.Decide(nil, r, syncproto.Vector{})
	if d3.Status != syncproto.StatusApplied || !d3.Changed || !d3.Merged.Equal(r) {
		t.Fatalf("new record: %+v", d3)
	}
}

// Rule 4: collections merge as a union by item id; the earliest server
// stamp wins.
func TestMerge_ItemsUnion(t *testing.T) {
	r := newRecord("hazard")
	phone, office := writer(1, "inspector", t0), writer(2, "office", t0)
	a, da := syncproto.Append(r, "events", "e1", js(`{"type":"photo_added"}`), phone)
	b, db := syncproto.Append(r, "events", "e2", js(`{"type":"note_added"}`), office)
	m := mustMerge(t, a, b)
	if got := ids(m.Items["events"]); !slices.Equal(got, []string{"e1", "e2"}) {
		t.Fatalf("items=%v", got)
	}
	if !mustMerge(t, b, a).Equal(m) || !mustMerge(t, m, da).Equal(m) || !mustMerge(t, mustMerge(t, m, db), db).Equal(m) {
		t.Fatal("union is not commutative or idempotent")
	}
	// Stamps: the earliest wins, whatever the order.
	s1, s2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	x, y := da.Clone(), da.Clone()
	x.Items["events"][0].ServerReceivedAt = &s2
	y.Items["events"][0].ServerReceivedAt = &s1
	for _, mm := range []*syncproto.Record{mustMerge(t, x, y), mustMerge(t, y, x)} {
		if got := *mm.Items["events"][0].ServerReceivedAt; !got.Equal(s1) {
			t.Fatalf("stamp=%v, want the earliest %v", got, s1)
		}
	}
}

func ids(items []syncproto.Item) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.ID)
	}
	return out
}

// Rule 5: a delete concurrent with an edit never hides the edit.
func TestDelete_ConcurrentEdit(t *testing.T) {
	r, _ := base(t)
	office := writer(2, "office", t0.Add(time.Hour))
	phone := writer(1, "inspector", t0.Add(2*time.Hour))
	del, ddel := syncproto.Delete(r, office)
	if !del.IsDeleted() || del.DeleteConflict() {
		t.Fatal("a delete that saw everything is not a tombstone")
	}
	ed, ded := syncproto.Set(r, "problems", str("仍未整改"), phone)
	for _, m := range []*syncproto.Record{mustMerge(t, del, ed), mustMerge(t, ed, del)} {
		if m.IsDeleted() {
			t.Fatal("the concurrent edit was hidden by the delete")
		}
		if !m.DeleteConflict() || !slices.Contains(m.ConflictFields(), "deleted") {
			t.Fatalf("DeleteConflict=%v ConflictFields=%v", m.DeleteConflict(), m.ConflictFields())
		}
		if got := string(m.Value("problems")); got != `"仍未整改"` {
			t.Fatalf("edit lost: %s", got)
		}
	}
	d, err := syncproto.Decide(del, ded, r.Version())
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != syncproto.StatusConflict || !slices.Contains(d.Conflicts, "deleted") {
		t.Fatalf("Decide=%+v, want conflict on deleted", d)
	}
	_ = ddel
	// Deleting again after seeing the edit settles it.
	again, _ := syncproto.Delete(d.Merged, office)
	if !again.IsDeleted() || again.DeleteConflict() {
		t.Fatal("second delete did not settle the record")
	}
}

// Rule 5 for items: a photo appended concurrently with a delete keeps the
// record alive too.
func TestDelete_ConcurrentAppend(t *testing.T) {
	r, _ := base(t)
	del, _ := syncproto.Delete(r, writer(2, "office", t0.Add(time.Hour)))
	app, _ := syncproto.Append(r, "photos", "p1", js(`{"sha256":"`+strings.Repeat("a", 64)+`"}`), writer(1, "inspector", t0.Add(time.Hour)))
	m := mustMerge(t, del, app)
	if m.IsDeleted() || !m.DeleteConflict() {
		t.Fatalf("IsDeleted=%v DeleteConflict=%v, want a live record in delete conflict", m.IsDeleted(), m.DeleteConflict())
	}
}

// TestDelete_CounterIsRecordWide is the regression test for a bug in the
// first version of Set: the writer's counter was taken from the field's
// own vector, so a phone's first write of a field could get a counter a
// delete had already seen for one of its earlier writes of another field
// (two writes in one second, or a clock set back), and the delete hid an
// edit it had never seen.
func TestDelete_CounterIsRecordWide(t *testing.T) {
	for name, later := range map[string]time.Duration{"SameSecond": 0, "ClockSetBack": -time.Hour} {
		t.Run(name, func(t *testing.T) {
			phone := writer(1, "inspector", t0)
			r, _ := syncproto.Set(newRecord("visit"), "problems", str("a"), phone)
			seen := r.Clone() // what the office receives
			phone.Now = t0.Add(later)
			edited, _ := syncproto.Set(r, "suggestions", str("b"), phone)
			del, _ := syncproto.Delete(seen, writer(2, "office", t0.Add(time.Hour)))
			m := mustMerge(t, del, edited)
			if m.IsDeleted() {
				t.Fatalf("delete hid an edit it had not seen: suggestions vv=%v, deleted vv=%v",
					m.Fields["suggestions"][0].Vector, m.Deleted[0].Vector)
			}
			if got := edited.Fields["suggestions"][0].Vector.Counter(rid(1)); got <= r.Fields["problems"][0].Vector.Counter(rid(1)) {
				t.Fatalf("phone counter %d did not advance past its previous write", got)
			}
		})
	}
}

// Rule 6: two records under one id with different headers do not merge.
func TestMerge_HeaderMismatch(t *testing.T) {
	a := newRecord("visit")
	for name, mod := range map[string]func(r *syncproto.Record){
		"Kind":        func(r *syncproto.Record) { r.Kind = "hazard" },
		"School":      func(r *syncproto.Record) { r.SchoolID = "0192b000-0000-7000-8000-000000000101" },
		"Form":        func(r *syncproto.Record) { r.FormID, r.FormVersion = "visit.routine", 1 },
		"FormVersion": func(r *syncproto.Record) { r.FormVersion = 2 },
		"ID":          func(r *syncproto.Record) { r.ID = uuid.MustParse("0192b000-0000-7000-8000-000000000702") },
	} {
		t.Run(name, func(t *testing.T) {
			b := newRecord("visit")
			mod(b)
			if _, err := syncproto.Merge(a, b); syncproto.ErrorCode(err) != syncproto.EINVALID {
				t.Fatalf("Merge err=%v, want %s", err, syncproto.EINVALID)
			}
			if _, err := syncproto.Decide(a, b, syncproto.Vector{}); syncproto.ErrorCode(err) != syncproto.EINVALID {
				t.Fatalf("Decide err=%v, want %s", err, syncproto.EINVALID)
			}
		})
	}
}

// Merge never modifies its inputs, shares no memory with them, and
// returns the normal form for a nil partner.
func TestMerge_PureAndNormal(t *testing.T) {
	r, _ := base(t)
	a, _ := syncproto.Set(r, "problems", str("x"), writer(2, "o", t0.Add(time.Hour)))
	b, _ := syncproto.Append(r, "events", "e1", js(`{"a":1}`), writer(3, "p", t0.Add(time.Hour)))
	ja, jb := mustJSON(t, a), mustJSON(t, b)
	m := mustMerge(t, a, b)
	if string(mustJSON(t, a)) != string(ja) || string(mustJSON(t, b)) != string(jb) {
		t.Fatal("Merge modified an input")
	}
	m.Fields["problems"][0].Value[1] = 'Z'
	m.Items["events"][0].Data[1] = 'Z'
	if string(mustJSON(t, a)) != string(ja) || string(mustJSON(t, b)) != string(jb) {
		t.Fatal("Merge result shares memory with an input")
	}
	// Normal form: a field with a dominated version, empty collections.
	odd := a.Clone()
	odd.Fields["problems"] = append(odd.Fields["problems"], r.Fields["problems"]...)
	odd.Items = map[string][]syncproto.Item{"photos": {}}
	odd.Fields["empty"] = syncproto.Field{}
	n1, n2 := mustMerge(t, odd, nil), mustMerge(t, nil, odd)
	if !n1.Equal(n2) || !n1.Equal(mustMerge(t, odd, odd)) || !n1.Equal(a) {
		t.Fatalf("normal form differs:\n%s\n%s", mustJSON(t, n1), mustJSON(t, a))
	}
	if m, _ := syncproto.Merge(nil, nil); m != nil {
		t.Fatal("Merge(nil, nil) is not nil")
	}
}

// Clone is deep.
func TestClone(t *testing.T) {
	r, _ := base(t)
	r, _ = syncproto.Append(r, "events", "e1", js(`{"a":1}`), writer(2, "o", t0))
	st := t0
	r.ServerReceivedAt = &st
	r.Flags = []string{"clock_skew"}
	c := r.Clone()
	if !reflect.DeepEqual(c, r) || !c.Equal(r) {
		t.Fatal("clone differs")
	}
	c.Fields["problems"][0].Value[1] = 'Z'
	c.Fields["problems"][0].Vector.Counters[0].Value++
	c.Items["events"][0].Data[1] = 'Z'
	*c.ServerReceivedAt = t0.Add(time.Hour)
	c.Flags[0] = "x"
	if c.Equal(r) || r.Flags[0] != "clock_skew" || !r.ServerReceivedAt.Equal(t0) || string(r.Items["events"][0].Data) != `{"a":1}` {
		t.Fatal("clone shares memory")
	}
	if (*syncproto.Record)(nil).Clone() != nil {
		t.Fatal("nil clone")
	}
}

func TestValidate(t *testing.T) {
	good := func() *syncproto.Record {
		r, _ := syncproto.Set(newRecord("visit"), "problems", str("x"), writer(1, "u", t0))
		r, _ = syncproto.Append(r, "events", "e1", js(`{"a":1}`), writer(1, "u", t0))
		return r
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good record: %v", err)
	}
	tests := []struct {
		name  string
		mod   func(r *syncproto.Record)
		field string
	}{
		{"NilID", func(r *syncproto.Record) { r.ID = uuid.Nil }, "id"},
		{"V4ID", func(r *syncproto.Record) { r.ID = rid(1) }, "id"},
		{"Kind", func(r *syncproto.Record) { r.Kind = "Visit" }, "kind"},
		{"School", func(r *syncproto.Record) { r.SchoolID = "103" }, "school_id"},
		{"FormWithoutVersion", func(r *syncproto.Record) { r.FormID = "visit.routine" }, "form_version"},
		{"VersionWithoutForm", func(r *syncproto.Record) { r.FormVersion = 1 }, "form_version"},
		{"FieldName", func(r *syncproto.Record) { r.Fields["bad-name"] = r.Fields["problems"] }, "bad-name"},
		{"NotCanonical", func(r *syncproto.Record) { r.Fields["problems"][0].Value = js(`{"b":1, "a":2}`) }, "problems"},
		{"HTMLEscaped", func(r *syncproto.Record) { r.Fields["problems"][0].Value = js(`"\u003c"`) }, "problems"},
		{"EmptyValue", func(r *syncproto.Record) { r.Fields["problems"][0].Value = nil }, "problems"},
		{"NoVector", func(r *syncproto.Record) { r.Fields["problems"][0].Vector = syncproto.Vector{} }, "problems"},
		{"ZeroCounter", func(r *syncproto.Record) { r.Fields["problems"][0].Vector = vec(1, 0) }, "problems"},
		{"NoHLCReplica", func(r *syncproto.Record) { r.Fields["problems"][0].HLC.Replica = uuid.Nil }, "problems"},
		{"TooLarge", func(r *syncproto.Record) {
			r.Fields["problems"][0].Value = str(strings.Repeat("x", syncproto.MaxValueBytes))
		}, "problems"},
		{"DeletedValue", func(r *syncproto.Record) {
			r.Deleted = syncproto.Field{{Value: js(`"yes"`), Vector: vec(1, 1), HLC: syncproto.HLC{Replica: rid(1)}}}
		}, "deleted"},
		{"ItemNoID", func(r *syncproto.Record) { r.Items["events"][0].ID = "" }, "items.events[0]"},
		{"ItemIDWithNUL", func(r *syncproto.Record) { r.Items["events"][0].ID = "e\x001" }, "items.events[0]"},
		{"AuthorWithNUL", func(r *syncproto.Record) { r.Fields["problems"][0].Author = "u\x00" }, "problems"},
		{"AuthorNotUTF8", func(r *syncproto.Record) { r.Fields["problems"][0].Author = "\xff" }, "problems"},
		{"FormIDWithNUL", func(r *syncproto.Record) { r.FormID, r.FormVersion = "visit\x00", 1 }, "form_id"},
		{"CreatedByTooLong", func(r *syncproto.Record) { r.CreatedBy = strings.Repeat("x", syncproto.MaxTextBytes+1) }, "created_by"},
		{"ValueTooDeep", func(r *syncproto.Record) {
			r.Fields["problems"][0].Value = js(strings.Repeat("[", syncproto.MaxValueDepth+1) + strings.Repeat("]", syncproto.MaxValueDepth+1))
		}, "problems"},
		{"ItemDataTooDeep", func(r *syncproto.Record) {
			r.Items["events"][0].Data = js(strings.Repeat(`{"a":`, syncproto.MaxValueDepth+1) + "1" + strings.Repeat("}", syncproto.MaxValueDepth+1))
		}, "items.events[0]"},
		{"ItemDuplicate", func(r *syncproto.Record) {
			r.Items["events"] = append(r.Items["events"], r.Items["events"][0])
		}, "items.events[1]"},
		{"ItemData", func(r *syncproto.Record) { r.Items["events"][0].Data = js(`{ "a":1}`) }, "items.events[0]"},
		{"ItemDot", func(r *syncproto.Record) { r.Items["events"][0].Vector = vec(1, 0) }, "items.events[0]"},
		{"CollectionName", func(r *syncproto.Record) { r.Items["bad name"] = r.Items["events"] }, "items.bad name"},
		{"ConflictID", func(r *syncproto.Record) {
			r.Conflicts = []syncproto.ConflictRevision{{ID: "problems@0", Field: "problems", Version: r.Fields["problems"][0]}}
		}, "conflicts[0]"},
		{"Flag", func(r *syncproto.Record) { r.Flags = []string{"Done After Cancel"} }, "flags"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good()
			tt.mod(r)
			err := r.Validate()
			var e *syncproto.Error
			if err == nil || syncproto.ErrorCode(err) != syncproto.EINVALID {
				t.Fatalf("Validate=%v, want %s", err, syncproto.EINVALID)
			}
			e = err.(*syncproto.Error)
			if _, ok := e.Fields[tt.field]; !ok {
				t.Fatalf("Fields=%v, want a message for %q", e.Fields, tt.field)
			}
		})
	}
	// A conflict revision made by Set validates.
	r := good()
	a, _ := syncproto.Set(r, "problems", str("a"), writer(2, "x", t0.Add(time.Hour)))
	b, _ := syncproto.Set(r, "problems", str("b"), writer(3, "y", t0.Add(time.Hour)))
	res, _ := syncproto.Set(mustMerge(t, a, b), "problems", str("c"), writer(4, "z", t0.Add(2*time.Hour)))
	if err := res.Validate(); err != nil || len(res.Conflicts) != 2 {
		t.Fatalf("resolved record: %v (%d conflicts)", err, len(res.Conflicts))
	}
}

func TestCanonicalJSON(t *testing.T) {
	tests := []struct {
		name, in, out string // out "" means an error
	}{
		{"Compact", `{ "a" : [1, 2] }`, `{"a":[1,2]}`},
		{"KeysSorted", `{"b":1,"a":{"d":1,"c":2}}`, `{"a":{"c":2,"d":1},"b":1}`},
		{"Chinese", `"学生宿舍楼灭火器过期"`, `"学生宿舍楼灭火器过期"`},
		{"ChineseEscaped", `"\u5b66\u751f"`, `"学生"`},
		{"HTMLNotEscaped", `"<a> & </a>"`, `"<a> & </a>"`},
		{"HTMLUnescaped", `"\u003c\u0026\u003e"`, `"<&>"`},
		{"NumbersAsWritten", `[1.0, 1e3, -0, 12345678901234567890]`, `[1.0,1e3,-0,12345678901234567890]`},
		{"Controls", `"a\nb\tc\u0001"`, `"a\nb\tc\u0001"`},
		{"Null", `null`, `null`},
		{"Trailing", `{"a":1} {"b":2}`, ""},
		{"Invalid", `{"a":}`, ""},
		{"Empty", ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := syncproto.CanonicalJSON(js(tt.in))
			if tt.out == "" {
				if err == nil {
					t.Fatalf("CanonicalJSON(%q)=%s, want an error", tt.in, got)
				}
				return
			}
			if err != nil || string(got) != tt.out {
				t.Fatalf("CanonicalJSON(%q)=%s, %v; want %s", tt.in, got, err, tt.out)
			}
			again, _ := syncproto.CanonicalJSON(got)
			if string(again) != string(got) {
				t.Fatalf("not idempotent: %s → %s", got, again)
			}
		})
	}
	// Marshal keeps canonical values as they are, with <>& unescaped.
	r, _ := syncproto.Set(newRecord("visit"), "title", str("<消防> & 用电"), writer(1, "u", t0))
	b := mustJSON(t, r)
	if !strings.Contains(string(b), `"value":"<消防> & 用电"`) {
		t.Fatalf("Marshal escaped the value: %s", b)
	}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestStampArrival(t *testing.T) {
	r := newRecord("hazard")
	r, d1 := syncproto.Append(r, "events", "e1", js(`{"a":1}`), writer(1, "u", t0))
	now := time.Date(2024, 11, 6, 19, 3, 0, 123456789, time.FixedZone("CST", 8*3600))
	bogus := t0.Add(-24 * time.Hour)
	d1.Items["events"][0].ServerReceivedAt = &bogus // a phone must not set stamps
	s1 := syncproto.StampArrival(nil, d1, now)
	want := time.Date(2024, 11, 6, 11, 3, 0, 123000000, time.UTC)
	if got := s1.Items["events"][0].ServerReceivedAt; got == nil || !got.Equal(want) || got.Location() != time.UTC {
		t.Fatalf("stamp=%v, want %v in UTC", got, want)
	}
	if s1.ServerReceivedAt == nil || !s1.ServerReceivedAt.Equal(want) {
		t.Fatalf("record stamp=%v", s1.ServerReceivedAt)
	}
	if d1.Items["events"][0].ServerReceivedAt != &bogus {
		t.Fatal("StampArrival modified its input")
	}
	stored := mustMerge(t, nil, s1)
	// Later: the phone sends e1 again (retry) with e2.
	_, d2 := syncproto.Append(r, "events", "e2", js(`{"a":2}`), writer(1, "u", t0))
	retry := mustMerge(t, d1, d2)
	later := now.Add(time.Hour)
	s2 := syncproto.StampArrival(stored, retry, later)
	m := mustMerge(t, stored, s2)
	got := map[string]time.Time{}
	for _, it := range m.Items["events"] {
		got[it.ID] = *it.ServerReceivedAt
	}
	if !got["e1"].Equal(want) || !got["e2"].Equal(later.Truncate(time.Millisecond)) {
		t.Fatalf("stamps=%v", got)
	}
	if !m.ServerReceivedAt.Equal(want) {
		t.Fatalf("record stamp moved: %v", m.ServerReceivedAt)
	}
}

func TestPhotoRefs(t *testing.T) {
	h1, h2 := strings.Repeat("a", 64), strings.Repeat("b", 64)
	r := newRecord("visit")
	r, _ = syncproto.Set(r, "photo", js(`{"content_type":"image/jpeg","sha256":"`+h2+`","size":1024}`), writer(1, "u", t0))
	r, _ = syncproto.Append(r, "events", "e1", js(`{"photos":[{"phase":"after","sha256":"`+h1+`"},{"sha256":"`+h2+`"},{"sha256":"NOTHEX"}]}`), writer(1, "u", t0))
	got := syncproto.PhotoRefs(r)
	if len(got) != 2 || got[0].SHA256 != h1 || got[1].SHA256 != h2 || got[1].Size != 1024 || got[1].ContentType != "image/jpeg" {
		t.Fatalf("PhotoRefs=%+v", got)
	}
}

// TestIdempotentRetry is docs/domain.md §7.12 scenario 7: the same push batch
// (same op ids, same photo hashes) sent twice after a timeout makes no
// duplicates. At this layer: the batch decodes to the same changes with
// the same digests (so the server's op-id check answers duplicate, not
// op_reused), and merging the same deltas again changes nothing: items are
// a set by id and photos are referred to by hash.
func TestIdempotentRetry(t *testing.T) {
	h := strings.Repeat("c", 64)
	r := newRecord("hazard")
	w := writer(1, "inspector", t0)
	_, d1 := syncproto.Append(r, "events", "0192b000-0000-7000-8000-000000000720",
		js(`{"actor_role":"inspector","occurred_at":"2024-11-14T17:00:00+08:00","photos":[{"sha256":"`+h+`"}],"type":"photo_added"}`), w)
	_, d2 := syncproto.Set(r, "title", str("学生宿舍楼灭火器过期"), w)
	batch := syncproto.PushRequest{
		Protocol: syncproto.ProtocolVersion, DeviceID: rid(1), BatchID: rid(99),
		Changes: []syncproto.Change{
			{OpID: uuid.MustParse("0192b000-0000-7000-8000-00000000c001"), Record: d1},
			{OpID: uuid.MustParse("0192b000-0000-7000-8000-00000000c002"), Record: d2},
		},
	}
	body := mustJSON(t, batch)
	stored := r.Clone()
	for attempt := range 2 {
		req, rej, err := syncproto.DecodePush(body)
		if err != nil || len(rej) != 0 {
			t.Fatalf("attempt %d: %v %v", attempt, err, rej)
		}
		for i, c := range req.Changes {
			if c.Digest() != batch.Changes[i].Digest() {
				t.Fatalf("attempt %d: digest of change %d differs", attempt, i)
			}
			d, err := syncproto.Decide(stored, c.Record, c.Base)
			if err != nil {
				t.Fatal(err)
			}
			if attempt == 1 && d.Changed {
				t.Fatalf("retry changed the record: change %d", i)
			}
			stored = d.Merged
		}
	}
	if n := len(stored.Items["events"]); n != 1 {
		t.Fatalf("events=%d, want 1", n)
	}
	if refs := syncproto.PhotoRefs(stored); len(refs) != 1 {
		t.Fatalf("photo refs=%v, want 1", refs)
	}
}

// TestMonthlyFormReturned is docs/domain.md §7.12 scenario 4: the office has
// returned form …0901; the inspector edits problems on the phone (offline)
// and suggestions on the PC. The field-level merge keeps both edits, the
// status stays returned (nobody who had seen the return wrote it), and it
// becomes submitted only when the author resubmits.
func TestMonthlyFormReturned(t *testing.T) {
	phoneW := writer(1, "inspector", time.Date(2024, 11, 1, 21, 0, 0, 0, time.UTC))
	form := &syncproto.Record{ID: uuid.MustParse("0192b000-0000-7000-8000-000000000901"), Kind: "monthly_feedback",
		SchoolID: schoolID, FormID: "monthly_feedback", FormVersion: 1, CreatedAt: t0, CreatedBy: "inspector"}
	form, _ = syncproto.Set(form, "problems", str("宿舍消防器材过期"), phoneW)
	form, _ = syncproto.Set(form, "suggestions", str("10月31日前完成灭火器更换"), phoneW)
	form, _ = syncproto.Set(form, "status", str("submitted"), phoneW)
	server := form.Clone()
	pc := form.Clone() // the PC had synced the submitted form too

	// The office returns it (a server write of status, with a comment).
	office := writer(9, "office", time.Date(2024, 11, 4, 10, 12, 0, 0, time.UTC))
	server, _ = syncproto.Set(server, "status", str("returned"), office)

	// Offline, the phone edits problems; the PC, which has pulled the
	// return, edits suggestions.
	phoneW.Now = time.Date(2024, 11, 5, 20, 0, 0, 0, time.UTC)
	_, dPhone := syncproto.Set(form, "problems", str("宿舍消防器材过期；八年级作业总量偏大"), phoneW)
	pc = mustMerge(t, pc, server)
	pcW := writer(2, "inspector", time.Date(2024, 11, 5, 21, 0, 0, 0, time.UTC))
	_, dPC := syncproto.Set(pc, "suggestions", str("建立年级作业统筹和公示"), pcW)

	d1, err := syncproto.Decide(server, dPC, pc.Version())
	if err != nil || d1.Status != syncproto.StatusApplied {
		t.Fatalf("PC push: %+v %v", d1, err)
	}
	d2, err := syncproto.Decide(d1.Merged, dPhone, form.Version())
	if err != nil || d2.Status != syncproto.StatusMerged {
		t.Fatalf("phone push: %+v %v, want merged", d2, err)
	}
	m := d2.Merged
	for k, want := range map[string]string{
		"problems": `"宿舍消防器材过期；八年级作业总量偏大"`, "suggestions": `"建立年级作业统筹和公示"`, "status": `"returned"`,
	} {
		if got := string(m.Value(k)); got != want {
			t.Errorf("%s=%s, want %s", k, got, want)
		}
	}
	if c := m.ConflictFields(); len(c) != 0 {
		t.Fatalf("conflicts %v, want none", c)
	}
	// Resubmission by the author, having seen the return.
	pc = mustMerge(t, pc, m)
	pcW.Now = pcW.Now.Add(time.Hour)
	_, dSubmit := syncproto.Set(pc, "status", str("submitted"), pcW)
	d3, _ := syncproto.Decide(m, dSubmit, pc.Version())
	if got := string(d3.Merged.Value("status")); got != `"submitted"` || d3.Status != syncproto.StatusApplied {
		t.Fatalf("after resubmit status=%s (%s)", got, d3.Status)
	}
}

// A resubmission made offline without having seen the return does not
// silently win: it is concurrent with the return, so the status field is
// in conflict and Decide says so. (The server's workflow layer, which owns
// status transitions, can then keep "returned" shown; nothing is lost.)
func TestMonthlyFormStaleResubmit(t *testing.T) {
	phone := writer(1, "inspector", t0)
	form := newRecord("monthly_feedback")
	form, _ = syncproto.Set(form, "status", str("submitted"), phone)
	server, _ := syncproto.Set(form, "status", str("returned"), writer(9, "office", t0.Add(time.Hour)))
	phone.Now = t0.Add(2 * time.Hour)
	_, d := syncproto.Set(form, "status", str("submitted"), phone)
	dec, _ := syncproto.Decide(server, d, form.Version())
	if dec.Status != syncproto.StatusConflict || len(dec.Merged.Fields["status"]) != 2 {
		t.Fatalf("Decide=%s with %d versions, want conflict with both", dec.Status, len(dec.Merged.Fields["status"]))
	}
}

func TestEqualAndHeader(t *testing.T) {
	r, _ := base(t)
	h := r.Header()
	if h.ID != r.ID || h.Kind != r.Kind || h.SchoolID != r.SchoolID || len(h.Fields) != 0 {
		t.Fatalf("Header=%+v", h)
	}
	if !r.Equal(r.Clone()) || r.Equal(h) {
		t.Fatal("Equal")
	}
	var v json.RawMessage = r.Value("missing")
	if v != nil {
		t.Fatal("Value of a missing field is not nil")
	}
}

// TestDelete_PushedDeltaCarriesNoThirdPartyWrites is the regression test
// for a bug in the first version of Delete, whose vector was the record's
// Version: that includes what the authors of held writes had seen. Phone
// C writes g then f; phone i receives C's state and writes f on top; i
// pushes its single-field delta, whose vector names C's counter, to the
// server; the office deletes. C's write of g never reached the office, so
// when C syncs, the delete must not hide it.
func TestDelete_PushedDeltaCarriesNoThirdPartyWrites(t *testing.T) {
	start := newRecord("visit")
	c := writer(3, "c", t0)
	cRec, _ := syncproto.Set(start, "g", str("c-g"), c)
	c.Now = t0.Add(time.Second)
	cRec, _ = syncproto.Set(cRec, "f", str("c-f"), c)
	_, di := syncproto.Set(cRec, "f", str("i-f"), writer(1, "i", t0.Add(time.Minute)))
	server := mustMerge(t, start, di)
	del, _ := syncproto.Delete(server, writer(9, "office", t0.Add(time.Hour)))
	if !del.IsDeleted() {
		t.Fatal("the office's delete of what it holds is not a tombstone")
	}
	final := mustMerge(t, del, cRec)
	if final.IsDeleted() || !final.DeleteConflict() {
		t.Fatalf("IsDeleted=%v DeleteConflict=%v: the delete hid C's write of g, which the office never saw", final.IsDeleted(), final.DeleteConflict())
	}
}

func TestValidate_VectorCountsWriter(t *testing.T) {
	r, _ := syncproto.Set(newRecord("visit"), "problems", str("x"), writer(1, "u", t0))
	r.Fields["problems"][0].Vector = vec(2, 5)
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "count the writing replica") {
		t.Fatalf("Validate=%v", err)
	}
}

// Brackets inside strings are text, not nesting; MaxValueDepth levels are
// allowed.
func TestValidate_DepthCountsOnlyStructure(t *testing.T) {
	deep := strings.Repeat("[", syncproto.MaxValueDepth) + strings.Repeat("]", syncproto.MaxValueDepth)
	for _, v := range []string{string(str(strings.Repeat("[{", 100) + `"`)), deep} {
		r, _ := syncproto.Set(newRecord("visit"), "problems", js(v), writer(1, "u", t0))
		if err := r.Validate(); err != nil {
			t.Errorf("%.40s…: %v", v, err)
		}
	}
}
