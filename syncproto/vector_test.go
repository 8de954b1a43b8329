package syncproto_test

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

const maxC = syncproto.MaxCounterValue

var compareTests = []struct {
	name string
	a, b syncproto.Vector
	want syncproto.Ordering
}{
	{"EmptyEmpty", vec(), vec(), syncproto.Equal},
	{"EmptyVsZeroValued", vec(), vec(42, 0), syncproto.Equal},
	{"ZeroValuedVsEmpty", vec(42, 0), vec(), syncproto.Equal},
	{"ZeroValuedBoth", vec(1, 0), vec(2, 0), syncproto.Equal},
	{"EmptyVsOne", vec(), vec(1, 1), syncproto.Lesser},
	{"OneVsEmpty", vec(1, 1), vec(), syncproto.Greater},
	{"ZeroValuedVsOne", vec(1, 0), vec(1, 1), syncproto.Lesser},
	{"SameSingle", vec(1, 5), vec(1, 5), syncproto.Equal},
	{"HigherSingle", vec(1, 6), vec(1, 5), syncproto.Greater},
	{"LowerSingle", vec(1, 4), vec(1, 5), syncproto.Lesser},
	{"DisjointReplicas", vec(1, 1), vec(2, 1), syncproto.Concurrent},
	{"DisjointReplicasReverse", vec(2, 1), vec(1, 1), syncproto.Concurrent},
	{"CrossedCounters", vec(1, 2, 2, 1), vec(1, 1, 2, 2), syncproto.Concurrent},
	{"CrossedCountersReverse", vec(1, 1, 2, 2), vec(1, 2, 2, 1), syncproto.Concurrent},
	{"ExtraReplicaGreater", vec(1, 1, 2, 1), vec(1, 1), syncproto.Greater},
	{"ExtraReplicaLesser", vec(1, 1), vec(1, 1, 2, 1), syncproto.Lesser},
	{"ExtraReplicaFirst", vec(0, 1, 1, 1), vec(1, 1), syncproto.Greater},
	{"ExtraReplicaLast", vec(1, 1), vec(1, 1, 9, 1), syncproto.Lesser},
	{"ExtraButBehind", vec(1, 1, 2, 1), vec(1, 2), syncproto.Concurrent},
	{"AllHigher", vec(1, 3, 2, 3, 3, 3), vec(1, 2, 2, 2, 3, 2), syncproto.Greater},
	{"OneHigherRestEqual", vec(1, 3, 2, 3, 3, 3), vec(1, 3, 2, 2, 3, 3), syncproto.Greater},
	{"ConcurrentAtEnd", vec(1, 3, 2, 3, 3, 1), vec(1, 3, 2, 2, 3, 3), syncproto.Concurrent},
	{"ThreeEqual", vec(1, 7, 2, 8, 3, 9), vec(1, 7, 2, 8, 3, 9), syncproto.Equal},
	{"ZeroInsideEqual", vec(1, 7, 2, 0, 3, 9), vec(1, 7, 3, 9), syncproto.Equal},
	{"MaxVsMax", vec(1, maxC), vec(1, maxC), syncproto.Equal},
	{"MaxVsMaxMinusOne", vec(1, maxC), vec(1, maxC-1), syncproto.Greater},
	{"MaxMinusOneVsMax", vec(1, maxC-1), vec(1, maxC), syncproto.Lesser},
	{"MaxVsOne", vec(1, maxC), vec(1, 1), syncproto.Greater},
	{"MaxCrossed", vec(1, maxC, 2, 1), vec(1, 1, 2, maxC), syncproto.Concurrent},
	{"MaxVsEmpty", vec(1, maxC), vec(), syncproto.Greater},
	{"ClockValues", vec(1, 1730468100, 2, 1730468101), vec(1, 1730468100, 2, 1730468100), syncproto.Greater},
	{"ManyReplicasOneBehind", vec(1, 1, 2, 1, 3, 1, 4, 1, 5, 1), vec(1, 1, 2, 1, 3, 1, 4, 1, 5, 2), syncproto.Lesser},
}

func TestVectorCompare(t *testing.T) {
	for _, tt := range compareTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Compare(tt.b); got != tt.want {
				t.Fatalf("Compare=%v, want %v", got, tt.want)
			}
			if got := tt.b.Compare(tt.a); got != inverse(tt.want) {
				t.Fatalf("reverse Compare=%v, want %v", got, inverse(tt.want))
			}
			if got := oracleCompare(toMap(tt.a), toMap(tt.b)); got != tt.want {
				t.Fatalf("oracle=%v, want %v (table is wrong)", got, tt.want)
			}
			w := tt.want
			if tt.a.Equal(tt.b) != (w == syncproto.Equal) ||
				tt.a.Concurrent(tt.b) != (w == syncproto.Concurrent) ||
				tt.a.LesserEqual(tt.b) != (w == syncproto.Lesser || w == syncproto.Equal) ||
				tt.a.GreaterEqual(tt.b) != (w == syncproto.Greater || w == syncproto.Equal) {
				t.Fatalf("helper methods disagree with %v", w)
			}
		})
	}
}

