package syncproto_test

import (
	"math"
	"testing"
	"time"

	"github.com/fieldsync/fieldsync/syncproto"
)

func TestHLCNext(t *testing.T) {
	ms := func(n int64) time.Time { return time.UnixMilli(n) }
	tests := []struct {
		name string
		h    syncproto.HLC
		now  time.Time
		want syncproto.HLC
	}{
		{"ClockAhead", syncproto.HLC{Wall: 5, Logical: 3}, ms(9), syncproto.HLC{Wall: 9, Replica: rid(1)}},
		{"SameMillisecond", syncproto.HLC{Wall: 9, Logical: 3}, ms(9), syncproto.HLC{Wall: 9, Logical: 4, Replica: rid(1)}},
		{"ClockBehind", syncproto.HLC{Wall: 1_730_468_100_000, Logical: 0}, ms(5), syncproto.HLC{Wall: 1_730_468_100_000, Logical: 1, Replica: rid(1)}},
		{"LogicalFull", syncproto.HLC{Wall: 9, Logical: math.MaxUint32}, ms(9), syncproto.HLC{Wall: 10, Replica: rid(1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.h.Next(rid(1), tt.now)
			if got != tt.want {
				t.Fatalf("Next=%v, want %v", got, tt.want)
			}
			if got.Compare(tt.h) <= 0 {
				t.Fatalf("Next is not after %v", tt.h)
			}
		})
	}
}

func TestHLCObserve(t *testing.T) {
	mine := syncproto.HLC{Wall: 10, Logical: 1, Replica: rid(1)}
	if got := mine.Observe(syncproto.HLC{Wall: 20, Logical: 7, Replica: rid(2)}); got != (syncproto.HLC{Wall: 20, Logical: 7, Replica: rid(1)}) {
		t.Fatalf("Observe later=%v", got)
	}
	if got := mine.Observe(syncproto.HLC{Wall: 10, Logical: 0, Replica: rid(2)}); got != mine {
		t.Fatalf("Observe earlier=%v", got)
	}
	// After observing, the next local stamp is later than the observed one,
	// whatever the local clock says.
	seen := syncproto.HLC{Wall: 1_900_000_000_000, Replica: rid(2)}
	next := mine.Observe(seen).Next(rid(1), time.UnixMilli(10))
	if next.Compare(seen) <= 0 {
		t.Fatalf("stamp %v after observing %v is not later", next, seen)
	}
}

func TestParseHLC(t *testing.T) {
	r := "00000000-0000-4000-8000-000000000001"
	tests := []struct {
		in string
		ok bool
	}{
		{"1730468100000-0002-" + r, true},
		{"0000000000000-0000-" + r, true},
		{"17304681000000-0002-" + r, true}, // after the year 2286
		{"1730468100000-12345-" + r, true},
		{"1730468100000-0002", false},
		{"1730468100000", false},
		{"", false},
		{"1730468100000-2-" + r, false},   // logical not padded
		{"173046810000-0002-" + r, false}, // wall not padded
		{"+730468100000-0002-" + r, false},
		{"-000000000001-0002-" + r, false},
		{"1730468100000-0002-a7f3c1", false}, // the samples' short device ids are not replicas
		{"1730468100000-0002-00000000-0000-4000-8000-00000000000A", false},
		{"9007199254740992-0000-" + r, false}, // past 2^53
		{"1730468100000-4294967296-" + r, false},
	}
	for _, tt := range tests {
		h, err := syncproto.ParseHLC(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseHLC(%q)=%v, %v; want ok=%v", tt.in, h, err, tt.ok)
			continue
		}
		if tt.ok && h.String() != tt.in {
			t.Errorf("ParseHLC(%q).String()=%q", tt.in, h.String())
		}
	}
}

func TestHLCCompare(t *testing.T) {
	a := syncproto.HLC{Wall: 1, Logical: 2, Replica: rid(3)}
	for _, b := range []syncproto.HLC{
		{Wall: 2}, {Wall: 1, Logical: 3}, {Wall: 1, Logical: 2, Replica: rid(4)},
	} {
		if a.Compare(b) != -1 || b.Compare(a) != 1 {
			t.Errorf("%v vs %v", a, b)
		}
	}
	if a.Compare(a) != 0 || !(syncproto.HLC{}).IsZero() || a.IsZero() {
		t.Error("Compare/IsZero")
	}
	if got := (syncproto.HLC{Wall: 1_730_468_100_000}).Time(); !got.Equal(time.Date(2024, 11, 1, 13, 35, 0, 0, time.UTC)) {
		t.Errorf("Time=%v", got)
	}
}

// FuzzHLC checks that whatever ParseHLC accepts round-trips exactly and
// that text order agrees with Compare for stamps of equal width.
func FuzzHLC(f *testing.F) {
	f.Add("1730468100000-0002-00000000-0000-4000-8000-000000000001")
	f.Add("0000000000000-0000-00000000-0000-0000-0000-000000000000")
	f.Add("9007199254740991-4294967295-ffffffff-ffff-ffff-ffff-ffffffffffff")
	f.Add("1-1-1")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := syncproto.ParseHLC(s)
		if err != nil {
			return
		}
		if h.String() != s {
			t.Fatalf("ParseHLC(%q) accepted a non-canonical text (canonical %q)", s, h.String())
		}
		b, _ := h.MarshalText()
		var back syncproto.HLC
		if err := back.UnmarshalText(b); err != nil || back != h {
			t.Fatalf("text round trip %v → %s → %v, %v", h, b, back, err)
		}
		if h.Compare(h) != 0 {
			t.Fatal("Compare not reflexive")
		}
		n := h.Next(h.Replica, h.Time())
		if n.Compare(h) <= 0 {
			t.Fatalf("Next(%v)=%v is not later", h, n)
		}
	})
}
