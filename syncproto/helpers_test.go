package syncproto_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
	"github.com/google/uuid"
)

// rid returns the test replica with the given small number: its bytes
// sort by n, so vec(1,…, 2,…) is already in canonical order.
func rid(n int) syncproto.ReplicaID {
	return uuid.MustParse(fmt.Sprintf("00000000-0000-4000-8000-%012x", n))
}

// vec builds a vector from (replica number, value) pairs, given in any
// order. Zero values are kept, so tests can build non-canonical vectors.
func vec(pairs ...uint64) syncproto.Vector {
	if len(pairs)%2 != 0 {
		panic("vec: odd number of arguments")
	}
	var v syncproto.Vector
	for i := 0; i < len(pairs); i += 2 {
		v.Counters = append(v.Counters, syncproto.Counter{Replica: rid(int(pairs[i])), Value: pairs[i+1]})
	}
	slices.SortFunc(v.Counters, func(a, b syncproto.Counter) int {
		return slices.Compare(a.Replica[:], b.Replica[:])
	})
	return v
}

// fromMap returns the canonical vector of an oracle map.
func fromMap(m map[syncproto.ReplicaID]uint64) syncproto.Vector {
	var v syncproto.Vector
	for id, x := range m {
		if x != 0 {
			v.Counters = append(v.Counters, syncproto.Counter{Replica: id, Value: x})
		}
	}
	slices.SortFunc(v.Counters, func(a, b syncproto.Counter) int {
		return slices.Compare(a.Replica[:], b.Replica[:])
	})
	return v
}

func toMap(v syncproto.Vector) map[syncproto.ReplicaID]uint64 {
	m := map[syncproto.ReplicaID]uint64{}
	for _, c := range v.Counters {
		m[c.Replica] = c.Value
	}
	return m
}

// oracleCompare is the textbook definition over maps, missing = 0.
func oracleCompare(a, b map[syncproto.ReplicaID]uint64) syncproto.Ordering {
	var aAhead, bAhead bool
	keys := map[syncproto.ReplicaID]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	for k := range keys {
		if a[k] > b[k] {
			aAhead = true
		}
		if a[k] < b[k] {
			bAhead = true
		}
	}
	switch {
	case aAhead && bAhead:
		return syncproto.Concurrent
	case aAhead:
		return syncproto.Greater
	case bAhead:
		return syncproto.Lesser
	}
	return syncproto.Equal
}

func oracleMerge(a, b map[syncproto.ReplicaID]uint64) map[syncproto.ReplicaID]uint64 {
	m := map[syncproto.ReplicaID]uint64{}
	for k, v := range a {
		m[k] = max(m[k], v)
	}
	for k, v := range b {
		m[k] = max(m[k], v)
	}
	return m
}

func oracleMeet(a, b map[syncproto.ReplicaID]uint64) map[syncproto.ReplicaID]uint64 {
	m := map[syncproto.ReplicaID]uint64{}
	for k, v := range a {
		if w := min(v, b[k]); w > 0 {
			m[k] = w
		}
	}
	return m
}

func inverse(o syncproto.Ordering) syncproto.Ordering {
	switch o {
	case syncproto.Greater:
		return syncproto.Lesser
	case syncproto.Lesser:
		return syncproto.Greater
	}
	return o
}

// same reports whether two vectors have identical counters.
func same(a, b syncproto.Vector) bool { return slices.Equal(a.Counters, b.Counters) }