func TestVectorMerge(t *testing.T) {
	tests := []struct {
		name    string
		a, b, m syncproto.Vector
	}{
		{"Empty", vec(), vec(), vec()},
		{"EmptyLeft", vec(), vec(1, 1), vec(1, 1)},
		{"EmptyRight", vec(1, 1), vec(), vec(1, 1)},
		{"Same", vec(1, 3, 2, 4), vec(1, 3, 2, 4), vec(1, 3, 2, 4)},
		{"Max", vec(1, 3, 2, 1), vec(1, 1, 2, 4), vec(1, 3, 2, 4)},
		{"Interleaved", vec(1, 1, 3, 3, 5, 5), vec(2, 2, 4, 4), vec(1, 1, 2, 2, 3, 3, 4, 4, 5, 5)},
		{"Disjoint", vec(1, 1), vec(9, 9), vec(1, 1, 9, 9)},
		{"MaxCounter", vec(1, maxC), vec(1, 1, 2, maxC), vec(1, maxC, 2, maxC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a0, b0 := tt.a.Copy(), tt.b.Copy()
			if got := tt.a.Merge(tt.b); !same(got, tt.m) {
				t.Fatalf("Merge=%v, want %v", got, tt.m)
			}
			if got := tt.b.Merge(tt.a); !same(got, tt.m) {
				t.Fatalf("reverse Merge=%v, want %v", got, tt.m)
			}
			if !same(tt.a, a0) || !same(tt.b, b0) {
				t.Fatalf("inputs modified")
			}
		})
	}
}

// TestVectorMerge_NoAliasing appends to a Merge result and to an Update
// result, and checks the inputs do not see it (syncthing's Merge may write
// into its receiver's backing array; ours must not).
func TestVectorMerge_NoAliasing(t *testing.T) {
	a := syncproto.Vector{Counters: make([]syncproto.Counter, 1, 8)}
	a.Counters[0] = syncproto.Counter{Replica: rid(1), Value: 5}
	b := vec(1, 7)
	m := a.Merge(b)
	m.Counters[0].Value = 99
	if a.Counters[0].Value != 5 || b.Counters[0].Value != 7 {
		t.Fatalf("Merge result shares memory with its inputs")
	}
	u := a.Update(rid(2), t0)
	u.Counters[0].Value = 99
	if a.Counters[0].Value != 5 {
		t.Fatalf("Update result shares memory with its receiver")
	}
	_ = append(a.Counters, syncproto.Counter{Replica: rid(3), Value: 1})
	if len(a.Merge(vec()).Counters) != 1 {
		t.Fatalf("Merge read past the receiver's length")
	}
}

func TestVectorUpdate(t *testing.T) {
	now := time.Unix(1_730_468_100, 0)
	tests := []struct {
		name string
		v    syncproto.Vector
		id   int
		now  time.Time
		want syncproto.Vector
	}{
		{"NewCounterTakesClock", vec(), 1, now, vec(1, 1_730_468_100)},
		{"NewCounterBefore1970", vec(), 1, time.Unix(-5, 0), vec(1, 1)},
		{"NewCounterZeroTime", vec(2, 3), 1, time.Unix(0, 0), vec(1, 1, 2, 3)},
		{"IncrementsPastClock", vec(1, 1_730_468_200), 1, now, vec(1, 1_730_468_201)},
		{"ClockPastCounter", vec(1, 5), 1, now, vec(1, 1_730_468_100)},
		{"InsertFirst", vec(2, 1, 3, 1), 1, time.Unix(0, 0), vec(1, 1, 2, 1, 3, 1)},
		{"InsertMiddle", vec(1, 1, 3, 1), 2, time.Unix(0, 0), vec(1, 1, 2, 1, 3, 1)},
		{"InsertLast", vec(1, 1, 2, 1), 3, time.Unix(0, 0), vec(1, 1, 2, 1, 3, 1)},
		{"UpToMax", vec(1, maxC-1), 1, time.Unix(0, 0), vec(1, maxC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v0 := tt.v.Copy()
			got := tt.v.Update(rid(tt.id), tt.now)
			if !same(got, tt.want) {
				t.Fatalf("Update=%v, want %v", got, tt.want)
			}
			if got.Compare(tt.v) != syncproto.Greater {
				t.Fatalf("Update is not greater")
			}
			if !same(tt.v, v0) {
				t.Fatalf("receiver modified")
			}
		})
	}
}

