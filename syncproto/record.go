package syncproto

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// FieldVersion is one write of one field: the value, the field's version
// vector after the write, the writer's clock stamp, and who wrote it.
type FieldVersion struct {
	Value  json.RawMessage `json:"value"`
	Vector Vector          `json:"vv"`
	HLC    HLC             `json:"hlc"`
	Author string          `json:"by,omitempty"` // user id of the person who wrote it
}

// Field is a multi-value register. Normally it holds one version. When
// writes were made concurrently (neither writer had seen the other's
// value) it holds every such version, winner first, until somebody who has
// seen them all writes again. Sorted by Wins, winner first.
type Field []FieldVersion

// Winner returns the version shown to users, or a zero version and false
// when the field is empty.
func (f Field) Winner() (FieldVersion, bool) {
	if len(f) == 0 {
		return FieldVersion{}, false
	}
	return f[0], true
}

// InConflict reports whether the field holds concurrent versions.
func (f Field) InConflict() bool { return len(f) > 1 }

// Vector returns the merge of the versions' vectors: the causal context a
// new write of this field must dominate.
func (f Field) Vector() Vector {
	var v Vector
	for _, fv := range f {
		v = v.Merge(fv.Vector)
	}
	return v
}

// Wins reports whether a beats b as the winner between concurrent versions
// of one field. The rule, identical on every replica: the later HLC stamp
// wins; the stamps' replica ids break ties (HLC.Compare is total); equal
// stamps with different values (which an honest replica never makes) are
// ordered by their bytes.
//
// Wins is a strict total order on distinct versions: versions that tie on
// stamp and value (which only a buggy or hostile replica makes) are then
// ordered by author and vector, so every replica keeps the same one.
//
// Device clocks in rural areas are wrong, so the HLC is not trusted alone:
// it is bumped past every stamp a phone has pulled (HLC.Observe), the
// server flags stamps far ahead of its own clock ("clock_skew"), and the
// loser is never dropped: it stays in the field until a person who has
// seen both versions writes again, and then it moves to the record's
// conflict log (Record.Conflicts). The rule only decides what is shown
// first, never what is kept.
func Wins(a, b FieldVersion) bool {
	if c := a.HLC.Compare(b.HLC); c != 0 {
		return c > 0
	}
	if c := bytes.Compare(a.Value, b.Value); c != 0 {
		return c > 0
	}
	if a.Author != b.Author {
		return a.Author > b.Author
	}
	return cmpVector(a.Vector, b.Vector) > 0
}

