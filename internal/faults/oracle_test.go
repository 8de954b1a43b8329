package faults

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/mobile/mobiletest"
	"github.com/fieldsync/fieldsync/syncproto"
)

// These tests check the suite's own judges without any server: the
// duplicate finder, the lost-edit oracle, the recovery measure and the
// backoff.

func vec(r syncproto.ReplicaID, n uint64) syncproto.Vector {
	return syncproto.Vector{Counters: []syncproto.Counter{{Replica: r, Value: n}}}
}

func TestDuplicates(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	h1 := syncproto.HLC{Wall: 1, Replica: a}
	h2 := syncproto.HLC{Wall: 2, Replica: b}
	note := func(id, n string) syncproto.Item {
		d, _ := json.Marshal(map[string]string{"type": "note_added", "note": n})
		return syncproto.Item{ID: id, Data: d}
	}
	tests := []struct {
		name string
		r    syncproto.Record
		want int
	}{
		{"clean", syncproto.Record{Fields: map[string]syncproto.Field{"title": {{HLC: h1}, {HLC: h2}}},
			Items: map[string][]syncproto.Item{"events": {note("1", "x"), note("2", "y")}}}, 0},
		{"an event twice under two ids", syncproto.Record{Items: map[string][]syncproto.Item{"events": {note("1", "x"), note("2", "x")}}}, 1},
		{"a version twice", syncproto.Record{Fields: map[string]syncproto.Field{"title": {{HLC: h1}, {HLC: h1}}}}, 1},
		{"a conflict revision twice", syncproto.Record{Conflicts: []syncproto.ConflictRevision{{ID: "title@1"}, {ID: "title@1"}}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.r.ID = uuid.New()
			if got := duplicates(map[uuid.UUID]*syncproto.Record{tt.r.ID: &tt.r}); len(got) != tt.want {
				t.Errorf("found %v, want %d", got, tt.want)
			}
		})
	}
}

// TestLostEdits checks the oracle over acknowledged changes: an edit is
// kept as itself, in the conflict log, or under a version whose writer had
// seen it; otherwise it is lost, as is an event that is gone.
func TestLostEdits(t *testing.T) {
	a, b := uuid.New(), uuid.New()
	mine := syncproto.FieldVersion{Value: json.RawMessage(`"x"`), Vector: vec(a, 1), HLC: syncproto.HLC{Wall: 1, Replica: a}}
	seen := syncproto.FieldVersion{Value: json.RawMessage(`"y"`), Vector: syncproto.Vector{Counters: []syncproto.Counter{{Replica: a, Value: 1}, {Replica: b, Value: 1}}}, HLC: syncproto.HLC{Wall: 2, Replica: b}}
	blind := syncproto.FieldVersion{Value: json.RawMessage(`"z"`), Vector: vec(b, 1), HLC: syncproto.HLC{Wall: 3, Replica: b}}
	id := uuid.New()
	edit := mobiletest.Edit{Record: id, Field: "title", V: mine}
	tests := []struct {
		name  string
		r     *syncproto.Record
		items map[uuid.UUID][]string
		lost  int
	}{
		{"kept as itself", &syncproto.Record{ID: id, Fields: map[string]syncproto.Field{"title": {mine}}}, nil, 0},
		{"overwritten by a writer who had seen it", &syncproto.Record{ID: id, Fields: map[string]syncproto.Field{"title": {seen}}}, nil, 0},
		{"in the conflict log", &syncproto.Record{ID: id, Fields: map[string]syncproto.Field{"title": {blind}},
			Conflicts: []syncproto.ConflictRevision{{Field: "title", Version: mine}}}, nil, 0},
		{"replaced by a writer who had not seen it", &syncproto.Record{ID: id, Fields: map[string]syncproto.Field{"title": {blind}}}, nil, 1},
		{"record gone", nil, nil, 1},
		{"event gone", &syncproto.Record{ID: id, Fields: map[string]syncproto.Field{"title": {mine}}}, map[uuid.UUID][]string{id: {"e1"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := map[uuid.UUID]*syncproto.Record{}
			if tt.r != nil {
				recs[id] = tt.r
			}
			if got := mobiletest.LostEdits(recs, []mobiletest.Edit{edit}, tt.items); len(got) != tt.lost {
				t.Errorf("lost %v, want %d", got, tt.lost)
			}
		})
	}
}

func TestRecovery(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	fail := errors.New("down")
	f := &fleet{attempts: []attempt{
		{start: at(0), end: at(1)},              // before the fault
		{start: at(2), end: at(3), err: fail},   // during
		{start: at(9), end: at(12)},             // the first success after the repair at 10
		{start: at(11), end: at(11.5)},          // ends earlier, but started after
		{start: at(20), end: at(21), photos: 1}, // the first with a photo
	}}
	tests := []struct {
		name     string
		down, up time.Time
		only     func(attempt) bool
		want     time.Duration
		ok       bool
	}{
		{"from the repair", at(2), at(10), nil, 1500 * time.Millisecond, true},
		{"served throughout", at(2), at(30), nil, 0, true},
		{"counting syncs with a photo", at(2), at(10), func(a attempt) bool { return a.photos > 0 }, 11 * time.Second, true},
		{"none after", at(25), at(25), nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			only := tt.only
			if only == nil {
				only = func(attempt) bool { return true }
			}
			got, ok := f.recoveryOf(tt.down, tt.up, only)
			if got != tt.want || ok != tt.ok {
				t.Errorf("recovery %v %v, want %v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestBackoffGrowsAndIsBounded(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for k := 1; k <= 12; k++ {
		base := min(200*time.Millisecond<<min(k, 4), 3*time.Second)
		for range 100 {
			if d := backoff(rng, k); d < base*3/4 || d > base*5/4 {
				t.Fatalf("backoff(%d) = %v, want within ±25%% of %v", k, d, base)
			}
		}
	}
}