func TestVectorUpdate_Overflow(t *testing.T) {
	for name, f := range map[string]func(){
		"AtMax":          func() { vec(1, maxC).Update(rid(1), time.Unix(0, 0)) },
		"ClockPastBound": func() { vec().Update(rid(1), time.Unix(maxC+1, 0)) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

// TestVectorUpdate_AfterWipe is the reason Update is clock based
// (syncthing #3876): a phone that synced edits, was wiped and restored
// from an old backup has forgotten its later counters. Its next write must
// still be newer than what the server holds from before the wipe, not
// Lesser or Equal (which would silently drop the new edit as old).
func TestVectorUpdate_AfterWipe(t *testing.T) {
	phone, office := rid(1), rid(2)
	day := time.Date(2024, 11, 5, 9, 0, 0, 0, time.UTC)

	// Before the wipe: the phone writes several times, the server holds the
	// latest vector it sent, and the office has written on top of it.
	backup := syncproto.Vector{}.Update(phone, day) // the backup is taken here
	v := backup
	for i := range 5 {
		v = v.Update(phone, day.Add(time.Duration(i)*time.Second))
	}
	server := v.Update(office, day.Add(time.Hour))

	// The phone is restored from the backup a day later and writes again.
	restored := backup.Update(phone, day.Add(24*time.Hour))
	if got := restored.Compare(v); got != syncproto.Greater {
		t.Fatalf("after wipe, new write compares %v to the phone's pre-wipe write, want greater", got)
	}
	if got := restored.Compare(server); got != syncproto.Concurrent {
		t.Fatalf("after wipe, new write compares %v to the server's version, want concurrent (kept as a conflict, not dropped)", got)
	}

	// The same with plain counters (old+1) shows what goes wrong.
	plain := func(v syncproto.Vector) syncproto.Vector { return v.Update(phone, time.Unix(0, 0)) }
	pv := plain(syncproto.Vector{})
	pbackup := pv
	for range 5 {
		pv = plain(pv)
	}
	if got := plain(pbackup).Compare(pv); got != syncproto.Lesser {
		t.Fatalf("plain counters after wipe compare %v; this test expected Lesser, the failure the clock prevents", got)
	}
}

func TestVectorValidate(t *testing.T) {
	unsorted := syncproto.Vector{Counters: []syncproto.Counter{{Replica: rid(2), Value: 1}, {Replica: rid(1), Value: 1}}}
	dup := syncproto.Vector{Counters: []syncproto.Counter{{Replica: rid(1), Value: 1}, {Replica: rid(1), Value: 2}}}
	tests := []struct {
		name string
		v    syncproto.Vector
		err  string
	}{
		{"Empty", vec(), ""},
		{"OK", vec(1, 1, 2, maxC), ""},
		{"Zero", vec(1, 0), "zero counter"},
		{"TooLarge", vec(1, maxC+1), "exceeds"},
		{"Unsorted", unsorted, "not sorted"},
		{"Duplicate", dup, "not sorted or duplicated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Validate()
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("Validate=%v, want nil", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("Validate=%v, want error containing %q", err, tt.err)
			}
		})
	}
}

func TestVectorJSON(t *testing.T) {
	a := "00000000-0000-4000-8000-000000000001"
	b := "00000000-0000-4000-8000-000000000002"
	tests := []struct {
		name, in, out string // out "" means an error is expected
	}{
		{"Empty", `{}`, `{}`},
		{"Null", `null`, `{}`},
		{"Sorted", `{"` + b + `":2,"` + a + `":1}`, `{"` + a + `":1,"` + b + `":2}`},
		{"Max", `{"` + a + `":9007199254740991}`, `{"` + a + `":9007199254740991}`},
		{"TooLarge", `{"` + a + `":9007199254740992}`, ""},
		{"Zero", `{"` + a + `":0}`, ""},
		{"Negative", `{"` + a + `":-1}`, ""},
		{"Fraction", `{"` + a + `":1.5}`, ""},
		{"Exponent", `{"` + a + `":1e3}`, ""},
		{"String", `{"` + a + `":"1"}`, ""},
		{"UpperCaseKey", `{"0000000A-0000-4000-8000-000000000001":1}`, ""},
		{"BracedKey", `{"{` + a + `}":1}`, ""},
		{"Whitespace", "{ \"" + a + "\" : 1 }", `{"` + a + `":1}`},
		{"NotUUID", `{"phone-1":1}`, ""},
		{"Array", `[1]`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v syncproto.Vector
			err := json.Unmarshal([]byte(tt.in), &v)
			if tt.out == "" {
				if err == nil {
					t.Fatalf("Unmarshal(%s)=%v, want an error", tt.in, v)
				}
				return
			}
			if err != nil {
				t.Fatalf("Unmarshal(%s): %v", tt.in, err)
			}
			got, _ := json.Marshal(v)
			if string(got) != tt.out {
				t.Fatalf("round trip %s → %s, want %s", tt.in, got, tt.out)
			}
		})
	}
}

// randVector returns a canonical random vector over replicas 0..3, with
// values chosen so that equal, adjacent and extreme values are common.
func randVector(r *rand.Rand) syncproto.Vector {
	m := map[syncproto.ReplicaID]uint64{}
	for i := range 4 {
		if r.IntN(3) == 0 {
			continue
		}
		var x uint64
		switch r.IntN(6) {
		case 0:
			x = maxC - uint64(r.IntN(3))
		case 1:
			x = 1_730_468_100 + uint64(r.IntN(3))
		default:
			x = uint64(r.IntN(4))
		}
		m[rid(i)] = x
	}
	return fromMap(m)
}

// TestVectorProperties runs the properties of checkVectorProperties over
// 20,000 seeded random triples, so that go test exercises them without
// -fuzz.
func TestVectorProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 20_000
	for i := range n {
		a, b, c := randVector(r), randVector(r), randVector(r)
		now := time.Unix(int64(r.IntN(3))*1_730_468_100, 0)
		checkVectorProperties(t, a, b, c, now)
		if t.Failed() {
			t.Fatalf("case %d", i)
		}
	}
}