// checkVectorProperties checks Compare, Merge and Update on canonical
// vectors a, b, c against the map oracle and the algebraic laws, and that
// no input is modified. Used by TestVectorProperties and FuzzVector.
func checkVectorProperties(t testing.TB, a, b, c syncproto.Vector, now time.Time) {
	t.Helper()
	a0, b0, c0 := a.Copy(), b.Copy(), c.Copy()
	ma, mb, mc := toMap(a), toMap(b), toMap(c)
	for _, v := range []syncproto.Vector{a, b, c} {
		if err := v.Validate(); err != nil {
			t.Fatalf("test input %v not canonical: %v", v, err)
		}
	}

	// Meet: oracle, a lower bound of both, commutative, idempotent, and
	// the dual of Merge (absorption).
	meet := a.Meet(b)
	if err := meet.Validate(); err != nil {
		t.Fatalf("%v.Meet(%v)=%v is not canonical: %v", a, b, meet, err)
	}
	if !same(meet, fromMap(oracleMeet(ma, mb))) {
		t.Fatalf("%v.Meet(%v)=%v, oracle %v", a, b, meet, fromMap(oracleMeet(ma, mb)))
	}
	if !meet.LesserEqual(a) || !meet.LesserEqual(b) || !same(meet, b.Meet(a)) || !same(a.Meet(a), a) || !same(a.Meet(a.Merge(b)), a) {
		t.Fatalf("meet laws fail for %v, %v: %v", a, b, meet)
	}

	// Compare: oracle, antisymmetry, reflexivity, helpers agree.
	ab := a.Compare(b)
	if want := oracleCompare(ma, mb); ab != want {
		t.Fatalf("%v.Compare(%v)=%v, oracle %v", a, b, ab, want)
	}
	if got := b.Compare(a); got != inverse(ab) {
		t.Fatalf("antisymmetry: %v.Compare(%v)=%v, but reverse is %v", a, b, ab, got)
	}
	if got := a.Compare(a); got != syncproto.Equal {
		t.Fatalf("reflexivity: %v.Compare(itself)=%v", a, got)
	}
	if a.Equal(b) != (ab == syncproto.Equal) || a.Concurrent(b) != (ab == syncproto.Concurrent) ||
		a.LesserEqual(b) != (ab == syncproto.Lesser || ab == syncproto.Equal) ||
		a.GreaterEqual(b) != (ab == syncproto.Greater || ab == syncproto.Equal) {
		t.Fatalf("helpers disagree with Compare=%v for %v, %v", ab, a, b)
	}

	// Merge: oracle, canonical, commutative, associative, idempotent,
	// upper bound, least (a ≥ b exactly when Merge(a,b) == a).
	m := a.Merge(b)
	if want := fromMap(oracleMerge(ma, mb)); !same(m, want) {
		t.Fatalf("Merge(%v,%v)=%v, oracle %v", a, b, m, want)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("Merge(%v,%v)=%v not canonical: %v", a, b, m, err)
	}
	if !same(m, b.Merge(a)) {
		t.Fatalf("Merge not commutative for %v, %v", a, b)
	}
	if x, y := a.Merge(b).Merge(c), a.Merge(b.Merge(c)); !same(x, y) || !same(x, fromMap(oracleMerge(oracleMerge(ma, mb), mc))) {
		t.Fatalf("Merge not associative: %v vs %v", x, y)
	}
	if !same(a.Merge(a), a) {
		t.Fatalf("Merge not idempotent for %v", a)
	}
	if !m.GreaterEqual(a) || !m.GreaterEqual(b) {
		t.Fatalf("Merge(%v,%v)=%v is not an upper bound", a, b, m)
	}
	if a.GreaterEqual(b) != same(m, a) {
		t.Fatalf("a≥b is %v but Merge(a,b)==a is %v for %v, %v", a.GreaterEqual(b), same(m, a), a, b)
	}
	if len(m.Counters) > 0 && len(a.Counters) > 0 && &m.Counters[0] == &a.Counters[0] {
		t.Fatalf("Merge result aliases its receiver")
	}

	// Update: strictly greater, one counter changed, canonical.
	for _, r := range []int{0, 1, 2, 3} {
		id := rid(r)
		if a.Counter(id) >= syncproto.MaxCounterValue {
			continue
		}
		u := a.Update(id, now)
		if got := u.Compare(a); got != syncproto.Greater {
			t.Fatalf("%v.Update(%d)=%v compares %v, want greater", a, r, u, got)
		}
		if err := u.Validate(); err != nil {
			t.Fatalf("Update gave non-canonical %v: %v", u, err)
		}
		want := max(a.Counter(id)+1, uint64(max(now.Unix(), 0)))
		if got := u.Counter(id); got != want {
			t.Fatalf("%v.Update(%d, %d)=%d, want %d", a, r, now.Unix(), got, want)
		}
		mu := toMap(u)
		delete(mu, id)
		ma2 := toMap(a)
		delete(ma2, id)
		if oracleCompare(mu, ma2) != syncproto.Equal {
			t.Fatalf("Update changed other counters: %v → %v", a, u)
		}
	}

	// JSON round trip.
	js, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back syncproto.Vector
	if err := json.Unmarshal(js, &back); err != nil || !same(back, a) {
		t.Fatalf("JSON round trip of %v: %s → %v, %v", a, js, back, err)
	}

	if !same(a, a0) || !same(b, b0) || !same(c, c0) {
		t.Fatalf("inputs modified: %v %v %v, were %v %v %v", a, b, c, a0, b0, c0)
	}
}

// Fixed ids and times for records.
var (
	recID    = uuid.MustParse("0192b000-0000-7000-8000-000000000701")
	schoolID = "0192b000-0000-7000-8000-000000000103"
	t0       = time.Date(2024, 11, 1, 8, 0, 0, 0, time.UTC)
)

func newRecord(kind string) *syncproto.Record {
	return &syncproto.Record{ID: recID, Kind: kind, SchoolID: schoolID, CreatedAt: t0, CreatedBy: "u1"}
}

func writer(n int, author string, now time.Time) *syncproto.Writer {
	return &syncproto.Writer{Replica: rid(n), Author: author, Now: now}
}

func mustMerge(t testing.TB, a, b *syncproto.Record) *syncproto.Record {
	t.Helper()
	m, err := syncproto.Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func js(s string) json.RawMessage { return json.RawMessage(s) }

// str returns s as a canonical JSON string (no HTML escaping).
func str(s string) json.RawMessage {
	b, _ := syncproto.Marshal(s)
	return b
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := syncproto.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