// cmpVector is a total order on vectors for tie-breaks only (it says
// nothing about causality): counters compared in turn, replica then value,
// then length.
func cmpVector(a, b Vector) int {
	for i := 0; i < len(a.Counters) && i < len(b.Counters); i++ {
		if c := cmpReplica(a.Counters[i].Replica, b.Counters[i].Replica); c != 0 {
			return c
		}
		if x, y := a.Counters[i].Value, b.Counters[i].Value; x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return len(a.Counters) - len(b.Counters)
}

func (v FieldVersion) clone() FieldVersion {
	v.Value = json.RawMessage(bytes.Clone(v.Value))
	v.Vector = v.Vector.Copy()
	return v
}

func (f Field) clone() Field {
	if f == nil {
		return nil
	}
	out := make(Field, len(f))
	for i, v := range f {
		out[i] = v.clone()
	}
	return out
}

// mergeField returns the join of two registers: the union of their
// versions without any version another version has seen (a vector that
// compares Lesser), with equal vectors kept once (the winner), winner
// first. The result shares no memory with the inputs' slices.
func mergeField(x, y Field) Field {
	all := make([]FieldVersion, 0, len(x)+len(y))
	all = append(all, x...)
	all = append(all, y...)
	out := make(Field, 0, len(all))
	for i, v := range all {
		keep := true
		for j, w := range all {
			if i == j {
				continue
			}
			switch v.Vector.Compare(w.Vector) {
			case Lesser:
				keep = false
			case Equal:
				// Keep one of several versions with equal vectors: the
				// winner, and of identical ones the first.
				if Wins(w, v) || (j < i && !Wins(v, w)) {
					keep = false
				}
			}
			if !keep {
				break
			}
		}
		if keep {
			out = append(out, v.clone())
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return Wins(out[i], out[j]) })
	return out
}

// Item is an element of an append-only collection of a record: a hazard's
// events, a visit's photos, review comments. Items are immutable; a
// collection is a grow-only set keyed by ID, so collections merge by union
// and never conflict.
type Item struct {
	ID   string          `json:"id"`
	Data json.RawMessage `json:"data"`
	HLC  HLC             `json:"hlc"`
	// Vector is the item's dot: the writing replica's counter for this
	// write, drawn from the same record-wide sequence as its field writes
	// (see Append). It lets a delete tell whether it had seen the item: an
	// item appended concurrently with a delete keeps the record alive
	// (rule 5). Items written before dots existed have none and count as
	// seen by every delete.
	Vector Vector `json:"vv,omitzero"`
	// ServerReceivedAt is set by the server when it first stores the item
	// and never changes afterwards; it orders items by arrival at the
	// server (see the hazard fold).
	ServerReceivedAt *time.Time `json:"server_received_at,omitempty"`
}

// mergeItem joins two copies of one item. Items are immutable, so honest
// replicas hold identical copies; if they ever differ, the larger by
// (data, stamp, dot) is kept everywhere, and the earliest server stamp.
func mergeItem(a, b Item) Item {
	out := a
	c := bytes.Compare(b.Data, a.Data)
	if c == 0 {
		c = b.HLC.Compare(a.HLC)
	}
	if c == 0 {
		c = cmpVector(b.Vector, a.Vector)
	}
	if c > 0 {
		out = b
	}
	out.ServerReceivedAt = minTime(a.ServerReceivedAt, b.ServerReceivedAt)
	return out
}

func (it Item) clone() Item {
	it.Data = json.RawMessage(bytes.Clone(it.Data))
	it.Vector = it.Vector.Copy()
	it.ServerReceivedAt = cloneTime(it.ServerReceivedAt)
	return it
}

// ConflictRevision is a losing version of a field, kept for a reviewer
// after the conflict it was part of was resolved by a later write.
type ConflictRevision struct {
	ID          string       `json:"id"` // field + "@" + digest of the version: the same on every replica
	Field       string       `json:"field"`
	Version     FieldVersion `json:"version"`
	ResolvedBy  string       `json:"resolved_by,omitempty"`
	ResolvedHLC HLC          `json:"resolved_hlc"`
}

func conflictID(field string, v FieldVersion) string {
	h := sha256.New()
	b, _ := marshal(v)
	h.Write(b)
	return field + "@" + hex.EncodeToString(h.Sum(nil)[:12])
}

// Record is the unit of sync: one visit, hazard, observation, form… It is
// a state-based CRDT: Merge is commutative, associative and idempotent, so
// replicas that have seen the same changes hold the same record whatever
// the order, and re-applying a change is harmless.
//
// The header (ID, Kind, SchoolID, FormID, FormVersion, CreatedAt,
// CreatedBy) is fixed when the record is created. Fields are registers
// merged field by field; Items are grow-only sets; Deleted is a register
// too (see IsDeleted); Conflicts and Flags are grow-only.
//
// A delta (what a phone pushes for one edit) is a Record with the header
// and only the fields and items the edit touched: merging a delta is the
// same join as merging a whole record.
type Record struct {
	ID          uuid.UUID `json:"id"`
	Kind        string    `json:"kind"`
	SchoolID    string    `json:"school_id,omitempty"`
	FormID      string    `json:"form_id,omitempty"`
	FormVersion int       `json:"form_version,omitempty"`
	CreatedAt   time.Time `json:"created_at"` // device clock of the creator: shown, never used for deadlines
	CreatedBy   string    `json:"created_by,omitempty"`

	Fields    map[string]Field   `json:"fields,omitempty"`
	Items     map[string][]Item  `json:"items,omitempty"`
	Deleted   Field              `json:"deleted,omitempty"`
	Conflicts []ConflictRevision `json:"conflicts,omitempty"`
	Flags     []string           `json:"flags,omitempty"`

	// Set by the server; joined by max (Rev) and min (ServerReceivedAt).
	Rev              int64      `json:"rev,omitempty"`
	ServerReceivedAt *time.Time `json:"server_received_at,omitempty"`
}

// minTime returns the earlier of two optional times. Two spellings of one
// instant (different offsets) are ordered by their text, so the choice
// does not depend on the argument order.
func minTime(a, b *time.Time) *time.Time {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case b.Before(*a):
		return b
	case b.Equal(*a) && timeText(*b) < timeText(*a):
		return b
	}
	return a
}

func timeText(t time.Time) string { return t.Format(time.RFC3339Nano) }

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// Version returns the record's version vector: the merge of every field's
// and the deletion register's vectors and of every item's dot. It is the
// Base a phone sends with a change.
func (r *Record) Version() Vector {
	var v Vector
	for _, f := range r.Fields {
		v = v.Merge(f.Vector())
	}
	for _, items := range r.Items {
		for _, it := range items {
			v = v.Merge(it.Vector)
		}
	}
	return v.Merge(r.Deleted.Vector())
}

// WrittenBy reports whether the replica wrote any version, deletion or
// item of r.
func (r *Record) WrittenBy(replica ReplicaID) bool {
	for _, f := range r.Fields {
		for _, v := range f {
			if v.HLC.Replica == replica {
				return true
			}
		}
	}
	for _, v := range r.Deleted {
		if v.HLC.Replica == replica {
			return true
		}
	}
	for _, items := range r.Items {
		for _, it := range items {
			if it.HLC.Replica == replica {
				return true
			}
		}
	}
	return false
}