// FuzzVector decodes the fuzz input into three vectors over a four-replica
// alphabet (so shared replicas, the interesting case, are common) and a
// clock, and checks every property.
func FuzzVector(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{2, 0, 1, 1, 2, 2, 0, 2, 1, 1, 1, 3, 9})
	f.Add([]byte{1, 0, 255, 1, 0, 254, 1, 1, 255, 0})
	f.Add([]byte{4, 0, 1, 1, 2, 2, 3, 3, 4, 4, 0, 4, 3, 4, 2, 3, 1, 2, 0, 1, 3, 200, 100, 50})
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func() byte {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return b
		}
		value := func(b byte) uint64 {
			switch {
			case b >= 250: // the top of the range
				return maxC - uint64(255-b)
			case b >= 240: // clock values
				return 1_730_468_100 + uint64(b-240)
			}
			return uint64(b % 8)
		}
		var vs [3]syncproto.Vector
		for i := range vs {
			m := map[syncproto.ReplicaID]uint64{}
			for range int(next() % 6) {
				m[rid(int(next()%4))] = value(next())
			}
			vs[i] = fromMap(m)
		}
		now := time.Unix(int64(next())*10_000_000, 0)
		checkVectorProperties(t, vs[0], vs[1], vs[2], now)
	})
}

// FuzzVectorJSON checks that whatever UnmarshalJSON accepts is canonical
// and round-trips byte for byte through MarshalJSON.
func FuzzVectorJSON(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"00000000-0000-4000-8000-000000000001":1,"00000000-0000-4000-8000-000000000002":9007199254740991}`))
	f.Add([]byte(`{"00000000-0000-4000-8000-000000000001":0}`))
	f.Add([]byte(`{"00000000-0000-4000-8000-000000000001":1,"00000000-0000-4000-8000-000000000001":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var v syncproto.Vector
		if err := json.Unmarshal(data, &v); err != nil {
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("accepted %q as non-canonical %v: %v", data, v, err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var w syncproto.Vector
		if err := json.Unmarshal(b, &w); err != nil {
			t.Fatalf("re-decoding %s: %v", b, err)
		}
		if !same(v, w) {
			t.Fatalf("round trip %v → %s → %v", v, b, w)
		}
		b2, _ := json.Marshal(w)
		if string(b) != string(b2) {
			t.Fatalf("encoding not stable: %s vs %s", b, b2)
		}
	})
}

func TestOrderingText(t *testing.T) {
	for _, o := range []syncproto.Ordering{syncproto.Equal, syncproto.Greater, syncproto.Lesser, syncproto.Concurrent} {
		b, _ := o.MarshalText()
		var back syncproto.Ordering
		if err := back.UnmarshalText(b); err != nil || back != o {
			t.Fatalf("%v → %s → %v, %v", o, b, back, err)
		}
	}
	var o syncproto.Ordering
	if err := o.UnmarshalText([]byte("sideways")); err == nil {
		t.Fatal("accepted an unknown ordering")
	}
}
