package syncproto_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

// recordsFromBytes interprets fuzz input as a program run by three
// replicas on one record: writes (Set, Append, Delete), merges between
// replicas, and clock changes. It returns the three replicas' records.
// Item ids are drawn from a small alphabet shared by all replicas, so two
// different items under one id (a bug Merge must still settle
// deterministically) happen too.
func recordsFromBytes(data []byte) [3]*syncproto.Record {
	next := func() int {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return int(b)
	}
	var recs [3]*syncproto.Record
	var ws [3]*syncproto.Writer
	for i := range recs {
		recs[i] = newRecord("visit")
		ws[i] = writer(i, fmt.Sprintf("u%d", i), t0)
	}
	fields := []string{"a", "b", "c"}
	for len(data) > 0 {
		op, i := next(), next()%3
		w := ws[i]
		switch op % 6 {
		case 0, 1:
			recs[i], _ = syncproto.Set(recs[i], fields[next()%3], str(string(rune('p'+next()%4))), w)
		case 2:
			id := string(rune('a' + next()%4))
			recs[i], _ = syncproto.Append(recs[i], "events", id, js(fmt.Sprintf(`{"by":%d,"n":%d}`, i, next()%3)), w)
		case 3:
			recs[i], _ = syncproto.Delete(recs[i], w)
		case 4:
			j := next() % 3
			recs[j], _ = syncproto.Merge(recs[j], recs[i])
		case 5:
			// The clock moves, possibly backwards, by up to two minutes.
			w.Now = w.Now.Add(time.Duration(next()%241-120) * time.Second)
		}
	}
	return recs
}

// FuzzMergeRecord checks that Merge is a join on records built by real
// operations: commutative, associative and idempotent, with a normal
// form, never modifying its inputs, giving valid records, and that Equal
// agrees with comparing Marshal bytes.
func FuzzMergeRecord(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 0, 1, 0, 2, 4, 0, 1, 4, 1, 0})
	f.Add([]byte{0, 0, 0, 0, 0, 1, 0, 0, 1, 3, 1, 2, 2, 0, 1, 4, 1, 2, 4, 2, 0})
	f.Add([]byte{2, 0, 0, 0, 2, 1, 0, 1, 3, 2, 4, 0, 2, 4, 1, 2, 5, 1, 0, 0, 1, 1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs := recordsFromBytes(data)
		a, b, c := recs[0], recs[1], recs[2]
		before := [3][]byte{mustJSON(t, a), mustJSON(t, b), mustJSON(t, c)}
		merge := func(x, y *syncproto.Record) *syncproto.Record { return mustMerge(t, x, y) }
		eq := func(what string, x, y *syncproto.Record) {
			t.Helper()
			jx, jy := mustJSON(t, x), mustJSON(t, y)
			if !x.Equal(y) || !bytes.Equal(jx, jy) {
				t.Fatalf("%s: Equal=%v\n%s\n%s", what, x.Equal(y), jx, jy)
			}
		}
		ab := merge(a, b)
		eq("commutative", ab, merge(b, a))
		eq("associative", merge(ab, c), merge(a, merge(b, c)))
		eq("idempotent", merge(a, a), merge(a, nil))
		eq("normal form", merge(nil, a), merge(a, nil))
		eq("idempotent on a merge", merge(ab, ab), ab)
		eq("absorbs an input", merge(ab, a), ab)
		for i, r := range recs {
			if got := mustJSON(t, r); !bytes.Equal(got, before[i]) {
				t.Fatalf("Merge modified input %d", i)
			}
		}
		all := merge(ab, c)
		if err := all.Validate(); err != nil {
			t.Fatalf("merged record invalid: %v", err)
		}
		kept := map[string]string{}
		for _, it := range all.Items["events"] {
			kept[it.ID] = string(it.Data)
		}
		for _, r := range recs {
			collided := false
			for _, it := range r.Items["events"] {
				collided = collided || kept[it.ID] != string(it.Data)
			}
			// Two different items under one id (a writer bug) keep one
			// item, so the other's dot is gone; otherwise the version of
			// a merge covers its inputs'.
			if !collided && !all.Version().GreaterEqual(r.Version()) {
				t.Fatalf("merge version %v is not ≥ input version %v", all.Version(), r.Version())
			}
		}
		// Equal agrees with Marshal bytes on different normal-form records.
		for _, x := range []*syncproto.Record{merge(a, nil), merge(b, nil), ab} {
			for _, y := range []*syncproto.Record{merge(c, nil), ab, all} {
				if x.Equal(y) != bytes.Equal(mustJSON(t, x), mustJSON(t, y)) {
					t.Fatalf("Equal=%v disagrees with the bytes", x.Equal(y))
				}
			}
		}
		// Re-applying any input as a delta changes nothing.
		for _, r := range recs {
			d, err := syncproto.Decide(all, r, r.Version())
			if err != nil || d.Changed {
				t.Fatalf("re-applying an input: changed=%v err=%v", d.Changed, err)
			}
		}
	})
}