// IsDeleted reports whether the record is a tombstone: the latest write to
// the deletion register says true and that write had seen every version of
// every field and every item. A delete concurrent with an edit or an
// append therefore never hides it: the record stays live and
// DeleteConflict reports the clash for a reviewer, who can delete again
// having seen the edit.
//
// "Had seen" is decided by dots: a version's dot is its writer (the
// replica of its HLC) with the writer's counter in its vector, and the
// delete has seen it when the delete's vector holds at least that counter
// for that writer. Counters are record-wide per writer (see Set), and a
// delete's vector holds only dots of versions its writer actually held
// (see Delete), so the test is exact.
func (r *Record) IsDeleted() bool {
	w, ok := r.Deleted.Winner()
	if !ok || string(w.Value) != "true" {
		return false
	}
	for _, f := range r.Fields {
		for _, fv := range f {
			if dotCounter(fv.HLC.Replica, fv.Vector) > w.Vector.Counter(fv.HLC.Replica) {
				return false
			}
		}
	}
	for _, items := range r.Items {
		for _, it := range items {
			if dotCounter(it.HLC.Replica, it.Vector) > w.Vector.Counter(it.HLC.Replica) {
				return false
			}
		}
	}
	return true
}

// dotCounter returns the counter of a write's own dot: its writer's entry
// in its vector.
func dotCounter(writer ReplicaID, v Vector) uint64 { return v.Counter(writer) }

// heldDots returns the merge of the dots of every field version and item r
// holds: the writes its holder has certainly seen. Unlike Version, it does
// not include what those writes' authors had seen: a delta pushed by a
// phone carries its field's vector, which may name a third replica's
// counter, without that replica's writes to other fields, so the server
// cannot claim to have seen them.
func (r *Record) heldDots() Vector {
	m := map[ReplicaID]uint64{}
	add := func(id ReplicaID, c uint64) {
		if c > m[id] {
			m[id] = c
		}
	}
	for _, f := range r.Fields {
		for _, fv := range f {
			add(fv.HLC.Replica, dotCounter(fv.HLC.Replica, fv.Vector))
		}
	}
	for _, items := range r.Items {
		for _, it := range items {
			add(it.HLC.Replica, dotCounter(it.HLC.Replica, it.Vector))
		}
	}
	out := Vector{}
	for id, c := range m {
		if c > 0 {
			out.Counters = append(out.Counters, Counter{id, c})
		}
	}
	sort.Slice(out.Counters, func(i, j int) bool { return cmpReplica(out.Counters[i].Replica, out.Counters[j].Replica) < 0 })
	return out
}

// DeleteConflict reports whether a delete was made concurrently with an
// edit that it had not seen.
func (r *Record) DeleteConflict() bool {
	w, ok := r.Deleted.Winner()
	if !ok || string(w.Value) != "true" {
		return r.Deleted.InConflict()
	}
	return !r.IsDeleted()
}

// Value returns the winning value of a field, or nil.
func (r *Record) Value(field string) json.RawMessage {
	if w, ok := r.Fields[field].Winner(); ok {
		return w.Value
	}
	return nil
}

// ConflictFields returns the sorted names of fields holding concurrent
// versions, with "deleted" when the deletion register is in conflict or a
// delete clashed with an edit.
func (r *Record) ConflictFields() []string {
	var out []string
	for k, f := range r.Fields {
		if f.InConflict() {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if r.DeleteConflict() {
		out = append(out, "deleted")
	}
	return out
}

// Clone returns a deep copy sharing no memory with r.
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	out := *r
	if r.Fields != nil {
		out.Fields = make(map[string]Field, len(r.Fields))
		for k, f := range r.Fields {
			out.Fields[k] = f.clone()
		}
	}
	if r.Items != nil {
		out.Items = make(map[string][]Item, len(r.Items))
		for k, items := range r.Items {
			var c []Item
			if items != nil {
				c = make([]Item, len(items))
				for i, it := range items {
					c[i] = it.clone()
				}
			}
			out.Items[k] = c
		}
	}
	out.Deleted = r.Deleted.clone()
	if r.Conflicts != nil {
		out.Conflicts = make([]ConflictRevision, len(r.Conflicts))
		for i, c := range r.Conflicts {
			c.Version = c.Version.clone()
			out.Conflicts[i] = c
		}
	}
	out.Flags = slices.Clone(r.Flags)
	out.ServerReceivedAt = cloneTime(r.ServerReceivedAt)
	return &out
}

// Equal reports whether two records hold the same state, server fields
// included: for records in normal form (see Merge) it is the same as
// comparing their Marshal bytes, without encoding them. Times are equal
// when they are the same instant written with the same offset; an empty
// field or collection counts as absent.
func (r *Record) Equal(o *Record) bool {
	if r == nil || o == nil {
		return r == o
	}
	if r.ID != o.ID || r.Kind != o.Kind || r.SchoolID != o.SchoolID || r.FormID != o.FormID ||
		r.FormVersion != o.FormVersion || !sameTime(r.CreatedAt, o.CreatedAt) || r.CreatedBy != o.CreatedBy ||
		r.Rev != o.Rev || !sameTimePtr(r.ServerReceivedAt, o.ServerReceivedAt) {
		return false
	}
	if countNonEmpty(r.Fields) != countNonEmpty(o.Fields) || countNonEmpty(r.Items) != countNonEmpty(o.Items) {
		return false
	}
	for k, f := range r.Fields {
		if len(f) > 0 && !fieldEqual(f, o.Fields[k]) {
			return false
		}
	}
	for k, items := range r.Items {
		if len(items) > 0 && !slices.EqualFunc(items, o.Items[k], itemEqual) {
			return false
		}
	}
	return fieldEqual(r.Deleted, o.Deleted) &&
		slices.EqualFunc(r.Conflicts, o.Conflicts, func(a, b ConflictRevision) bool {
			return a.ID == b.ID && a.Field == b.Field && a.ResolvedBy == b.ResolvedBy && a.ResolvedHLC == b.ResolvedHLC && versionEqual(a.Version, b.Version)
		}) &&
		slices.Equal(r.Flags, o.Flags)
}

func countNonEmpty[S ~[]E, E any](m map[string]S) int {
	n := 0
	for _, v := range m {
		if len(v) > 0 {
			n++
		}
	}
	return n
}

// sameTime reports whether two times encode to the same RFC 3339 text:
// the same instant at the same offset.
func sameTime(a, b time.Time) bool {
	_, oa := a.Zone()
	_, ob := b.Zone()
	return a.Equal(b) && oa == ob
}

func sameTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return sameTime(*a, *b)
}

func versionEqual(a, b FieldVersion) bool {
	return bytes.Equal(a.Value, b.Value) && a.HLC == b.HLC && a.Author == b.Author && slices.Equal(a.Vector.Counters, b.Vector.Counters)
}

func itemEqual(a, b Item) bool {
	return a.ID == b.ID && bytes.Equal(a.Data, b.Data) && a.HLC == b.HLC &&
		slices.Equal(a.Vector.Counters, b.Vector.Counters) && sameTimePtr(a.ServerReceivedAt, b.ServerReceivedAt)
}

// Header returns a copy of r with the header and server fields only: the
// start of a delta.
func (r *Record) Header() *Record {
	return &Record{
		ID: r.ID, Kind: r.Kind, SchoolID: r.SchoolID, FormID: r.FormID, FormVersion: r.FormVersion,
		CreatedAt: r.CreatedAt, CreatedBy: r.CreatedBy,
	}
}

// Merge returns the join of a and b; neither input is modified and the
// result shares no memory with them. Either may be nil. It fails with
// EINVALID when the headers disagree (two different records under one id).
//
// The result is in normal form whatever the inputs: no field version that
// another has seen, items and conflicts sorted by id without duplicates,
// flags sorted, no empty fields or collections. So Merge(a, nil) is a's
// normal form, and Merge(a, a) equals it.
func Merge(a, b *Record) (*Record, error) {
	switch {
	case a == nil && b == nil:
		return nil, nil
	case a == nil:
		a = b.Header()
	case b == nil:
		b = a.Header()
	}
	if a.ID != b.ID || a.Kind != b.Kind || a.SchoolID != b.SchoolID || a.FormID != b.FormID || a.FormVersion != b.FormVersion {
		return nil, Errorf(EINVALID, "Record %s: the header (kind, school, form, form version) differs from the stored record's.", a.ID)
	}
	out := &Record{
		ID: a.ID, Kind: a.Kind, SchoolID: a.SchoolID, FormID: a.FormID, FormVersion: a.FormVersion,
		CreatedAt: a.CreatedAt, CreatedBy: a.CreatedBy,
		Rev: max(a.Rev, b.Rev),
	}
	// The creator's header travels in every delta, so the two normally
	// agree; if not, the earlier creation wins, deterministically.
	if b.CreatedAt.Before(a.CreatedAt) || (b.CreatedAt.Equal(a.CreatedAt) &&
		(b.CreatedBy < a.CreatedBy || (b.CreatedBy == a.CreatedBy && timeText(b.CreatedAt) < timeText(a.CreatedAt)))) {
		out.CreatedAt, out.CreatedBy = b.CreatedAt, b.CreatedBy
	}
	if t := minTime(a.ServerReceivedAt, b.ServerReceivedAt); t != nil {
		tt := *t
		out.ServerReceivedAt = &tt
	}
	if len(a.Fields)+len(b.Fields) > 0 {
		out.Fields = make(map[string]Field, max(len(a.Fields), len(b.Fields)))
		for k, f := range a.Fields {
			if m := mergeField(f, b.Fields[k]); len(m) > 0 {
				out.Fields[k] = m
			}
		}
		for k, f := range b.Fields {
			if _, ok := a.Fields[k]; !ok {
				if m := mergeField(nil, f); len(m) > 0 {
					out.Fields[k] = m
				}
			}
		}
		if len(out.Fields) == 0 {
			out.Fields = nil
		}
	}
	if len(a.Items)+len(b.Items) > 0 {
		out.Items = make(map[string][]Item)
		for _, src := range []map[string][]Item{a.Items, b.Items} {
			for coll, items := range src {
				if u := unionItems(out.Items[coll], items); len(u) > 0 {
					out.Items[coll] = u
				}
			}
		}
		if len(out.Items) == 0 {
			out.Items = nil
		}
	}
	if d := mergeField(a.Deleted, b.Deleted); len(d) > 0 {
		out.Deleted = d
	}
	out.Conflicts = unionConflicts(a.Conflicts, b.Conflicts)
	out.Flags = unionStrings(a.Flags, b.Flags)
	return out, nil // every part was copied above: out shares no memory with a or b
}

func unionItems(a, b []Item) []Item {
	byID := make(map[string]Item, len(a)+len(b))
	for _, it := range a {
		byID[it.ID] = it
	}
	for _, it := range b {
		if old, ok := byID[it.ID]; ok {
			byID[it.ID] = mergeItem(old, it)
		} else {
			byID[it.ID] = it
		}
	}
	out := make([]Item, 0, len(byID))
	for _, it := range byID {
		out = append(out, it.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func unionConflicts(a, b []ConflictRevision) []ConflictRevision {
	if len(a)+len(b) == 0 {
		return nil
	}
	byID := make(map[string]ConflictRevision, len(a)+len(b))
	for _, src := range [][]ConflictRevision{a, b} {
		for _, c := range src {
			old, ok := byID[c.ID]
			if !ok || conflictAfter(c, old) {
				byID[c.ID] = c
			}
		}
	}
	out := make([]ConflictRevision, 0, len(byID))
	for _, c := range byID {
		c.Version = c.Version.clone()
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// conflictAfter orders two entries of the conflict log with one id (the
// same losing version, resolved twice): the later resolution is kept; a
// total tie-break on the rest keeps the choice independent of order.
func conflictAfter(c, old ConflictRevision) bool {
	if x := c.ResolvedHLC.Compare(old.ResolvedHLC); x != 0 {
		return x > 0
	}
	if c.ResolvedBy != old.ResolvedBy {
		return c.ResolvedBy > old.ResolvedBy
	}
	if c.Field != old.Field {
		return c.Field > old.Field
	}
	return Wins(c.Version, old.Version)
}

func unionStrings(a, b []string) []string {
	if len(a)+len(b) == 0 {
		return nil
	}
	out := append(append([]string(nil), a...), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// Writer identifies who makes a local write and when: the replica (device
// or server identity), the person, the replica's clock and the time now.
// Writes advance Clock; keep the returned clock for the next write.
type Writer struct {
	Replica ReplicaID
	Author  string
	Clock   HLC
	Now     time.Time
}

func (w *Writer) stamp() HLC {
	w.Clock = w.Clock.Next(w.Replica, w.Now)
	return w.Clock
}

// observe advances the writer's clock past every stamp in r, so that a
// write is stamped later than everything its writer has seen of the
// record, however wrong the device clock.
func (w *Writer) observe(r *Record) { w.Clock = w.Clock.Observe(r.MaxHLC()) }

// MaxHLC returns the latest clock stamp anywhere in the record: field
// versions, the deletion register, items and the conflict log. A replica
// that receives r observes it (HLC.Observe) to stamp its next write later.
func (r *Record) MaxHLC() HLC {
	var m HLC
	see := func(h HLC) {
		if h.Compare(m) > 0 {
			m = h
		}
	}
	for _, f := range r.Fields {
		for _, v := range f {
			see(v.HLC)
		}
	}
	for _, v := range r.Deleted {
		see(v.HLC)
	}
	for _, items := range r.Items {
		for _, it := range items {
			see(it.HLC)
		}
	}
	for _, c := range r.Conflicts {
		see(c.ResolvedHLC)
		see(c.Version.HLC)
	}
	return m
}

// nextVector returns the vector of a new write by w whose causal context
// is ctx. The writer's counter continues the record-wide sequence of its
// writes (the largest counter it holds for itself anywhere in r), not the
// field's own: otherwise a write to a field the writer never wrote before
// could get a counter that a delete had already seen for another of its
// writes (same second, or a clock set back), and the delete would hide an
// edit it had never seen.
func nextVector(ctx Vector, r *Record, w *Writer) Vector {
	if c := r.Version().Counter(w.Replica); c > ctx.Counter(w.Replica) {
		ctx = ctx.Merge(Vector{Counters: []Counter{{w.Replica, c}}})
	}
	return ctx.Update(w.Replica, w.Now)
}

// Set writes a field. The new version's vector dominates every version the
// field held, so a conflict on the field is resolved by this write, and
// the versions it supersedes while in conflict move to the conflict log.
// It returns the new record and the delta to push; r is not modified.
// value must be canonical JSON (see CanonicalJSON).
func Set(r *Record, field string, value json.RawMessage, w *Writer) (next, delta *Record) {
	old := r.Fields[field]
	w.observe(r)
	fv := FieldVersion{
		Value:  append(json.RawMessage(nil), value...),
		Vector: nextVector(old.Vector(), r, w),
		HLC:    w.stamp(),
		Author: w.Author,
	}
	delta = r.Header()
	delta.Fields = map[string]Field{field: {fv}}
	if old.InConflict() {
		for _, v := range old {
			delta.Conflicts = append(delta.Conflicts, ConflictRevision{
				ID: conflictID(field, v), Field: field, Version: v, ResolvedBy: w.Author, ResolvedHLC: fv.HLC,
			})
		}
	}
	next, _ = Merge(r, delta)
	return next, delta
}

// Delete writes true to the deletion register, so the record becomes a
// tombstone unless an edit or item the deleter had not seen arrives later
// (see IsDeleted). The delete's vector dominates the register's previous
// versions and holds the dot of every version and item the deleter holds,
// and nothing it has merely heard of.
func Delete(r *Record, w *Writer) (next, delta *Record) {
	w.observe(r)
	fv := FieldVersion{Value: json.RawMessage("true"), Vector: nextVector(r.Deleted.Vector().Merge(r.heldDots()), r, w), HLC: w.stamp(), Author: w.Author}
	delta = r.Header()
	delta.Deleted = Field{fv}
	next, _ = Merge(r, delta)
	return next, delta
}

// Keep writes false to the deletion register with a vector that has seen
// every version and item of r: the record stays, and a clash with a
// concurrent delete (DeleteConflict) is settled by someone who saw both.
func Keep(r *Record, w *Writer) (next, delta *Record) {
	w.observe(r)
	fv := FieldVersion{Value: json.RawMessage("false"), Vector: nextVector(r.Version(), r, w), HLC: w.stamp(), Author: w.Author}
	delta = r.Header()
	delta.Deleted = Field{fv}
	next, _ = Merge(r, delta) // r and its own header cannot disagree
	return next, delta
}

// Append adds an item to a collection and returns the new record and the
// delta. The item's HLC is stamped by w and its dot (Item.Vector) is the
// writer's next record-wide counter; its ID must be unique in the
// collection (a UUIDv7 made by the writer): an item is immutable, and two
// different items under one id are a bug that Merge settles by keeping
// one of them.
func Append(r *Record, collection, id string, data json.RawMessage, w *Writer) (next, delta *Record) {
	w.observe(r)
	it := Item{ID: id, Data: append(json.RawMessage(nil), data...), Vector: nextVector(Vector{}, r, w), HLC: w.stamp()}
	delta = r.Header()
	delta.Items = map[string][]Item{collection: {it}}
	next, _ = Merge(r, delta)
	return next, delta
}

// Outcome statuses of one pushed change.
const (
	StatusApplied   = "applied"   // taken as is: nothing the phone had not seen was on the server
	StatusMerged    = "merged"    // merged with edits the phone had not seen, without conflict
	StatusConflict  = "conflict"  // both kept; a field now holds concurrent versions for review
	StatusDuplicate = "duplicate" // the op id was applied before; nothing was written again
	StatusRejected  = "rejected"  // invalid; nothing was written
)

// Decision is the pure outcome of applying a change to a stored record.
type Decision struct {
	Merged    *Record  // the new state (equal to stored when Changed is false)
	Changed   bool     // whether Merged differs from the stored state
	Status    string   // StatusApplied, StatusMerged or StatusConflict
	Conflicts []string // fields this change put in conflict
}

// Decide merges a pushed delta into the stored record (nil when new) and
// classifies the outcome. base is the record version the phone had when it
// made the change: if the server held edits beyond it, the outcome is
// merged (or conflict when a field now holds concurrent versions).
func Decide(stored, incoming *Record, base Vector) (Decision, error) {
	merged, err := Merge(stored, incoming)
	if err != nil {
		return Decision{}, err
	}
	if stored == nil {
		return Decision{Merged: merged, Changed: true, Status: StatusApplied}, nil
	}
	d := Decision{Merged: merged, Changed: !merged.Equal(stored), Status: StatusApplied}
	for k := range incoming.Fields {
		if mf := merged.Fields[k]; mf.InConflict() && !fieldEqual(mf, stored.Fields[k]) {
			d.Conflicts = append(d.Conflicts, k)
		}
	}
	sort.Strings(d.Conflicts)
	if merged.DeleteConflict() && !stored.DeleteConflict() {
		d.Conflicts = append(d.Conflicts, "deleted")
	}
	switch {
	case len(d.Conflicts) > 0:
		d.Status = StatusConflict
	case d.Changed && !stored.Version().LesserEqual(base):
		d.Status = StatusMerged
	}
	return d, nil
}

// StampArrival returns a copy of a pushed record (or delta) ready to be
// merged into the stored one (nil when new) by a server whose clock reads
// now: every item the stored record does not hold yet gets
// ServerReceivedAt = now, items it already holds keep the stored stamp,
// and the record keeps its first arrival time. Stamps sent by a phone are
// never trusted, since only the server's clock orders arrivals (the hazard
// fold replays events in that order). Times are kept in UTC to the
// millisecond, which every store represents exactly.
func StampArrival(stored, incoming *Record, now time.Time) *Record {
	out := incoming.Clone()
	t := now.UTC().Truncate(time.Millisecond)
	have := map[string]*time.Time{}
	if stored != nil {
		for coll, items := range stored.Items {
			for _, it := range items {
				have[coll+"\x00"+it.ID] = it.ServerReceivedAt
			}
		}
	}
	for coll, items := range out.Items {
		for i := range items {
			st, ok := have[coll+"\x00"+items[i].ID]
			if ok && st != nil {
				items[i].ServerReceivedAt = cloneTime(st)
			} else {
				tt := t
				items[i].ServerReceivedAt = &tt
			}
		}
	}
	if stored != nil && stored.ServerReceivedAt != nil {
		out.ServerReceivedAt = cloneTime(stored.ServerReceivedAt)
	} else {
		tt := t
		out.ServerReceivedAt = &tt
	}
	return out
}

func fieldEqual(a, b Field) bool { return slices.EqualFunc(a, b, versionEqual) }

// Limits on one record, checked by Validate.
const (
	MaxFields     = 500
	MaxValueBytes = 256 << 10
	MaxItems      = 5000
	MaxFlags      = 64
	// MaxValueDepth bounds the nesting of arrays and objects in a value
	// or an item's data: forms nest groups in repeats a few levels deep;
	// thousands of levels only serve to exhaust a decoder's stack.
	MaxValueDepth = 32
	// MaxTextBytes bounds the identifiers and names of the envelope: form
	// ids, authors, item ids.
	MaxTextBytes = 128
)

var (
	kindRe  = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,63}$`)
	fieldRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	flagRe  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
)

// Validate checks a record (or delta) read from the wire: canonical ids,
// a UUIDv7 record id, names, vectors, stamps, canonical JSON values and
// size limits. Field-level problems are returned in an EINVALID *Error's
// Fields, keyed by field name.
func (r *Record) Validate() error {
	bad := map[string]string{}
	if r.ID == uuid.Nil || r.ID.Version() != 7 {
		bad["id"] = "must be a UUIDv7 made by the device that created the record"
	}
	if !kindRe.MatchString(r.Kind) {
		bad["kind"] = "must be a lower-case record kind such as visit or hazard"
	}
	if r.SchoolID != "" {
		if _, err := parseUUID(r.SchoolID); err != nil {
			bad["school_id"] = "must be a canonical UUID"
		}
	}
	if r.FormVersion < 0 || (r.FormID == "") != (r.FormVersion == 0) {
		bad["form_version"] = "form_id and a positive form_version go together"
	}
	if !isText(r.FormID) {
		bad["form_id"] = textRule
	}
	if !isText(r.CreatedBy) {
		bad["created_by"] = textRule
	}
	if len(r.Fields) > MaxFields {
		bad["fields"] = fmt.Sprintf("at most %d fields", MaxFields)
	}
	for k, f := range r.Fields {
		if !fieldRe.MatchString(k) {
			bad[k] = "field names are letters, digits and underscores"
			continue
		}
		if msg := checkField(f); msg != "" {
			bad[k] = msg
		}
	}
	if msg := checkField(r.Deleted); msg != "" {
		bad["deleted"] = msg
	}
	for _, v := range r.Deleted {
		if s := string(v.Value); s != "true" && s != "false" {
			bad["deleted"] = "must be true or false"
		}
	}
	for coll, items := range r.Items {
		if !fieldRe.MatchString(coll) {
			bad["items."+coll] = "collection names are letters, digits and underscores"
			continue
		}
		if len(items) > MaxItems {
			bad["items."+coll] = fmt.Sprintf("at most %d items", MaxItems)
		}
		seen := map[string]bool{}
		for i, it := range items {
			key := fmt.Sprintf("items.%s[%d]", coll, i)
			switch {
			case it.ID == "" || !isText(it.ID):
				bad[key] = "an item needs an id: " + textRule
			case seen[it.ID]:
				bad[key] = "duplicate item id " + it.ID
			case len(it.Data) > MaxValueBytes:
				bad[key] = "item too large"
			case !isCanonical(it.Data):
				bad[key] = "data must be canonical JSON"
			case depth(it.Data) > MaxValueDepth:
				bad[key] = fmt.Sprintf("data nests deeper than %d levels", MaxValueDepth)
			case it.HLC.Replica == uuid.Nil:
				bad[key] = "hlc must name the writing replica"
			case it.Vector.Validate() != nil:
				bad[key] = "bad dot: " + it.Vector.Validate().Error()
			case !it.Vector.IsEmpty() && it.Vector.Counter(it.HLC.Replica) == 0:
				bad[key] = "the dot must count the writing replica (the hlc's)"
			}
			seen[it.ID] = true
		}
	}
	if len(r.Conflicts) > MaxItems {
		bad["conflicts"] = fmt.Sprintf("at most %d conflict revisions", MaxItems)
	}
	for i, c := range r.Conflicts {
		key := fmt.Sprintf("conflicts[%d]", i)
		switch {
		case !fieldRe.MatchString(c.Field):
			bad[key] = "field names are letters, digits and underscores"
		case checkField(Field{c.Version}) != "":
			bad[key] = checkField(Field{c.Version})
		case c.ID != conflictID(c.Field, c.Version):
			bad[key] = "id must be the field and the digest of the version"
		case !isText(c.ResolvedBy):
			bad[key] = "resolved_by: " + textRule
		}
	}
	if len(r.Flags) > MaxFlags {
		bad["flags"] = fmt.Sprintf("at most %d flags", MaxFlags)
	}
	for _, f := range r.Flags {
		if !flagRe.MatchString(f) {
			bad["flags"] = "flags are lower-case words such as done_after_cancel"
		}
	}
	if len(bad) > 0 {
		return FieldError(fmt.Sprintf("Record %s is not valid.", r.ID), bad)
	}
	return nil
}

func checkField(f Field) string {
	for _, v := range f {
		switch {
		case len(v.Value) > MaxValueBytes:
			return "value too large"
		case !isCanonical(v.Value):
			return "value must be canonical JSON"
		case depth(v.Value) > MaxValueDepth:
			return fmt.Sprintf("value nests deeper than %d levels", MaxValueDepth)
		case !isText(v.Author):
			return "by (the author): " + textRule
		case v.Vector.Validate() != nil:
			return "bad version vector: " + v.Vector.Validate().Error()
		case v.Vector.IsEmpty():
			return "a version needs a version vector"
		case v.HLC.Replica == uuid.Nil:
			return "hlc must name the writing replica"
		case v.Vector.Counter(v.HLC.Replica) == 0:
			return "the version vector must count the writing replica (the hlc's)"
		}
	}
	return ""
}

// CanonicalJSON re-encodes a JSON value in canonical form: no
// insignificant white space, object keys sorted, numbers as written.
// Values are compared by their bytes, so every writer must store values in
// this form.
func CanonicalJSON(v json.RawMessage) (json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(v))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(x); err != nil {
		return nil, err
	}
	return json.RawMessage(strings.TrimSuffix(b.String(), "\n")), nil
}

// marshal encodes v as encoding/json does, but without HTML escaping, so
// that canonical values (which contain "<", ">" and "&" as themselves,
// like JavaScript's JSON.stringify writes them) survive a round trip.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Marshal encodes a record (or any protocol message) deterministically: as
// encoding/json does (struct members in declaration order, map keys
// sorted) but without HTML escaping and without a trailing newline. Field
// values and item data inside are kept as they are, which Validate
// requires to be canonical (CanonicalJSON).
func Marshal(v any) ([]byte, error) { return marshal(v) }

// textRule says what isText checks, for messages.
var textRule = fmt.Sprintf("at most %d bytes of UTF-8 text without control characters", MaxTextBytes)

// isText reports whether s may be an identifier or a name of the
// envelope: valid UTF-8, at most MaxTextBytes, no control characters
// (U+0000 in particular, which PostgreSQL text cannot hold, so FerretDB
// refuses the document it is in).
func isText(s string) bool {
	if len(s) > MaxTextBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// depth returns how deeply arrays and objects nest in a JSON text.
func depth(v json.RawMessage) int {
	d, deepest, inString, escaped := 0, 0, false, false
	for _, c := range v {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			d++
			deepest = max(deepest, d)
		case c == ']' || c == '}':
			d--
		}
	}
	return deepest
}

func isCanonical(v json.RawMessage) bool {
	if len(v) == 0 {
		return false
	}
	c, err := CanonicalJSON(v)
	return err == nil && bytes.Equal(c, v)
}
